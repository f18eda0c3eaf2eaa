// Package admin owns pgwarden's admin HTTP surface on admin.listen:
//
//	GET /healthz        200 "ok" while the process is up (liveness)
//	GET /readyz         runs every ready check concurrently (each bounded by
//	                    Options.ReadyTimeout); 200 {"status":"ok","checks":{name:"ok"}}
//	                    or 503 with the failing checks' errors
//	GET /metrics        Prometheus exposition of Options.Registry, plus the Go
//	                    and process collectors and this package's own counters
//	/api/v1/...         routes added with HandleAPI, behind the bearer middleware
//	anything else       routes added with Handle (e.g. the dev issuer, /ui/,
//	                    /mcp, which authenticates its own requests: package mcp)
//
// The bearer middleware reads "Authorization: Bearer <OIDC token>", verifies
// it with the same identity.Verifier as the wire side (user check skipped),
// and passes the principal to the handler in the request context
// (identity.FromContext). Without a valid token the answer is 401 with a
// WWW-Authenticate header and {"error": "..."}; when the issuer cannot be
// reached it is 503 with Retry-After, since validity cannot be decided.
//
// Lifecycle: New, then Handle/HandleAPI/AddReadyCheck (before Serve), then
// Serve(ctx, listener) or ListenAndServe(ctx) until ctx ends or Shutdown is
// called; Serve returns only after the server has shut down.
//
// What it must never do: touch the wire protocol or the database directly
// (it calls into approvals/sessions through their handlers); log or echo a
// token (refusals are logged by reason and detail, which never holds the
// token); serve an API route without the bearer middleware.
package admin

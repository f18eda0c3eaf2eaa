// Package identity turns an OIDC token into a Principal or a typed refusal.
// Nothing else in pgwarden parses JWTs.
//
// What it owns: the Verifier contract (identity.go) and its OIDC
// implementation (NewOIDC), which checks, in order: the token's shape and
// size (compact JWS, at most MaxTokenBytes), the signature algorithm
// (asymmetric only; never "none" or HMAC), the signature against the
// issuer's JWKS (found through {issuer}/.well-known/openid-configuration,
// cached by go-oidc's remote key set and refetched when a token names an
// unknown key, so key rotation needs no restart), then iss, aud, exp
// (required), nbf and iat with the configured clock skew, and finally maps
// username_claim and groups_claim (dotted paths into nested objects, arrays
// or space/comma separated strings) and compares the startup user.
// A token with an RFC 8693 "act" claim (an agent acting for a person) is
// delegated: WithActor (claims.go, shared with identity/gwtoken) records
// the current actor's sub as Principal.Actor and narrows Principal.Groups
// to the groups both the user and the actor hold — the act object's own
// groups claim, read with the same name or path; none when it has none —
// so every decision made on Groups sees only what both may do. A
// malformed act claim is refused (ReasonDelegation).
// The development issuer lives in the devissuer subpackage.
//
// Lifecycle: NewOIDC once at start-up. It never fails because the issuer is
// down: discovery is retried lazily with backoff (1s doubling to 30s), and
// until it succeeds Verify refuses with ReasonUnavailable and Check (for
// /readyz) returns the error. JWKS refetches caused by unknown key ids are
// limited to one per WithJWKSRefetchInterval (default 5s), so junk tokens
// cannot make pgwarden hammer the issuer. Close releases idle connections.
//
// What it must never do: accept a token it could not fully verify (every
// failure is a *RefusalError; the zero Principal is returned with it); put
// a token, or anything that could reconstruct one, into an error, a log or
// a metric label (RefusalError.Detail is for logs, Short() for clients);
// trust a claim before the signature has been checked.
package identity

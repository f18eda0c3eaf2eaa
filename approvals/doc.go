// Package approvals owns statements held for a second person's decision:
// the request records, their durable store, the four-eyes decision rules,
// notification, the admin API routes under /api/v1/approvals, the
// `pgwarden approvals` CLI client and the /ui/ page for approvers and
// auditors.
//
// Lifecycle. At start-up the gateway opens a Store — boltstore.Open(store.dir)
// for one gateway, pgstore for the shared store.dsn — which expires every
// request this gateway's previous process left pending (and approved
// wait-mode requests that never ran): their sessions are gone, so nothing of
// them may execute later. New(cfg, store, log, opts...) builds the one Manager; the
// relay glue calls Hold when policy says a statement needs approval, then
// in wait mode sends HeldNotice and blocks in Wait (ctx = the session's
// statement context, cancelled by a client CancelRequest: the request is
// withdrawn), and on Approved calls MarkExecuted before forwarding (only a
// nil error lets the statement run, so it runs exactly once). In retry mode
// the glue answers RetryError at once and, on every later statement that
// would be held, first calls Claim: an approved, unexpired request for the
// same requester, database, normalized SQL and parameters is consumed and
// the statement runs once. When a session ends the glue calls SessionEnded.
// Approvers decide through APIHandler (mounted by admin behind its bearer
// middleware) or RunCLI/Client. Manager.Close waits for webhook deliveries;
// Store.Close closes the store. The Store interface (store.go) is the seam:
// every implementation passes approvals/storetest.
//
// States: pending -> approved -> executed; pending -> denied | expired |
// withdrawn; approved -> expired (session ended, or a retry approval not
// used in time) | withdrawn (client cancelled). Every change is one durable store
// transaction and is reported to the observer (WithObserver) for the
// session record.
//
// Never: let the requester decide their own request; let anyone outside
// policy.approval.approvers decide (no approver groups means nobody can);
// run an approved statement twice or after its session ended (wait mode);
// put SQL text, parameters or the webhook URL (a secret) into log lines or
// notifications — the SQL is shown only through the authenticated API, UI
// and CLI; render API data as HTML in the UI.
package approvals

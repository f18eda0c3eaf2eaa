// Package pgwire owns the bytes and the protocol state between PostgreSQL
// clients and the upstream PostgreSQL server — nothing else. It is the
// listener (Server), the startup handshake, TLS, the cancel-key mapping,
// the two relay goroutines of each session and the refusal ("poison")
// mechanism. Everything it knows about policy, masking and recording it
// knows through the small Hooks/Session interfaces in hooks.go, so it can
// be tested with fakes and reused with any policy.
//
// # Layers
//
//   - Framing (frame.go, startup.go): startup-phase packets are read with
//     their exact length (at most 10,000 bytes, like PostgreSQL), so nothing
//     a client pipelines behind an SSLRequest is ever read as plaintext.
//     Typed messages are framed by a framer over a bufio.Reader that checks
//     the claimed length against MaxMessageBytes before allocating, and
//     either streams a message to the other side through the reader's
//     buffer (no copy, no decode) or reads its body into a reused buffer.
//   - Messages (messages.go): a message a hook wants is decoded into a
//     per-session pgproto3 flyweight; an unchanged message is forwarded as
//     its original bytes, a rewritten one is re-encoded.
//   - Sessions (session.go, relay.go): one goroutine per direction plus a
//     credential keep-alive, one context, the first error wins (end) and
//     unblocks the others with past deadlines; run waits for all of them.
//
// # Lifecycle of a session
//
// Accept → (SSLRequest → 'S' + TLS | 'N') → (GSSENCRequest → 'N') →
// StartupMessage (3.0; newer minors get NegotiateProtocolVersion) → checks
// (replication 0A000, user 08P01, TLS required 28000,
// startup parameters 42501: internal/parsesafe and Config.StartupParam,
// max connections 53300) → AuthenticationCleartextPassword → the token →
// Verifier.Verify (28P01) → the database picks the Target (28000 when no
// target serves it; only now, so a stranger cannot probe which databases
// exist) → the target's Provider.Mint (08001) → pgconn connect to the
// target's upstream as the
// lease and Hijack (08001; 42501 when the server reports
// standard_conforming_strings other than on or a client_encoding
// internal/parsesafe refuses) → HookFactory → AuthenticationOk, the upstream's
// ParameterStatus, pgwarden's own random BackendKeyData, ReadyForQuery.
// StartupTimeout covers all of that. Then the relay runs until the client
// closes or terminates, the upstream is lost (FATAL 08006), a hook or
// Session.Terminate ends it, the credential expires without renewal
// (FATAL 57P01) or the server shuts down (FATAL 57P01). On every path the
// upstream is closed, Hooks.Close is called, the lease is revoked with a
// fresh context and the metrics are updated.
//
// # Decide before forward, and the poison
//
// With hooks installed, client messages are held in a per-session batch
// until a boundary (Sync, Flush, Query, FunctionCall, CopyDone, CopyFail,
// Terminate); every wanted message is given to Hooks.OnClient first. A
// refused message is replaced by a "poison": a message PostgreSQL itself
// rejects with a syntax error, without side effects, carrying a per-session
// random marker (pgwarden_refused_<hex>_<seq>): Query → Query(marker);
// Parse → Parse(same name, marker); Bind/Execute/Describe/Close →
// Parse(named marker, marker) so the unnamed statement survives;
// FunctionCall → Query(marker); CopyData/CopyDone/CopyFail → CopyFail
// (marker). PostgreSQL therefore reaches exactly the state it would have
// reached had the statement failed: an open transaction is aborted (25P02
// until ROLLBACK), the rest of an extended batch is skipped until Sync,
// and drivers stay in sync. On the way back the ErrorResponse carrying the
// marker is replaced by the hook's error (FIFO by sequence number);
// refusals whose poison PostgreSQL skipped are dropped at the batch's
// ReadyForQuery, as PostgreSQL would have dropped the original message.
//
// # The protocol tracker
//
// pgwire owns the session's protocol state (tracker.go, Session.Tracker):
// the FIFO of forwarded requests and which server message answers which,
// the prepared statements and portals as the server has them, the
// transaction status, named states (idle, busy, skipping until Sync, COPY
// in/out) and the relay's ReadyForQuery/refusal accounting. It records
// the message actually forwarded (a poison, not the refused original).
// Statements and portals change only when the server confirms it:
// ParseComplete, BindComplete, CloseComplete, and the CommandComplete of
// a SQL PREPARE, DEALLOCATE [ALL], DECLARE, CLOSE, DISCARD ALL, COMMIT or
// ROLLBACK, which hooks describe in Verdict.Statements (pgwire parses no
// SQL). A simple Query drops the unnamed statement; portals die when their
// transaction ends, except WITH HOLD cursors of a committed one. Hooks
// hang their own data on requests, statements and portals (Verdict.Data).
//
// # Side queries and cancel
//
// Session.Query runs a statement on the session's own upstream (named
// statement and portal, so the client's unnamed ones survive) once every
// forwarded message was answered; the server goroutine routes its answer
// until ReadyForQuery. While a hook blocks (an approval hold) it may ask
// pgwire to keep reading the client (Session.WatchClient): EOF or a
// Terminate then ends the session at once (the lease is revoked) and
// cancels OnClient's context with cause ErrClientGone. A CancelRequest matching pgwarden's key
// (constant-time) cancels a blocking OnClient's context, or is forwarded
// to the upstream backend with the upstream's own key.
//
// # Never
//
// pgwire never logs or returns tokens, passwords or cancel keys; never
// sends a client an internal error text (only *pgerr.Error messages);
// never forwards a wanted message before its hook decided; never decodes
// or copies a message nobody asked for; never leaves a goroutine without
// an owner that waits for it; never forwards startup "options", "role" or
// "session_authorization" upstream (they would bypass the policy).
package pgwire

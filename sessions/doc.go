// Package sessions owns pgwarden's session record as the gateway sees
// it: the Recorder and its SessionRecorders (what an event holds, secret
// redaction, encoding before any lock, the recorder's health, metrics and
// sinks), the sinks (stdout, webhook), and the read side used by the
// `pgwarden sessions` commands and GET /api/v1/sessions (Store: list,
// show, replay, verify, export as JSON Lines or OCSF). The stores
// themselves are subpackages: sessions/filestore (the segment files) and
// sessions/pgstore (the shared store's per-gateway chains).
//
// Lifecycle: the glue calls Open (the file store: config.Recording
// becomes filestore.Options; recovery runs here: a torn last line is cut
// off and kept as torn-*.bin, sessions a crash left open get session_end
// with reason gateway_restart) or OpenShared once at start, Start per
// authenticated session, the SessionRecorder methods per
// statement/approval/error, End on every path out of a session, and Close
// at shutdown. The session that records an event redacts and encodes it,
// then the appender chains and writes it under its lock, so the event is
// stored when the call returns and the relay hands nothing to another
// goroutine; waiting for the lock is bounded (a hung write makes the
// others fail closed). Before forwarding a statement the glue checks
// Healthy(): non-nil means refuse with 08001 "pgwarden: session recording
// unavailable" unless recording.fail_open (then
// pgwarden_recording_dropped_total counts the gap). Store (OpenStore) is
// read-only and may run while a Recorder writes.
//
// Seams. The record model (Event, the canonical encoder, the hash chain,
// Problem) is the leaf package sessions/record; this package keeps aliases
// (Event, Problem, the Type and Decision constants). Every sink is a Sink
// (stdout: each stored batch in store order, from its own goroutine;
// webhook: woken by Written, it reads the store from its cursor, and
// retention keeps what it has not delivered). Reading back is a Log (Each,
// Verify, Follow) with two implementations in their own packages:
// sessions/filestore (the segment layout: segments, head.json, the line
// reader and tail, and Reader) and sessions/pgstore (Reader over
// pgwarden.events); Store (List, Get, Export, Verify, Replay) is a thin
// layer over one Log (NewStore); both pass the conformance suite
// sessions/logtest. The write side is a record.Appender (Write one encoded
// event before returning, Shutdown) that reaches the recorder only
// through a record.Host (host.go: clock, Stored, metrics, health with the
// probe's SetHealthyIf, the sinks' delivered seq): filestore.Appender
// (the segment writer: its state under the store lock, the maintainer
// goroutine) and pgstore.Appender (this gateway's chain in the shared
// store, group commit).
//
// This package must never record a secret: tokens and lease passwords are
// not in its types, PASSWORD literals are removed by RedactSQL (PostgreSQL's
// lexer, not a regexp) and the bind parameters of role statements are
// dropped. It never records unmasked rows: callers pass rows already masked.
// It never blocks the relay beyond its own write and the lock timeout, and never rewrites
// or deletes an event except whole segments by retention (which it attests
// in the chain). See docs/recording.md for the format.
package sessions

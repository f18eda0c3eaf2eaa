// Package filestore is the session record's file store: the segments
// under <store.dir>/sessions, both sides of them.
//
// It owns the layout (segment names, head.json, torn-*.bin; segment.go),
// the line reader and the tail (readers stop at a segment's first NUL),
// the read side Reader (an implementation of sessions.Log) and the write
// side Appender (a record.Appender): the active segment written through a
// shared mapping of space allocated ahead with fallocate
// (segfile_linux.go; a plain appending file elsewhere), the store lock,
// the chain state, rotation, retention, crash recovery and the
// maintainer goroutine that fsyncs and probes.
//
// Lifecycle of an Appender: OpenAppender recovers the store (the chain
// goes on after the last complete line; a torn last line is cut off and
// kept as torn-*.bin; the zero tail of allocated space is cut off
// silently) and writes nothing; Start writes session_end with reason
// gateway_restart for the sessions a crash left open, applies retention,
// fsyncs and starts the maintainer; Write chains and copies one encoded
// event into the active segment under the store lock before it returns
// (no system call under the lock for an ordinary event, no handoff to
// another goroutine); Shutdown ends the sessions still open
// (gateway_shutdown), fsyncs, seals the segment and waits for the
// maintainer.
//
// It reaches the recorder that owns it (package sessions) only through
// record.Host — the clock, the per-batch Stored (counted, handed to the
// sinks, healthy), the counters of drops, write errors, rotations and
// torn lines, health (SetUnhealthy, Health, and SetHealthyIf for the
// probe, which reports the store writable only if the failure it probed
// for is still the one in force), and Delivered for retention — and it
// knows nothing of the configuration: Options is filled by package
// sessions from config.Recording.
//
// It must never rewrite or delete an event except whole sealed segments
// by retention (attested by a retention event in the chain), never hold
// the store lock across an fsync, never wait for the lock longer than
// Options.LockTimeout (it fails closed: ErrStalled, unhealthy), and never
// write a segment again after a fault on its mapping (ErrMapFault).
// Reader is read-only and safe while an Appender writes the same
// directory.
package filestore

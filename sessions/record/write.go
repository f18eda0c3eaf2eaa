package record

import (
	"errors"
	"sort"
	"time"
)

// Errors of the write path (sessions re-exports them).
var (
	ErrClosed  = errors.New("sessions: recorder closed")
	ErrStalled = errors.New("sessions: recording store stalled (a write has not returned)")
)

// Reasons of session_end written by the recorder itself.
const (
	ReasonGatewayRestart  = "gateway_restart"  // recovered at Open after a crash
	ReasonGatewayShutdown = "gateway_shutdown" // Recorder.Close with the session still open
	ReasonGatewayLost     = "gateway_lost"     // ended by another gateway that found this one dead
)

// Appender is where a recorder's events go once their fields are encoded
// (AppendBody, before any lock): it chains each event (seq, time,
// prev_hash, hash) and stores it before Write returns, so an event
// recorded before the client's ReadyForQuery survives a kill -9. Opening
// one recovers (continues the chain); its background work (fsync, health
// probes) reports through its Host.
type Appender interface {
	// Write chains ev, whose fields body encodes, and stores it before it
	// returns. It fails closed: ErrStalled when the store does not answer
	// in time, ErrClosed after Shutdown, or the store's error (the event is
	// counted as dropped and the recorder reports unhealthy). ev is passed
	// by value so that it stays on the caller's stack.
	Write(ev Event, body []byte) error
	// Shutdown writes session_end (gateway_shutdown) for the sessions
	// still open, stores and syncs them and stops the background work.
	Shutdown()
}

// Host is what an Appender reaches of the recorder that owns it: its
// clock, its write path, its metrics, its health and its sinks. Only the
// recorder implements it; an appender calls Now and Stored once per
// event or batch, the rest on the error, health and maintenance paths.
type Host interface {
	// Now is the recorder's clock; events are stamped with it in chain order.
	Now() time.Time
	// Record writes ev through the recorder (redaction, encoding, Write):
	// events the appender adds itself (session_end of sessions left open).
	Record(ev Event) error
	// Stored is called after n events were stored, in store order (from
	// one goroutine at a time); lines are their lines, each ending in
	// '\n', when WantLines (for the sinks). It counts them, hands the
	// lines to the sinks, then reports the store healthy.
	Stored(n int, lines []byte)
	// WantLines reports whether Stored needs the lines (a sink is configured).
	WantLines() bool
	// Delivered is the seq of the last event that every sink reading the
	// store behind the recorder (a webhook's cursor) has delivered, or -1
	// when no sink reads it: retention keeps every event after it.
	Delivered() int64
	// Dropped counts n events not recorded.
	Dropped(n int)
	// WriteError counts a failed write or fsync of the store.
	WriteError()
	// Rotated counts a part of the store sealed to start a new one (a
	// segment rotation).
	Rotated()
	// TornLine counts a partial last write cut off at recovery.
	TornLine()
	// SetUnhealthy reports the store unwritable (err says why). Every call
	// is a new report: Health returns a value of its own for it.
	SetUnhealthy(err error)
	// SetHealthy reports the store writable (again).
	SetHealthy()
	// Health is nil while the store is reported writable; otherwise the
	// error of the SetUnhealthy call in force (the appender then probes
	// the store).
	Health() error
	// SetHealthyIf reports the store writable again only if its health is
	// still was (what Health returned before the probe began; compared
	// by identity, nil included): a failure reported while the probe ran
	// stands, and the next probe looks again. It reports whether it did.
	SetHealthyIf(was error) bool
}

// OpenSession is what an appender keeps of a session that has not ended.
type OpenSession struct {
	Seq  int64 // of its first event
	Info Event // its identity fields
}

// TrackOpen updates an open-session set from one event: a session is open
// from its first event to its session_end; its identity fields are kept
// for the session_end the recorder writes itself.
func TrackOpen(open map[string]OpenSession, ev *Event) {
	if ev.Session == "" {
		return
	}
	if ev.Type == TypeSessionEnd {
		delete(open, ev.Session)
		return
	}
	if _, ok := open[ev.Session]; !ok {
		open[ev.Session] = OpenSession{Seq: ev.Seq, Info: Event{Session: ev.Session, User: ev.User, Actor: ev.Actor, Groups: ev.Groups,
			ClientAddr: ev.ClientAddr, ApplicationName: ev.ApplicationName, Database: ev.Database, Profile: ev.Profile,
			BackendUser: ev.BackendUser, Gateway: ev.Gateway}}
	}
}

// OpenInOrder returns the identity fields of the open sessions in the
// order they started.
func OpenInOrder(open map[string]OpenSession) []Event {
	ids := make([]string, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return open[ids[i]].Seq < open[ids[j]].Seq })
	out := make([]Event, len(ids))
	for i, id := range ids {
		out[i] = open[id].Info
	}
	return out
}

package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/sessions/record"
)

// The appender's tests drive it the way the recorder (package sessions)
// does — events whose fields are encoded before Write, identity fields on
// every event of a session — through testHost, a record.Host with the
// recorder's clock, counters and health (the same compare-and-swap), but
// without redaction, sinks or the per-session error of Written: those are
// the recorder's and are tested in package sessions.

// errUnavailable is what testHost's health wraps, as the recorder's does.
var errUnavailable = errors.New("test: session recording unavailable")

type testHost struct {
	// now is the clock. The maintainer reads it under the store lock:
	// change it only holding a.lock (setNow).
	now func() time.Time

	health                                        atomic.Pointer[error]
	events, dropped, writeErrors, rotations, torn atomic.Int64
	delivered                                     atomic.Int64 // Delivered (-1: no sink reads the store)
	mu                                            sync.Mutex
	lines                                         bytes.Buffer // what Stored handed on
}

var _ record.Host = (*testHost)(nil)

func newTestHost() *testHost {
	h := &testHost{now: func() time.Time { return time.Now().UTC() }}
	h.delivered.Store(-1)
	return h
}

func (h *testHost) Now() time.Time { return h.now() }

// Record is not used by the file store's appender (it chains its own
// events under its lock).
func (h *testHost) Record(record.Event) error { return errors.New("test: Record not expected") }

func (h *testHost) Stored(n int, lines []byte) {
	h.events.Add(int64(n))
	h.mu.Lock()
	h.lines.Write(lines)
	h.mu.Unlock()
	h.SetHealthy()
}

func (h *testHost) WantLines() bool  { return true }
func (h *testHost) Delivered() int64 { return h.delivered.Load() }
func (h *testHost) Dropped(n int)    { h.dropped.Add(int64(n)) }
func (h *testHost) WriteError()      { h.writeErrors.Add(1) }
func (h *testHost) Rotated()         { h.rotations.Add(1) }
func (h *testHost) TornLine()        { h.torn.Add(1) }

func (h *testHost) SetUnhealthy(err error) {
	e := fmt.Errorf("%w: %w", errUnavailable, err)
	h.health.Store(&e)
}

func (h *testHost) SetHealthy() { h.health.Store(nil) }

func (h *testHost) Health() error {
	if p := h.health.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *testHost) SetHealthyIf(was error) bool {
	p := h.health.Load()
	if (p == nil) != (was == nil) || (p != nil && *p != was) {
		return false
	}
	return h.health.CompareAndSwap(p, nil)
}

// testOpts are config.Default().Recording's file store settings with a
// short sync interval, as the recorder's tests use.
func testOpts() Options {
	return Options{SyncInterval: 10 * time.Millisecond, RotateBytes: 64 << 20, Log: zerolog.Nop()}
}

// openT opens and starts the file store in dir (the segments directory).
func openT(t *testing.T, opts Options, dir string) (*Appender, *testHost) {
	t.Helper()
	h := newTestHost()
	a := openWith(t, h, opts, dir)
	return a, h
}

func openWith(t *testing.T, h *testHost, opts Options, dir string) *Appender {
	t.Helper()
	a, err := OpenAppender(h, dir, opts)
	must(t, err)
	must(t, a.Start())
	return a
}

// setNow changes the clock under the store lock.
func (a *Appender) setNow(h *testHost, now func() time.Time) {
	a.lock(0)
	h.now = now
	a.unlock()
}

// halt stops a like a kill -9 would: no final events, no more writes.
func (a *Appender) halt() {
	a.lock(0)
	a.shut = true
	a.unlock()
	close(a.stop)
	<-a.done
}

// session writes one session's events as the recorder does: its
// identity fields on every event, the fields encoded before Write.
type session struct {
	a    *Appender
	base record.Event
}

func (s *session) write(ev record.Event) error {
	return s.a.Write(ev, record.AppendBody(nil, &ev))
}

func startSession(a *Appender, id, user string) (*session, error) {
	s := &session{a: a, base: record.Event{Session: id, User: user}}
	ev := s.base
	ev.Type = record.TypeSessionStart
	return s, s.write(ev)
}

func (s *session) stmt(sql string) error {
	ev := s.base
	ev.Type, ev.SQL, ev.Actions, ev.Decision = record.TypeStatement, sql, []string{"read"}, record.DecisionAllow
	return s.write(ev)
}

func (s *session) end(reason string) error {
	ev := s.base
	ev.Type, ev.Reason = record.TypeSessionEnd, reason
	return s.write(ev)
}

// writeSession records a small session (what sessions' writeSession
// records, its PASSWORD literal already redacted as the recorder does).
func writeSession(t *testing.T, a *Appender, id string, end bool) {
	t.Helper()
	s := &session{a: a, base: record.Event{Session: id, User: "alice@example.com", Groups: []string{"analyst"}, ClientAddr: "127.0.0.1:50000",
		ApplicationName: "psql", Database: "vectors", BackendUser: "pgw_alice_1"}}
	ev := s.base
	ev.Type = record.TypeSessionStart
	must(t, s.write(ev))
	ev = s.base
	ev.Type, ev.SQL, ev.Actions, ev.Decision = record.TypeStatement, "SELECT id, email FROM customers LIMIT 2", []string{"read"}, record.DecisionAllow
	ev.Columns, ev.RowsTotal, ev.DurationUS = []string{"id", "email"}, 2, 1500
	ev.SetRowsJSON([]byte(`["1","a***@example.com"],["2",null]`))
	must(t, s.write(ev))
	ev = s.base
	ev.Type, ev.SQL, ev.Actions, ev.Decision = record.TypeStatement, "DELETE FROM documents", []string{"bulk_delete"}, record.DecisionDeny
	ev.Error = "pgwarden: policy denies bulk_delete for groups analyst"
	must(t, s.write(ev))
	ev = s.base
	ev.Type, ev.SQL, ev.Actions, ev.Decision = record.TypeStatement, "ALTER ROLE bob PASSWORD '[redacted]'", []string{"admin"}, record.DecisionDeny
	must(t, s.write(ev))
	if end {
		must(t, s.end("client_closed"))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// verifyT verifies the store in dir: ok, the problem, the verdict line.
func verifyT(t *testing.T, dir string) (bool, *record.Problem, string) {
	t.Helper()
	v, err := NewReader(dir).Verify()
	must(t, err)
	if v.Problem != nil {
		return false, v.Problem, "FAILED: " + v.Problem.String()
	}
	return true, nil, fmt.Sprintf("ok: %d events in %d %s", v.Events, v.Parts, v.Unit)
}

// getSession is one session's events in store order.
func getSession(t *testing.T, dir, id string) []record.Event {
	t.Helper()
	var out []record.Event
	must(t, NewReader(dir).Each(id, func(_ []byte, ev *record.Event) error {
		if ev.Session == id {
			out = append(out, *ev)
		}
		return nil
	}))
	return out
}

// storeText is the concatenated content of every segment file.
func storeText(t *testing.T, dir string) string {
	t.Helper()
	names, err := ListSegments(dir)
	must(t, err)
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		must(t, err)
		b.Write(data)
	}
	return b.String()
}

// segPath is the newest segment's path.
func segPath(t *testing.T, dir string) string {
	t.Helper()
	names, err := ListSegments(dir)
	must(t, err)
	return filepath.Join(dir, names[len(names)-1])
}

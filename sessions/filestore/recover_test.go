package filestore

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/sessions/record"
)

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	a, _ := openT(t, testOpts(), dir)
	writeSession(t, a, "crashed", false) // no end: the gateway "dies"
	writeSession(t, a, "clean", true)
	// simulate kill -9: stop the appender without its final events, and
	// tear the last line
	a.halt()
	f, err := os.OpenFile(segPath(t, dir), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, _ = f.WriteString(`{"seq":99,"time":"2025-01-`)
	f.Close()
	if ok, _, _ := verifyT(t, dir); ok {
		t.Fatal("a torn tail must fail verify before recovery")
	}
	a2, h2 := openT(t, testOpts(), dir)
	a2.Shutdown()
	if n := h2.torn.Load(); n != 1 {
		t.Fatalf("torn lines counted %d, want 1", n)
	}
	ok, p, out := verifyT(t, dir)
	if !ok {
		t.Fatalf("verify after recovery: %v %s", p, out)
	}
	evs := getSession(t, dir, "crashed")
	last := evs[len(evs)-1]
	if last.Type != record.TypeSessionEnd || last.Reason != record.ReasonGatewayRestart || last.User != "alice@example.com" {
		t.Fatalf("last event %+v", last)
	}
	if len(evs) != 5 {
		t.Fatalf("crashed session has %d events, want 5 (every flushed statement)", len(evs))
	}
	clean := getSession(t, dir, "clean")
	if clean[len(clean)-1].Reason != "client_closed" {
		t.Fatal("clean session must keep its own end")
	}
	torn, _ := filepath.Glob(filepath.Join(dir, "torn-*.bin"))
	if len(torn) != 1 {
		t.Fatalf("torn fragment not kept: %v", torn)
	}
}

// oldRotatedStore writes ten sessions three hours ago into a store that
// rotates every 2000 bytes and keeps an hour: every sealed segment is due
// for retention when the store is opened again.
func oldRotatedStore(t *testing.T) (dir string, opts Options, h *testHost, names []string) {
	t.Helper()
	dir = t.TempDir()
	opts = testOpts()
	opts.RotateBytes = 2000
	opts.Retention = time.Hour
	a, h := openT(t, opts, dir)
	now := time.Now().UTC().Add(-3 * time.Hour)
	a.setNow(h, func() time.Time { return now }) // the maintainer and Write read the clock under the lock
	for i := 0; i < 10; i++ {
		writeSession(t, a, "old"+string(rune('a'+i)), true)
	}
	a.Shutdown()
	names, _ = ListSegments(dir)
	return dir, opts, h, names
}

func TestRotationAndRetention(t *testing.T) {
	dir, opts, h, names := oldRotatedStore(t)
	if len(names) < 4 {
		t.Fatalf("expected rotation into several segments, got %d", len(names))
	}
	if n := h.rotations.Load(); n != int64(len(names)-1) {
		t.Fatalf("%d rotations counted for %d segments", n, len(names))
	}
	if ok, p, _ := verifyT(t, dir); !ok {
		t.Fatalf("verify after rotation: %v", p)
	}
	// reopen 3h later: retention deletes all sealed old segments
	a2, _ := openT(t, opts, dir)
	writeSession(t, a2, "new", true)
	a2.Shutdown()
	after, _ := ListSegments(dir)
	if len(after) >= len(names) || SegFirstSeq(after[0]) == 1 {
		t.Fatalf("retention deleted nothing: before %v after %v", names, after)
	}
	ok, p, out := verifyT(t, dir)
	if !ok {
		t.Fatalf("verify after retention: %v", p)
	}
	t.Log(out)
	// deleting one more old segment by hand is NOT retention
	if len(after) > 2 {
		must(t, os.Remove(filepath.Join(dir, after[0])))
		if ok, _, _ := verifyT(t, dir); ok {
			t.Fatal("a segment deleted without a retention marker must fail verify")
		}
	}
}

// TestRetentionKeepsUndelivered: retention never deletes a segment with
// an event a sink reading the store has not delivered (Host.Delivered).
func TestRetentionKeepsUndelivered(t *testing.T) {
	dir, opts, _, names := oldRotatedStore(t)
	h2 := newTestHost()
	h2.delivered.Store(0) // a sink that has delivered nothing
	a2 := openWith(t, h2, opts, dir)
	a2.Shutdown()
	if after, _ := ListSegments(dir); len(after) != len(names) {
		t.Fatalf("retention deleted undelivered segments: before %v after %v", names, after)
	}
}

// A session a crash left open gets its session_end (gateway_restart) from
// the next open with the actor of a delegated session, like every other
// event of it.
func TestRecoveredSessionEndKeepsActor(t *testing.T) {
	dir := t.TempDir()
	a, _ := openT(t, testOpts(), dir)
	s := &session{a: a, base: record.Event{Session: "c1", User: "alice@example.com", Actor: "agent-7", Database: "vectors"}}
	ev := s.base
	ev.Type = record.TypeSessionStart
	must(t, s.write(ev))
	must(t, s.stmt("SELECT 1"))
	a.halt() // kill -9
	a2, _ := openT(t, testOpts(), dir)
	a2.Shutdown()
	evs := getSession(t, dir, "c1")
	last := evs[len(evs)-1]
	if last.Type != record.TypeSessionEnd || last.Reason != record.ReasonGatewayRestart || last.Actor != "agent-7" || last.User != "alice@example.com" {
		t.Fatalf("recovered end %+v", last)
	}
}

package sessions

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions/filestore"
)

// TestMappedSegmentZeroTail: the active segment is written through a
// mapping into space allocated ahead, so while the gateway runs its file
// ends in zeros; verify, Get and tails read up to them, and Close cuts them
// off (the sealed file ends with its last line).
func TestMappedSegmentZeroTail(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	writeSession(t, r, "z", true)
	path := segPath(t, dir)
	data, err := os.ReadFile(path)
	must(t, err)
	end := bytes.LastIndexByte(data, '\n') + 1
	if end == 0 || end == len(data) || len(bytes.Trim(data[end:], "\x00")) != 0 {
		t.Fatalf("active segment: %d bytes of data, file %d bytes: want a zero tail of space allocated ahead", end, len(data))
	}
	// head.json is written by the maintainer's fsync after session_end
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ok, p, out := verifyT(t, dir)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify of the live store: %v %s", p, out)
		}
	}
	st, err := OpenStore(dir)
	must(t, err)
	evs, err := st.Get("z")
	must(t, err)
	if len(evs) != 5 || evs[len(evs)-1].Type != TypeSessionEnd {
		t.Fatalf("Get read %d events, want 5 ending in session_end", len(evs))
	}
	tl := filestore.NewTail(st.log.(*filestore.Reader).Dir(), 0)
	n, err := tl.Read(100, 1<<20, func([]byte, *Event) {})
	must(t, err)
	if n != 5 {
		t.Fatalf("tail read %d events, want 5", n)
	}
	must(t, r.Close())
	data, err = os.ReadFile(path)
	must(t, err)
	if len(data) == 0 || data[len(data)-1] != '\n' || bytes.IndexByte(data, 0) >= 0 {
		t.Fatalf("segment after Close: %d bytes, ends %q: want its data only", len(data), data[max(0, len(data)-8):])
	}
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("verify after Close: %v %s", p, out)
	}
}

// TestMappedSegmentFaultFailsClosed: the active segment shortened behind
// the recorder's back makes the next copy into the mapping fault (SIGBUS).
// The fault is caught: the statement's recording fails, Written reports it
// (once), the event is counted as dropped, the recorder is unhealthy (the
// gateway refuses statements), the process lives on, and the shortened
// segment is never written again: once the maintainer's probe has found
// the store writable, recording resumes in a new segment, and verify
// reports the damage.
func TestMappedSegmentFaultFailsClosed(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	r, err := Open(testCfg(), config.Store{Dir: dir}, testLog(t), reg)
	must(t, err)
	s := r.Start(StartInfo{ID: "f", User: "alice"})
	must(t, s.Statement(StatementEvent{SQL: "SELECT 1", Actions: []string{"read"}, Decision: DecisionAllow}))
	must(t, s.Written())
	short := segPath(t, dir)
	must(t, os.Truncate(short, 0))
	err = s.Statement(StatementEvent{SQL: "SELECT 2", Actions: []string{"read"}, Decision: DecisionAllow})
	if !errors.Is(err, filestore.ErrMapFault) {
		t.Fatalf("Statement into a shortened mapping = %v, want ErrMapFault", err)
	}
	if err := s.Written(); !errors.Is(err, filestore.ErrMapFault) {
		t.Fatalf("Written after a fault = %v", err)
	}
	if err := s.Written(); err != nil {
		t.Fatalf("Written reports an error once, then %v", err)
	}
	if !errors.Is(r.Healthy(), ErrUnavailable) || !errors.Is(s.Healthy(), ErrUnavailable) {
		t.Fatalf("after a fault on its mapping: Healthy() = %v", r.Healthy())
	}
	if v := counterValue(t, r.m.dropped); v != 1 {
		t.Fatalf("dropped metric %v, want 1", v)
	}
	// the maintainer's probe does not resume the shortened segment: it
	// drops it, and the next probe reports the store healthy
	for deadline := time.Now().Add(5 * time.Second); r.Healthy() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the probe did not find the store writable: %v", r.Healthy())
		}
	}
	must(t, s.Statement(StatementEvent{SQL: "SELECT 4", Actions: []string{"read"}, Decision: DecisionAllow}))
	if got := segPath(t, dir); got == short {
		t.Fatal("recording resumed in the shortened segment")
	}
	if data, _ := os.ReadFile(short); len(bytes.Trim(data, "\x00")) != 0 {
		t.Fatalf("the shortened segment was written again: %q", data)
	}
	must(t, r.Close())
	if ok, _, _ := verifyT(t, dir); ok {
		t.Fatal("verify passes a store whose segment was shortened")
	}
}

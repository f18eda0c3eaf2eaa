package sessions

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// storeText is the concatenated content of every segment file.
func storeText(t *testing.T, dir string) string {
	t.Helper()
	names, err := listSegments(filepath.Join(dir, "sessions"))
	must(t, err)
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, "sessions", n))
		must(t, err)
		b.Write(data)
	}
	return b.String()
}

// blockingFile's writes wait until release is closed.
type blockingFile struct {
	segFile
	release chan struct{}
	entered chan struct{} // receives once per Write that starts waiting (nil: none)
}

func (f blockingFile) Write(p []byte) (int, error) {
	if f.entered != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
	}
	<-f.release
	return f.segFile.Write(p)
}

// TestRecordWritesBeforeReturning: a recording call returns only after its
// event is in the segment file (the write-before-ReadyForQuery guarantee),
// statement after statement. A write that does not return (a hung disk)
// holds only its own caller: another session's call gives up after
// lockTimeout with ErrStalled, Written reports it, the recorder turns
// unhealthy, and once the write returns everything is on disk and chained.
func TestRecordWritesBeforeReturning(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	s := r.Start(StartInfo{ID: "f", User: "alice"})
	for i := 0; i < 50; i++ {
		sql := fmt.Sprintf("SELECT %d AS flush_marker", i)
		must(t, s.Statement(StatementEvent{SQL: sql, Actions: []string{"read"}, Decision: DecisionAllow}))
		if !strings.Contains(storeText(t, dir), sql) {
			t.Fatalf("statement %d not in the segment file when Statement returned", i)
		}
		must(t, s.Written())
	}

	// stall the writes: a new store whose segment writes block
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	orig := openSegFile
	openSegFile = func(p string) (segFile, error) {
		f, err := orig(p)
		if err != nil {
			return nil, err
		}
		return blockingFile{f, release, entered}, nil
	}
	defer func() { openSegFile = orig }()
	r2dir := t.TempDir()
	r2 := openT(t, testCfg(), r2dir)
	first := make(chan error, 1)
	go func() { // its session_start write blocks
		g := r2.Start(StartInfo{ID: "g", User: "bob"})
		first <- g.Written()
	}()
	<-entered // g holds the lock, stalled in its write
	h := &SessionRecorder{r: r2, base: Event{Session: "h", User: "carol"}}
	start := time.Now()
	if err := h.Statement(StatementEvent{SQL: "SELECT 'stalled'", Actions: []string{"read"}, Decision: DecisionAllow}); !errors.Is(err, ErrStalled) {
		t.Fatalf("Statement behind a stalled write = %v, want ErrStalled", err)
	}
	if d := time.Since(start); d < lockTimeout || d > lockTimeout+3*time.Second {
		t.Fatalf("Statement gave up after %v, want ~%v", d, lockTimeout)
	}
	if err := h.Written(); !errors.Is(err, ErrStalled) {
		t.Fatalf("Written after a dropped event = %v", err)
	}
	if err := h.Written(); err != nil {
		t.Fatalf("Written reports an error once, then %v", err)
	}
	if !errors.Is(r2.Healthy(), ErrUnavailable) {
		t.Fatalf("Healthy() while stalled = %v", r2.Healthy())
	}
	close(release)
	select {
	case err := <-first:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled write did not complete after release")
	}
	must(t, h.Statement(StatementEvent{SQL: "SELECT 'after'", Actions: []string{"read"}, Decision: DecisionAllow}))
	must(t, r2.Healthy())
	txt := storeText(t, r2dir)
	if !strings.Contains(txt, "SELECT 'after'") || strings.Contains(txt, "SELECT 'stalled'") {
		t.Fatalf("store after the stall (want 'after' and not the dropped event): %q", txt)
	}
	must(t, r2.Close())
	must(t, r.Close())
	if err := s.Written(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Written after Close = %v", err)
	}
	if err := s.Statement(StatementEvent{SQL: "SELECT 'late'"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Statement after Close = %v", err)
	}
	for _, d := range []string{dir, r2dir} {
		if ok, p, _ := verifyT(t, d); !ok {
			t.Fatalf("%s: %v", d, p)
		}
	}
}

// TestWrittenReportsWriteFailure: a failing disk is reported by Written
// (the glue logs it; Healthy refuses the next statements).
func TestWrittenReportsWriteFailure(t *testing.T) {
	orig := openSegFile
	openSegFile = func(p string) (segFile, error) {
		f, err := orig(p)
		if err != nil {
			return nil, err
		}
		return failingFile{f}, nil
	}
	defer func() { openSegFile = orig }()
	r := openT(t, testCfg(), t.TempDir())
	defer r.Close()
	s := r.Start(StartInfo{ID: "x", User: "u"})
	_ = s.Statement(StatementEvent{SQL: "SELECT 1", Actions: []string{"read"}, Decision: DecisionAllow})
	if err := s.Written(); err == nil {
		t.Fatal("Written after a write to a full disk must fail")
	}
	if !errors.Is(s.Healthy(), ErrUnavailable) {
		t.Fatalf("Healthy() = %v", s.Healthy())
	}
}

// TestFailedOpenOfFirstSegmentRollsChainBack: on a new (empty) store the
// first segment cannot be created (e.g. EMFILE); the event is dropped and
// the chain must roll back to nothing, so the next event is seq 1 with an
// empty prev_hash (no skipped seq, no link to an event that is not on disk).
func TestFailedOpenOfFirstSegmentRollsChainBack(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	orig := openSegFile
	var fail atomic.Bool // the maintainer's probe opens files too
	fail.Store(true)
	openSegFile = func(p string) (segFile, error) {
		if fail.Load() {
			return nil, errors.New("too many open files")
		}
		return orig(p)
	}
	defer func() { openSegFile = orig }()
	s := r.Start(StartInfo{ID: "x", User: "u"})
	if err := s.Written(); err == nil {
		t.Fatal("Written after a failed segment open must fail")
	}
	fail.Store(false)
	must(t, s.Statement(StatementEvent{SQL: "SELECT 1", Actions: []string{"read"}, Decision: DecisionAllow}))
	must(t, s.End("client_closed"))
	must(t, r.Close())
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("chain after a failed open of the first segment: %v %s", p, out)
	}
}

// syncTracker wraps segment files: per path, whether bytes were written
// since the last successful fsync; Sync fails while broken.
type syncTracker struct {
	broken atomic.Bool
	mu     sync.Mutex
	dirty  map[string]bool
	opened []string // segment paths in the order they were opened
	failed map[string]int
}

type trackedFile struct {
	segFile
	tr   *syncTracker
	path string
}

func (f trackedFile) Write(p []byte) (int, error) {
	n, err := f.segFile.Write(p)
	f.tr.mu.Lock()
	f.tr.dirty[f.path] = true
	f.tr.mu.Unlock()
	return n, err
}

func (f trackedFile) Sync() error {
	if f.tr.broken.Load() {
		f.tr.mu.Lock()
		f.tr.failed[f.path]++
		f.tr.mu.Unlock()
		return errors.New("input/output error")
	}
	err := f.segFile.Sync()
	if err == nil {
		f.tr.mu.Lock()
		f.tr.dirty[f.path] = false
		f.tr.mu.Unlock()
	}
	return err
}

// TestFailedFsyncOfRetiredSegmentIsRetried: a segment retired by rotation
// whose fsync fails must be fsynced again once the disk recovers, before
// head.json names an event after it: head.json records only fsynced events.
func TestFailedFsyncOfRetiredSegmentIsRetried(t *testing.T) {
	tr := &syncTracker{dirty: map[string]bool{}, failed: map[string]int{}}
	orig := openSegFile
	openSegFile = func(p string) (segFile, error) {
		f, err := orig(p)
		if err != nil || filepath.Ext(p) != ".jsonl" {
			return f, err
		}
		tr.mu.Lock()
		tr.opened = append(tr.opened, p)
		tr.mu.Unlock()
		return trackedFile{f, tr, p}, nil
	}
	defer func() { openSegFile = orig }()
	dir := t.TempDir()
	cfg := testCfg()
	cfg.RotateBytes = 1500
	r := openT(t, cfg, dir)
	writeSession(t, r, "a", true)
	// the disk starts failing fsync; rotation retires a segment meanwhile
	tr.broken.Store(true)
	writeSession(t, r, "b", true)
	writeSession(t, r, "c", true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr.mu.Lock()
		retiredFailed := false
		for _, p := range tr.opened[:len(tr.opened)-1] { // not the active one
			retiredFailed = retiredFailed || (tr.failed[p] > 0 && tr.dirty[p])
		}
		tr.mu.Unlock()
		if retiredFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no fsync of a retired segment failed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tr.broken.Store(false)
	writeSession(t, r, "d", true)
	must(t, r.Close())
	h, ok, err := readHead(filepath.Join(dir, "sessions"))
	must(t, err)
	if !ok {
		t.Fatal("no head.json after Close")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for p, d := range tr.dirty {
		if d {
			t.Errorf("%s: written but never fsynced, yet head.json records seq %d", filepath.Base(p), h.Seq)
		}
	}
	if ok, p, _ := verifyT(t, dir); !ok {
		t.Fatal(p)
	}
}

// probeFile: Sync fails while broken; on the probe file it blocks until
// release is closed (a disk whose fsync hangs).
type probeFile struct {
	segFile
	path    string
	broken  *atomic.Bool
	blocked *atomic.Int32
	release chan struct{}
}

func (f probeFile) Sync() error {
	if f.broken.Load() {
		return errors.New("input/output error")
	}
	if filepath.Base(f.path) == ".probe" {
		f.blocked.Add(1)
		<-f.release
	}
	return f.segFile.Sync()
}

// TestProbeFsyncDoesNotHoldTheStoreLock: the maintainer fsyncs without the
// store lock, the probe of an unhealthy store too. While the probe's fsync
// hangs, a session's write (which works) must not wait for it and fail with
// ErrStalled.
func TestProbeFsyncDoesNotHoldTheStoreLock(t *testing.T) {
	var broken atomic.Bool
	var blocked atomic.Int32
	release := make(chan struct{})
	orig := openSegFile
	openSegFile = func(p string) (segFile, error) {
		f, err := orig(p)
		if err != nil {
			return nil, err
		}
		return probeFile{f, p, &broken, &blocked, release}, nil
	}
	defer func() { openSegFile = orig }()
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
		must(t, r.Close())
	}()
	s := r.Start(StartInfo{ID: "p", User: "u"})
	must(t, s.Written())
	broken.Store(true) // fsync fails: the recorder turns unhealthy
	must(t, s.Statement(StatementEvent{SQL: "SELECT 1", Actions: []string{"read"}, Decision: DecisionAllow}))
	deadline := time.Now().Add(5 * time.Second)
	for r.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a failed fsync did not make the recorder unhealthy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	broken.Store(false) // now fsync hangs in the probe
	for blocked.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no probe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := s.Statement(StatementEvent{SQL: "SELECT 2", Actions: []string{"read"}, Decision: DecisionAllow}); err != nil {
		t.Fatalf("a write while the probe's fsync hangs: %v after %v", err, time.Since(start))
	}
	close(release)
	for r.Healthy() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("did not recover: %v", r.Healthy())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

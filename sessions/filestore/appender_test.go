package filestore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/sessions/record"
)

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

// TestRecordWritesBeforeReturning: a Write returns only after its event
// is in the segment file (the write-before-ReadyForQuery guarantee),
// event after event. A write that does not return (a hung disk) holds
// only its own caller: another session's Write gives up after the lock
// timeout with ErrStalled, the store is reported unhealthy with it, and
// once the write returns everything is on disk and chained.
func TestRecordWritesBeforeReturning(t *testing.T) {
	dir := t.TempDir()
	a, _ := openT(t, testOpts(), dir)
	s, err := startSession(a, "f", "alice")
	must(t, err)
	for i := 0; i < 50; i++ {
		sql := fmt.Sprintf("SELECT %d AS flush_marker", i)
		must(t, s.stmt(sql))
		if !strings.Contains(storeText(t, dir), sql) {
			t.Fatalf("statement %d not in the segment file when Write returned", i)
		}
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
	a2, h2 := openT(t, testOpts(), r2dir)
	first := make(chan error, 1)
	go func() { // its session_start write blocks
		_, err := startSession(a2, "g", "bob")
		first <- err
	}()
	<-entered // g holds the lock, stalled in its write
	h := &session{a: a2, base: record.Event{Session: "h", User: "carol"}}
	start := time.Now()
	if err := h.stmt("SELECT 'stalled'"); !errors.Is(err, record.ErrStalled) {
		t.Fatalf("Write behind a stalled write = %v, want ErrStalled", err)
	}
	if d := time.Since(start); d < DefaultLockTimeout || d > DefaultLockTimeout+3*time.Second {
		t.Fatalf("Write gave up after %v, want ~%v", d, DefaultLockTimeout)
	}
	if n := h2.dropped.Load(); n != 1 {
		t.Fatalf("dropped %d events, want the stalled one", n)
	}
	if err := h2.Health(); !errors.Is(err, record.ErrStalled) {
		t.Fatalf("health while stalled = %v", err)
	}
	close(release)
	select {
	case err := <-first:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled write did not complete after release")
	}
	must(t, h.stmt("SELECT 'after'"))
	must(t, h2.Health())
	txt := storeText(t, r2dir)
	if !strings.Contains(txt, "SELECT 'after'") || strings.Contains(txt, "SELECT 'stalled'") {
		t.Fatalf("store after the stall (want 'after' and not the dropped event): %q", txt)
	}
	a2.Shutdown()
	a.Shutdown()
	if err := s.stmt("SELECT 'late'"); !errors.Is(err, record.ErrClosed) {
		t.Fatalf("Write after Shutdown = %v", err)
	}
	for _, d := range []string{dir, r2dir} {
		if ok, p, _ := verifyT(t, d); !ok {
			t.Fatalf("%s: %v", d, p)
		}
	}
}

// TestWrittenReportsWriteFailure: a failing disk fails the Write and
// reports the store unhealthy (the recorder then refuses the next
// statements).
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
	a, h := openT(t, testOpts(), t.TempDir())
	defer a.Shutdown()
	s := &session{a: a, base: record.Event{Session: "x", User: "u"}}
	if err := s.stmt("SELECT 1"); err == nil {
		t.Fatal("a write to a full disk must fail")
	}
	if !errors.Is(h.Health(), errUnavailable) {
		t.Fatalf("health = %v", h.Health())
	}
}

// TestFailedOpenOfFirstSegmentRollsChainBack: on a new (empty) store the
// first segment cannot be created (e.g. EMFILE); the event is dropped and
// the chain must roll back to nothing, so the next event is seq 1 with an
// empty prev_hash (no skipped seq, no link to an event that is not on disk).
func TestFailedOpenOfFirstSegmentRollsChainBack(t *testing.T) {
	dir := t.TempDir()
	a, _ := openT(t, testOpts(), dir)
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
	s, err := startSession(a, "x", "u")
	if err == nil {
		t.Fatal("Write after a failed segment open must fail")
	}
	fail.Store(false)
	must(t, s.stmt("SELECT 1"))
	must(t, s.end("client_closed"))
	a.Shutdown()
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
	opts := testOpts()
	opts.RotateBytes = 1500
	a, _ := openT(t, opts, dir)
	writeSession(t, a, "a", true)
	// the disk starts failing fsync; rotation retires a segment meanwhile
	tr.broken.Store(true)
	writeSession(t, a, "b", true)
	writeSession(t, a, "c", true)
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
	writeSession(t, a, "d", true)
	a.Shutdown()
	h, ok, err := ReadHead(dir)
	must(t, err)
	if !ok {
		t.Fatal("no head.json after Shutdown")
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
	a, h := openT(t, testOpts(), dir)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
		a.Shutdown()
	}()
	s, err := startSession(a, "p", "u")
	must(t, err)
	broken.Store(true) // fsync fails: the store turns unhealthy
	must(t, s.stmt("SELECT 1"))
	deadline := time.Now().Add(5 * time.Second)
	for h.Health() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a failed fsync did not make the store unhealthy")
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
	if err := s.stmt("SELECT 2"); err != nil {
		t.Fatalf("a write while the probe's fsync hangs: %v after %v", err, time.Since(start))
	}
	close(release)
	for h.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("did not recover: %v", h.Health())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failingFile simulates a full disk.
type failingFile struct{ segFile }

func (failingFile) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }
func (failingFile) Sync() error               { return errors.New("no space left on device") }

func TestUnwritableStoreIsUnhealthy(t *testing.T) {
	dir := t.TempDir()
	a, h := openT(t, testOpts(), dir)
	if err := h.Health(); err != nil {
		t.Fatalf("fresh store unhealthy: %v", err)
	}
	orig := openSegFile
	broken := true
	var mu sync.Mutex
	openSegFile = func(p string) (segFile, error) {
		f, err := orig(p)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || !broken {
			return f, err
		}
		return failingFile{f}, nil
	}
	defer func() { openSegFile = orig }()
	s, _ := startSession(a, "x", "u")
	if err := s.stmt("SELECT 1"); err == nil {
		t.Fatal("a write to a full disk must be reported")
	}
	if err := h.Health(); !errors.Is(err, errUnavailable) {
		t.Fatalf("health = %v, want unavailable", err)
	}
	if v := h.dropped.Load(); v < 2 {
		t.Fatalf("dropped %v", v)
	}
	// the disk recovers: the probe clears the state, later events chain on
	mu.Lock()
	broken = false
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for h.Health() != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := h.Health(); err != nil {
		t.Fatalf("did not recover: %v", err)
	}
	_ = s.stmt("SELECT 2")
	_ = s.end("client_closed")
	a.Shutdown()
	if ok, p, _ := verifyT(t, dir); !ok {
		t.Fatalf("chain broken after a write failure: %v", p)
	}
}

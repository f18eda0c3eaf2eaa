package sessions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
}

func (f blockingFile) Write(p []byte) (int, error) {
	<-f.release
	return f.segFile.Write(p)
}

// TestFlushTimeoutWritesBeforeReturning: with its reused channel and timer,
// FlushTimeout still returns only after the session's events are in the
// segment file (the write-before-ReadyForQuery barrier), statement after
// statement; a stalled writer makes it time out, and the next call (with a
// new channel) again waits for the write.
func TestFlushTimeoutWritesBeforeReturning(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	s := r.Start(StartInfo{ID: "f", User: "alice"})
	for i := 0; i < 50; i++ {
		sql := fmt.Sprintf("SELECT %d AS flush_marker", i)
		must(t, s.Statement(StatementEvent{SQL: sql, Actions: []string{"read"}, Decision: DecisionAllow}))
		must(t, s.FlushTimeout(5*time.Second))
		if !strings.Contains(storeText(t, dir), sql) {
			t.Fatalf("statement %d not in the segment file when FlushTimeout returned", i)
		}
	}

	// stall the writer: a new segment whose writes block
	release := make(chan struct{})
	orig := openSegFile
	openSegFile = func(p string) (segFile, error) {
		f, err := orig(p)
		if err != nil {
			return nil, err
		}
		return blockingFile{f, release}, nil
	}
	defer func() { openSegFile = orig }()
	r2dir := t.TempDir()
	r2 := openT(t, testCfg(), r2dir)
	s2 := r2.Start(StartInfo{ID: "g", User: "bob"})
	must(t, s2.Statement(StatementEvent{SQL: "SELECT 'stalled'", Actions: []string{"read"}, Decision: DecisionAllow}))
	start := time.Now()
	if err := s2.FlushTimeout(100 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FlushTimeout with a stalled writer = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 3*time.Second {
		t.Fatalf("FlushTimeout returned after %v", d)
	}
	close(release)
	must(t, s2.Statement(StatementEvent{SQL: "SELECT 'after'", Actions: []string{"read"}, Decision: DecisionAllow}))
	must(t, s2.FlushTimeout(5*time.Second))
	if txt := storeText(t, r2dir); !strings.Contains(txt, "SELECT 'stalled'") || !strings.Contains(txt, "SELECT 'after'") {
		t.Fatalf("events missing after the stall: %q", txt)
	}
	must(t, r2.Close())
	must(t, r.Close())
	if err := s.FlushTimeout(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("FlushTimeout after Close = %v", err)
	}
	for _, d := range []string{dir, r2dir} {
		if ok, p, _ := verifyT(t, d); !ok {
			t.Fatalf("%s: %v", d, p)
		}
	}
}

// TestFlushTimeoutReportsWriteFailure: a failing disk is reported by the
// barrier (the glue logs it; Healthy refuses the next statements).
func TestFlushTimeoutReportsWriteFailure(t *testing.T) {
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
	if err := s.FlushTimeout(5 * time.Second); err == nil {
		t.Fatal("FlushTimeout to a full disk must fail")
	}
	if !errors.Is(s.Healthy(), ErrUnavailable) {
		t.Fatalf("Healthy() = %v", s.Healthy())
	}
}

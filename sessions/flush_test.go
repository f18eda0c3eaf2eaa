package sessions

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/sessions/filestore"
)

// storeText is the concatenated content of every segment file.
func storeText(t *testing.T, dir string) string {
	t.Helper()
	names, err := filestore.ListSegments(filepath.Join(dir, "sessions"))
	must(t, err)
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, "sessions", n))
		must(t, err)
		b.Write(data)
	}
	return b.String()
}

// TestRecordWritesBeforeReturning: a recording call returns only after its
// event is in the segment file (the write-before-ReadyForQuery guarantee),
// statement after statement, and after Close every call fails with
// ErrClosed. (A write that does not return, and what it does to the
// others, is the file store's: sessions/filestore's test of this name.)
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
	must(t, r.Close())
	if err := s.Written(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Written after Close = %v", err)
	}
	if err := s.Statement(StatementEvent{SQL: "SELECT 'late'"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Statement after Close = %v", err)
	}
	if ok, p, _ := verifyT(t, dir); !ok {
		t.Fatalf("%s: %v", dir, p)
	}
}

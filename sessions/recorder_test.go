package sessions

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
)

func sp(s string) *string { return &s }

func testCfg() config.Recording {
	c := config.Default().Recording
	c.SyncEvery = 10 * time.Millisecond
	return c
}

func openT(t *testing.T, cfg config.Recording, dir string) *Recorder {
	t.Helper()
	r, err := Open(cfg, config.Store{Dir: dir}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// writeSession records a small session and returns its id.
func writeSession(t *testing.T, r *Recorder, id string, end bool) {
	t.Helper()
	s := r.Start(StartInfo{ID: id, User: "alice@example.com", Groups: []string{"analyst"}, ClientAddr: "127.0.0.1:50000",
		ApplicationName: "psql", Database: "vectors", BackendUser: "pgw_alice_1"})
	must(t, s.Statement(StatementEvent{SQL: "SELECT id, email FROM customers LIMIT 2", Actions: []string{"read"}, Decision: DecisionAllow,
		Columns: []string{"id", "email"}, Rows: textRows([]*string{sp("1"), sp("a***@example.com")}, []*string{sp("2"), nil}), Duration: 1500 * time.Microsecond}))
	must(t, s.Statement(StatementEvent{SQL: "DELETE FROM documents", Actions: []string{"bulk_delete"}, Decision: DecisionDeny,
		Error: "pgwarden: policy denies bulk_delete for groups analyst"}))
	must(t, s.Statement(StatementEvent{SQL: "ALTER ROLE bob PASSWORD 'hunter2'", Params: []*string{sp("p")}, Actions: []string{"admin"}, Decision: DecisionDeny}))
	if end {
		must(t, s.End("client_closed"))
	}
	must(t, s.Written()) // every call wrote its event before it returned
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func verifyT(t *testing.T, dir string) (bool, *Problem, string) {
	t.Helper()
	st, err := OpenStore(dir)
	must(t, err)
	var out bytes.Buffer
	ok, p, err := st.Verify(&out)
	must(t, err)
	return ok, p, out.String()
}

func TestRecordAndVerify(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	writeSession(t, r, "s1", true)
	must(t, r.Close())
	ok, p, out := verifyT(t, dir)
	if !ok {
		t.Fatalf("verify failed: %v %s", p, out)
	}
	st, _ := OpenStore(dir)
	evs, err := st.Get("s1")
	must(t, err)
	types := []string{}
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "session_start,statement,statement,statement,session_end" {
		t.Fatalf("events %s", got)
	}
	if evs[1].Rows[1][1] != nil || *evs[1].Rows[1][0] != "2" || evs[1].RowsTotal != 2 || evs[1].DurationUS != 1500 {
		t.Fatalf("statement not recorded faithfully: %+v", evs[1])
	}
	if evs[3].Params != nil || strings.Contains(evs[3].SQL, "hunter2") {
		t.Fatalf("secret recorded: %+v", evs[3])
	}
	raw := readAll(t, dir)
	if strings.Contains(raw, "hunter2") {
		t.Fatal("password literal in the store files")
	}
	if evs[0].PrevHash != "" || evs[1].PrevHash != evs[0].Hash || evs[4].Seq != 5 {
		t.Fatal("chain links wrong")
	}
}

func readAll(t *testing.T, dir string) string {
	var b strings.Builder
	names, _ := listSegments(filepath.Join(dir, "sessions"))
	for _, n := range names {
		d, err := os.ReadFile(filepath.Join(dir, "sessions", n))
		must(t, err)
		b.Write(d)
	}
	return b.String()
}

func segPath(t *testing.T, dir string) string {
	names, err := listSegments(filepath.Join(dir, "sessions"))
	must(t, err)
	return filepath.Join(dir, "sessions", names[len(names)-1])
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := map[string]func(lines []string) []string{
		"flip byte in sql": func(l []string) []string {
			l[1] = strings.Replace(l[1], "customers", "customerz", 1)
			return l
		},
		"flip key case": func(l []string) []string { l[2] = strings.Replace(l[2], `"sql"`, `"Sql"`, 1); return l },
		"delete line":   func(l []string) []string { return append(l[:2], l[3:]...) },
		"swap lines":    func(l []string) []string { l[1], l[2] = l[2], l[1]; return l },
		"delete last line (session_end)": func(l []string) []string {
			return l[:len(l)-2]
		},
		"truncate mid-line": func(l []string) []string {
			l[len(l)-2] = l[len(l)-2][:20]
			return l[:len(l)-1]
		},
		"recompute nothing, edit rows": func(l []string) []string {
			l[1] = strings.Replace(l[1], "a***@example.com", "alice@example.com", 1)
			return l
		},
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			r := openT(t, testCfg(), dir)
			writeSession(t, r, "s1", true)
			must(t, r.Close())
			if ok, p, _ := verifyT(t, dir); !ok {
				t.Fatalf("untampered store fails: %v", p)
			}
			path := segPath(t, dir)
			data, _ := os.ReadFile(path)
			lines := strings.SplitAfter(string(data), "\n") // last element ""
			trimmed := make([]string, len(lines))
			copy(trimmed, lines)
			out := mut(trimmed)
			must(t, os.WriteFile(path, []byte(strings.Join(out, "")), 0o600))
			ok, p, msg := verifyT(t, dir)
			if ok || p == nil {
				t.Fatalf("tampering not detected: %s", msg)
			}
			if !strings.HasPrefix(msg, "FAILED: ") {
				t.Fatalf("verdict %q", msg)
			}
			t.Log(msg)
		})
	}
}

func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	writeSession(t, r, "crashed", false) // no End: the gateway "dies"
	writeSession(t, r, "clean", true)
	// simulate kill -9: stop the recorder without its final events, and
	// tear the last line
	r.halt()
	f, err := os.OpenFile(segPath(t, dir), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, _ = f.WriteString(`{"seq":99,"time":"2025-01-`)
	f.Close()
	if ok, _, _ := verifyT(t, dir); ok {
		t.Fatal("a torn tail must fail verify before recovery")
	}
	r2 := openT(t, testCfg(), dir)
	must(t, r2.Close())
	ok, p, out := verifyT(t, dir)
	if !ok {
		t.Fatalf("verify after recovery: %v %s", p, out)
	}
	st, _ := OpenStore(dir)
	evs, err := st.Get("crashed")
	must(t, err)
	last := evs[len(evs)-1]
	if last.Type != TypeSessionEnd || last.Reason != ReasonGatewayRestart || last.User != "alice@example.com" {
		t.Fatalf("last event %+v", last)
	}
	if len(evs) != 5 {
		t.Fatalf("crashed session has %d events, want 5 (every flushed statement)", len(evs))
	}
	clean, _ := st.Get("clean")
	if clean[len(clean)-1].Reason != "client_closed" {
		t.Fatal("clean session must keep its own end")
	}
	torn, _ := filepath.Glob(filepath.Join(dir, "sessions", "torn-*.bin"))
	if len(torn) != 1 {
		t.Fatalf("torn fragment not kept: %v", torn)
	}
}

func TestRotationAndRetention(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.RotateBytes = 2000
	cfg.Retention = time.Hour
	r := openT(t, cfg, dir)
	now := time.Now().UTC().Add(-3 * time.Hour)
	f := r.w.(*fileAppender)
	f.lock(0) // the maintainer and recording calls read r.now under the lock
	r.now = func() time.Time { return now }
	f.unlock()
	for i := 0; i < 10; i++ {
		writeSession(t, r, "old"+string(rune('a'+i)), true)
	}
	must(t, r.Close())
	names, _ := listSegments(filepath.Join(dir, "sessions"))
	if len(names) < 4 {
		t.Fatalf("expected rotation into several segments, got %d", len(names))
	}
	if ok, p, _ := verifyT(t, dir); !ok {
		t.Fatalf("verify after rotation: %v", p)
	}
	// reopen 3h later: retention deletes all sealed old segments
	r2 := openT(t, cfg, dir)
	writeSession(t, r2, "new", true)
	must(t, r2.Close())
	after, _ := listSegments(filepath.Join(dir, "sessions"))
	if len(after) >= len(names) || segFirstSeq(after[0]) == 1 {
		t.Fatalf("retention deleted nothing: before %v after %v", names, after)
	}
	ok, p, out := verifyT(t, dir)
	if !ok {
		t.Fatalf("verify after retention: %v", p)
	}
	t.Log(out)
	// deleting one more old segment by hand is NOT retention
	if len(after) > 2 {
		must(t, os.Remove(filepath.Join(dir, "sessions", after[0])))
		if ok, _, _ := verifyT(t, dir); ok {
			t.Fatal("a segment deleted without a retention marker must fail verify")
		}
	}
}

func TestHeadCatchesDeletedTailSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.RotateBytes = 1500
	r := openT(t, cfg, dir)
	for i := 0; i < 4; i++ {
		writeSession(t, r, "s"+string(rune('a'+i)), true)
	}
	must(t, r.Close())
	names, _ := listSegments(filepath.Join(dir, "sessions"))
	must(t, os.Remove(filepath.Join(dir, "sessions", names[len(names)-1])))
	if ok, _, msg := verifyT(t, dir); ok {
		t.Fatal("deleting the newest segment must fail verify")
	} else {
		t.Log(msg)
	}
}

// halt stops r like a kill -9 would: no final events, no more writes.
func (r *Recorder) halt() {
	r.closed.Store(true)
	f := r.w.(*fileAppender)
	f.lock(0)
	f.shut = true
	f.unlock()
	close(f.stop)
	<-f.done
	close(r.done)
}

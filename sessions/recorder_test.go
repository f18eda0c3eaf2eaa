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
	"github.com/pgwarden/pgwarden/sessions/filestore"
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
	names, _ := filestore.ListSegments(filepath.Join(dir, "sessions"))
	for _, n := range names {
		d, err := os.ReadFile(filepath.Join(dir, "sessions", n))
		must(t, err)
		b.Write(d)
	}
	return b.String()
}

func segPath(t *testing.T, dir string) string {
	names, err := filestore.ListSegments(filepath.Join(dir, "sessions"))
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

func TestHeadCatchesDeletedTailSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.RotateBytes = 1500
	r := openT(t, cfg, dir)
	for i := 0; i < 4; i++ {
		writeSession(t, r, "s"+string(rune('a'+i)), true)
	}
	must(t, r.Close())
	names, _ := filestore.ListSegments(filepath.Join(dir, "sessions"))
	must(t, os.Remove(filepath.Join(dir, "sessions", names[len(names)-1])))
	if ok, _, msg := verifyT(t, dir); ok {
		t.Fatal("deleting the newest segment must fail verify")
	} else {
		t.Log(msg)
	}
}

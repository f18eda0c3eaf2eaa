package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/sessions/filestore"
)

func testLog(t *testing.T) zerolog.Logger { return zerolog.New(zerolog.NewTestWriter(t)) }

func TestListReplayExport(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	writeSession(t, r, "s1", true)
	s2 := r.Start(StartInfo{ID: "s2", User: "bob", Groups: []string{"ingest"}, Database: "vectors"})
	must(t, s2.Statement(StatementEvent{SQL: "INSERT INTO documents VALUES ($1)", Params: []*string{sp("x")}, Actions: []string{"insert"}, Decision: DecisionAllow, RowsTotal: 1}))
	must(t, s2.Approval(ApprovalEvent{ID: "ap1", State: "pending", SQL: "TRUNCATE documents", Actions: []string{"truncate"}}))
	must(t, s2.Approval(ApprovalEvent{ID: "ap1", State: "approved", DecidedBy: "carol"}))
	must(t, s2.End("client_closed"))
	must(t, r.Close())
	st, err := OpenStore(dir)
	must(t, err)

	all, err := st.List(Filter{})
	must(t, err)
	if len(all) != 2 || all[0].ID != "s1" || all[0].Statements != 3 || all[0].Denied != 2 || all[0].Active {
		t.Fatalf("list: %+v", all)
	}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{User: "bob"}, "s2"},
		{Filter{Action: "bulk_delete"}, "s1"},
		{Filter{Decision: "approved"}, "s2"},
		{Filter{Action: "insert", User: "alice@example.com"}, ""},
		{Filter{Since: time.Now().Add(time.Hour)}, ""},
	} {
		got, err := st.List(c.f)
		must(t, err)
		ids := []string{}
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if strings.Join(ids, ",") != c.want {
			t.Errorf("List(%+v) = %v, want %q", c.f, ids, c.want)
		}
	}

	var out bytes.Buffer
	must(t, st.Replay(context.Background(), &out, "s1", false))
	tr := out.String()
	for _, want := range []string{
		"alice@example.com@vectors=> SELECT id, email FROM customers LIMIT 2;",
		"-- action: read  decision: allow  time: 1.500 ms",
		" id |      email       \n----+------------------\n 1  | a***@example.com \n 2  |                  \n(2 rows)\n",
		"ERROR:  pgwarden: policy denies bulk_delete",
		"session ended: client_closed",
	} {
		if !strings.Contains(tr, want) {
			t.Fatalf("replay lacks %q:\n%s", want, tr)
		}
	}
	if err := st.Replay(context.Background(), &out, "nope", false); err != ErrNotFound {
		t.Fatalf("replay unknown: %v", err)
	}

	out.Reset()
	must(t, st.Export(&out, time.Time{}, "jsonl"))
	if n := strings.Count(out.String(), "\n"); n != 10 {
		t.Fatalf("jsonl export has %d lines:\n%s", n, out.String())
	}
	out.Reset()
	must(t, st.Export(&out, time.Time{}, "ocsf"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var o map[string]any
	must(t, json.Unmarshal([]byte(lines[2]), &o)) // the denied DELETE
	if o["class_uid"].(float64) != 6005 || o["category_uid"].(float64) != 6 || o["activity_id"].(float64) != 7 ||
		o["type_uid"].(float64) != 600507 || o["status_id"].(float64) != 2 {
		t.Fatalf("ocsf: %v", o)
	}
	if o["actor"].(map[string]any)["user"].(map[string]any)["name"] != "alice@example.com" ||
		o["src_endpoint"].(map[string]any)["port"].(float64) != 50000 ||
		o["query_info"].(map[string]any)["query_string"] != "DELETE FROM documents" ||
		o["metadata"].(map[string]any)["uid"] == "" {
		t.Fatalf("ocsf fields: %v", o)
	}
	if err := st.Export(&out, time.Time{}, "csv"); err == nil {
		t.Fatal("unknown format accepted")
	}
	out.Reset()
	must(t, st.Export(&out, time.Now().Add(time.Hour), "jsonl"))
	if out.Len() != 0 {
		t.Fatal("since filter ignored")
	}
}

func TestReplayFollow(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	s := r.Start(StartInfo{ID: "live", User: "u", Database: "vectors"})
	must(t, s.Written())
	st, _ := OpenStore(dir)
	done := make(chan error, 1)
	var out syncBuf
	go func() { done <- st.Replay(context.Background(), &out, "live", true) }()
	time.Sleep(300 * time.Millisecond)
	must(t, s.Statement(StatementEvent{SQL: "SELECT 42", Actions: []string{"read"}, Decision: DecisionAllow, Columns: []string{"x"}, Rows: textRows([]*string{sp("42")})}))
	must(t, s.End("client_closed"))
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not stop at session_end")
	}
	must(t, r.Close())
	if !strings.Contains(out.String(), "u@vectors=> SELECT 42;") || !strings.Contains(out.String(), "(1 row)") {
		t.Fatalf("follow output:\n%s", out.String())
	}
}

type syncBuf struct {
	mu chanMutex
	b  bytes.Buffer
}
type chanMutex struct{ c chan struct{} }

func (m *chanMutex) lock() {
	if m.c == nil {
		m.c = make(chan struct{}, 1)
	}
	m.c <- struct{}{}
}
func (m *chanMutex) unlock()                   { <-m.c }
func (s *syncBuf) Write(p []byte) (int, error) { s.mu.lock(); defer s.mu.unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.lock(); defer s.mu.unlock(); return s.b.String() }

func TestAPIHandler(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	writeSession(t, r, "s1", true)
	must(t, r.Close())
	st, _ := OpenStore(dir)
	srv := httptest.NewServer(st.APIHandler())
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		must(t, err)
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, m := get("/api/v1/sessions?user=alice@example.com&since=1h&action=read")
	if code != 200 || len(m["sessions"].([]any)) != 1 {
		t.Fatalf("list: %d %v", code, m)
	}
	code, m = get("/api/v1/sessions?user=nobody")
	if code != 200 || len(m["sessions"].([]any)) != 0 {
		t.Fatalf("empty list must be [] : %d %v", code, m)
	}
	code, m = get("/api/v1/sessions/s1")
	if code != 200 || len(m["events"].([]any)) != 5 {
		t.Fatalf("get: %d %v", code, m)
	}
	if code, _ = get("/api/v1/sessions/zzz"); code != 404 {
		t.Fatalf("unknown: %d", code)
	}
	if code, _ = get("/api/v1/sessions?since=yesterday"); code != 400 {
		t.Fatalf("bad since: %d", code)
	}
}

// FuzzVerify: arbitrary segment bytes never panic the readers.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2025-01-01T00:00:00.000000000Z","session":"s","type":"session_start","prev_hash":"","hash":"00"}` + "\n"))
	f.Add([]byte("{\"seq\":1}\n{\"seq\":\n"))
	f.Add([]byte("\n\n\x00garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		sd := filepath.Join(dir, "sessions")
		if err := os.MkdirAll(sd, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sd, filestore.SegName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := OpenStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		ok, p, err := st.Verify(&bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if ok == (p != nil) {
			t.Fatal("ok and problem disagree")
		}
		_, _ = st.List(Filter{})
		_ = st.Export(&bytes.Buffer{}, time.Time{}, "ocsf")
		_ = st.Replay(context.Background(), &bytes.Buffer{}, "s", false)
	})
}

// An End enqueued right before Close must not be followed by a second,
// recorder-made session_end (gateway_shutdown).
func TestCloseRightAfterEnd(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	for i := 0; i < 50; i++ {
		s := r.Start(StartInfo{ID: "c" + string(rune('A'+i)), User: "u"})
		must(t, s.End("client_closed"))
	}
	open := r.Start(StartInfo{ID: "still-open", User: "u"})
	_ = open
	must(t, r.Close())
	st, _ := OpenStore(dir)
	var out bytes.Buffer
	must(t, st.Export(&out, time.Time{}, "jsonl"))
	if n := strings.Count(out.String(), `"reason":"gateway_shutdown"`); n != 1 {
		t.Fatalf("%d gateway_shutdown ends, want 1 (only the open session)", n)
	}
}

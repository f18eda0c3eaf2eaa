package sessions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions/filestore"
)

// siem is a local HTTP receiver that fails its first `fail` requests.
type siem struct {
	mu       sync.Mutex
	fail     int
	requests int
	byKey    map[string]string // Idempotency-Key -> body
	hashes   map[string]int    // event hash -> times received
	conflict string
}

func (s *siem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.requests <= s.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if prev, ok := s.byKey[key]; ok && prev != string(body) {
		s.conflict = key
	}
	s.byKey[key] = string(body)
	var evs []Event
	if err := json.Unmarshal(body, &evs); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	if len(evs) == 0 || evs[0].Hash != key {
		s.conflict = "key is not the first event's hash"
	}
	for _, e := range evs {
		s.hashes[e.Hash]++
	}
}

func (s *siem) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hashes)
}

func TestWebhookAtLeastOnceAcrossOutageAndRestart(t *testing.T) {
	rcv := &siem{fail: 3, byKey: map[string]string{}, hashes: map[string]int{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	dir := t.TempDir()
	cfg := testCfg()
	cfg.Sinks = []config.Sink{{Type: "file"}, {Type: "webhook", URL: srv.URL + "/ingest?token=s3cret"}}
	reg := prometheus.NewRegistry()
	r, err := Open(cfg, config.Store{Dir: dir}, testLog(t), reg)
	must(t, err)
	writeSession(t, r, "w1", true)
	writeSession(t, r, "w2", false)
	must(t, r.Close()) // w2 gets gateway_shutdown; some events may be undelivered
	// restart: the rest comes from the on-disk store via the cursor
	r2, err := Open(cfg, config.Store{Dir: dir}, testLog(t), reg)
	must(t, err)
	writeSession(t, r2, "w3", true)
	st, _ := OpenStore(dir)
	var all bytes.Buffer
	must(t, st.Export(&all, time.Time{}, "jsonl"))
	want := strings.Count(all.String(), "\n")
	deadline := time.Now().Add(20 * time.Second)
	for rcv.received() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	must(t, r2.Close())
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.hashes) != want {
		t.Fatalf("received %d distinct events, want %d", len(rcv.hashes), want)
	}
	for _, line := range strings.Split(strings.TrimSpace(all.String()), "\n") {
		var e Event
		must(t, json.Unmarshal([]byte(line), &e))
		if rcv.hashes[e.Hash] == 0 {
			t.Fatalf("event %d never delivered", e.Seq)
		}
	}
	if rcv.conflict != "" {
		t.Fatalf("idempotency key reused with different content: %s", rcv.conflict)
	}
	if rcv.requests <= 3 {
		t.Fatal("the receiver's failures were not exercised")
	}
}

func TestWebhookOCSF(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var arr []map[string]any
		_ = json.NewDecoder(r.Body).Decode(&arr)
		mu.Lock()
		got = append(got, arr...)
		mu.Unlock()
	}))
	defer srv.Close()
	cfg := testCfg()
	cfg.Sinks = []config.Sink{{Type: "webhook", URL: srv.URL, Format: "ocsf"}}
	r := openT(t, cfg, t.TempDir())
	writeSession(t, r, "o1", true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, r.Close())
	if len(got) != 5 {
		t.Fatalf("got %d OCSF events", len(got))
	}
	if got[0]["class_uid"].(float64) != 6005 || got[0]["activity_id"].(float64) != 3 || got[1]["activity_id"].(float64) != 1 {
		t.Fatalf("OCSF mapping: %v / %v", got[0], got[1])
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	var m dto.Metric
	must(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// gateWriter blocks every Write until open is closed, then records it.
type gateWriter struct {
	open chan struct{}
	mu   sync.Mutex
	b    bytes.Buffer
}

func (g *gateWriter) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Write(p)
}

// TestStdoutSinkDoesNotHoldTheStore: a standard output nobody reads does
// not stall recording (the sink has its own goroutine and queue), and once
// it drains it carries exactly the store's lines in store order.
func TestStdoutSinkDoesNotHoldTheStore(t *testing.T) {
	g := &gateWriter{open: make(chan struct{})}
	orig := stdoutSink
	stdoutSink = g
	defer func() { stdoutSink = orig }()
	cfg := testCfg()
	cfg.Sinks = []config.Sink{{Type: "stdout"}}
	dir := t.TempDir()
	r := openT(t, cfg, dir)
	s := r.Start(StartInfo{ID: "out", User: "u"})
	for i := 0; i < 200; i++ {
		start := time.Now()
		must(t, s.Statement(StatementEvent{SQL: fmt.Sprintf("SELECT %d", i), Actions: []string{"read"}, Decision: DecisionAllow}))
		if d := time.Since(start); d > filestore.DefaultLockTimeout/2 {
			t.Fatalf("statement %d took %v with standard output blocked", i, d)
		}
	}
	must(t, s.End("client_closed"))
	close(g.open)
	must(t, r.Close())
	if got, want := g.b.String(), storeText(t, dir); got != want {
		t.Fatalf("stdout sink (%d bytes) differs from the store (%d bytes)", len(got), len(want))
	}
}

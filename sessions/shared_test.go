package sessions

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
)

var (
	sharedCluster *pgtest.Cluster
	sharedErr     error
	sharedOnce    sync.Once
	sharedDBs     atomic.Int32
)

// sharedDB returns a migrated shared store on a new database of the
// package's one PostgreSQL server (started on first use, stopped by
// TestMain).
func sharedDB(tb testing.TB) (*sharedstore.Store, string) {
	tb.Helper()
	sharedOnce.Do(func() {
		if sharedErr = pgtest.Available(); sharedErr != nil {
			return
		}
		dir, err := os.MkdirTemp("", "pgwarden-sessions-pg-")
		if err != nil {
			sharedErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		sharedCluster, sharedErr = pgtest.Start(ctx, filepath.Join(dir, "data"), pgtest.Options{})
		stopShared = func() { sharedCluster.Stop(); os.RemoveAll(dir) }
	})
	if sharedErr != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal(sharedErr)
		}
		tb.Skip(sharedErr)
	}
	name := fmt.Sprintf("events%d", sharedDBs.Add(1))
	if err := sharedCluster.CreateDB(context.Background(), name); err != nil {
		tb.Fatal(err)
	}
	dsn := sharedCluster.SuperDSN(name)
	return openShared(tb, dsn), dsn
}

func openShared(tb testing.TB, dsn string) *sharedstore.Store {
	db, err := sharedstore.Open(context.Background(), dsn, "test", true)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	return db
}

func sharedRecorder(tb testing.TB, db *sharedstore.Store, gw string) *Recorder {
	tb.Helper()
	r, err := OpenShared(config.Recording{Results: true, MaxRows: 10}, db, gw, zerolog.Nop(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func startSession(r *Recorder, id string) *SessionRecorder {
	return r.Start(StartInfo{ID: id, User: "alice@example.com", Groups: []string{"analyst"}, Database: "vectors"})
}

func verifyShared(t *testing.T, st *Store) (bool, string) {
	t.Helper()
	var out bytes.Buffer
	ok, _, err := st.Verify(&out)
	if err != nil {
		t.Fatal(err)
	}
	return ok, out.String()
}

// Two gateways record into one store: each keeps its own chain, every
// event names its gateway, and verify covers both chains.
func TestSharedTwoGatewaysChains(t *testing.T) {
	db, _ := sharedDB(t)
	a, b := sharedRecorder(t, db, "gw-a"), sharedRecorder(t, db, "gw-b")
	sa, sb := startSession(a, "sa"), startSession(b, "sb")
	for i := 0; i < 5; i++ {
		if err := sa.Statement(StatementEvent{SQL: fmt.Sprintf("SELECT %d", i), Decision: DecisionAllow}); err != nil {
			t.Fatal(err)
		}
		if err := sb.Statement(StatementEvent{SQL: "SELECT 1", Decision: DecisionAllow}); err != nil {
			t.Fatal(err)
		}
		if err := sa.Written(); err != nil {
			t.Fatal(err)
		}
	}
	_ = sa.End("client_closed")
	_ = sb.End("client_closed")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	st := OpenSharedStore(db)
	ok, out := verifyShared(t, st)
	if !ok || !strings.Contains(out, "14 events in 2 gateway chains") {
		t.Fatalf("verify: %s", out)
	}
	evs, err := st.Get("sa")
	if err != nil || len(evs) != 7 {
		t.Fatalf("Get sa: %d events, %v", len(evs), err)
	}
	for _, ev := range evs {
		if ev.Gateway != "gw-a" {
			t.Fatalf("event of gateway %q in gw-a's session", ev.Gateway)
		}
	}
	if evs[0].Seq != 1 || evs[6].Seq != 7 {
		t.Fatalf("gw-a's chain: seq %d..%d, want 1..7", evs[0].Seq, evs[6].Seq)
	}
	sums, err := st.List(Filter{})
	if err != nil || len(sums) != 2 {
		t.Fatalf("List: %v %v", sums, err)
	}
	var rep bytes.Buffer
	if err := st.Replay(context.Background(), &rep, "sb", false); err != nil || !strings.Contains(rep.String(), "SELECT 1") {
		t.Fatalf("Replay: %v\n%s", err, rep.String())
	}
}

// Tampering with any gateway's chain is found: an edited line, a deleted
// event, an event moved to another gateway.
func TestSharedVerifyFindsTampering(t *testing.T) {
	cases := map[string]string{
		"edited":  `UPDATE pgwarden.events SET line = replace(line, 'SELECT 2', 'SELECT 9') WHERE gateway = 'gw-b' AND seq = 4`,
		"deleted": `DELETE FROM pgwarden.events WHERE gateway = 'gw-a' AND seq = 3`,
		"moved":   `UPDATE pgwarden.events SET gateway = 'gw-c' WHERE gateway = 'gw-a' AND seq = 1`,
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			db, _ := sharedDB(t)
			for _, gw := range []string{"gw-a", "gw-b"} {
				r := sharedRecorder(t, db, gw)
				s := startSession(r, gw+"-s")
				for i := 0; i < 4; i++ {
					_ = s.Statement(StatementEvent{SQL: fmt.Sprintf("SELECT %d", i), Decision: DecisionAllow})
				}
				_ = s.End("client_closed")
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
			}
			st := OpenSharedStore(db)
			if ok, out := verifyShared(t, st); !ok {
				t.Fatalf("before tampering: %s", out)
			}
			if _, err := db.Pool.Exec(context.Background(), tamper); err != nil {
				t.Fatal(err)
			}
			if ok, out := verifyShared(t, st); ok {
				t.Fatalf("verify passed after the %s tampering: %s", name, out)
			}
		})
	}
}

// A gateway's process dying without Close: the next one continues its
// chain and ends the sessions it left open (gateway_restart); another
// gateway ends a lost one's sessions (gateway_lost) in its own chain.
func TestSharedRestartAndLostGateway(t *testing.T) {
	db, dsn := sharedDB(t)
	dbA := openShared(t, dsn) // gateway A's own pool, closed as its process dies
	a := sharedRecorder(t, db, "gw-a")
	s1 := startSession(a, "a1")
	_ = s1.Statement(StatementEvent{SQL: "SELECT 1", Decision: DecisionAllow})
	// "kill -9": A is never closed; what it recorded is committed.
	lost := sharedRecorder(t, dbA, "gw-lost")
	startSession(lost, "l1")
	dbA.Close()

	a2 := sharedRecorder(t, db, "gw-a") // A's next process
	defer a2.Close()
	evs, err := OpenSharedStore(db).Get("a1")
	if err != nil || len(evs) != 3 || evs[2].Type != TypeSessionEnd || evs[2].Reason != ReasonGatewayRestart {
		t.Fatalf("a1 after A's restart: %+v %v", evs, err)
	}
	b := sharedRecorder(t, db, "gw-b")
	defer b.Close()
	ended, err := b.EndSessionsOf(context.Background(), "gw-lost")
	if err != nil || len(ended) != 1 || ended[0].Session != "l1" {
		t.Fatalf("EndSessionsOf = %+v, %v", ended, err)
	}
	evs, _ = OpenSharedStore(db).Get("l1")
	if len(evs) != 2 || evs[1].Reason != ReasonGatewayLost || evs[1].Gateway != "gw-b" {
		t.Fatalf("l1: %+v", evs)
	}
	if again, _ := b.EndSessionsOf(context.Background(), "gw-lost"); len(again) != 0 {
		t.Fatalf("a second sweep ended %d sessions again", len(again))
	}
	if ok, out := verifyShared(t, OpenSharedStore(db)); !ok {
		t.Fatal(out)
	}
}

// Many sessions at once share commits; the chain stays whole.
func TestSharedConcurrentGroupCommit(t *testing.T) {
	db, _ := sharedDB(t)
	r := sharedRecorder(t, db, "gw-a")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := startSession(r, fmt.Sprintf("c%d", i))
			for j := 0; j < 50; j++ {
				if err := s.Statement(StatementEvent{SQL: "SELECT 1", Decision: DecisionAllow}); err != nil {
					t.Error(err)
					return
				}
			}
			_ = s.End("client_closed")
		}()
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	ok, out := verifyShared(t, OpenSharedStore(db))
	if !ok || !strings.Contains(out, fmt.Sprintf("%d events in 1 gateway", 8*52)) {
		t.Fatalf("verify: %s", out)
	}
}

// The store going away: recording fails closed (the error reaches the
// session, the recorder reports unhealthy) and resumes by itself once the
// store is back, with the chain intact.
func TestSharedOutageFailsClosedAndRecovers(t *testing.T) {
	db, _ := sharedDB(t)
	r := sharedRecorder(t, db, "gw-a")
	defer r.Close()
	s := startSession(r, "o1")
	if err := s.Statement(StatementEvent{SQL: "SELECT 1", Decision: DecisionAllow}); err != nil {
		t.Fatal(err)
	}
	sharedCluster.Stop()
	if err := s.Statement(StatementEvent{SQL: "SELECT 2", Decision: DecisionAllow}); err == nil {
		t.Fatal("a statement was recorded with the store down")
	}
	if r.Healthy() == nil {
		t.Fatal("recorder healthy with the store down")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sharedCluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for r.Healthy() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still unhealthy after the store came back: %v", r.Healthy())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.Statement(StatementEvent{SQL: "SELECT 3", Decision: DecisionAllow}); err != nil {
		t.Fatal(err)
	}
	evs, err := OpenSharedStore(db).Get("o1")
	if err != nil || len(evs) != 3 || evs[2].SQL != "SELECT 3" {
		t.Fatalf("after the outage: %+v %v", evs, err)
	}
	if ok, out := verifyShared(t, OpenSharedStore(db)); !ok {
		t.Fatal(out)
	}
}

// BenchmarkSharedRecord: events per second one gateway sustains into the
// shared store (8 sessions recording at once; docs/deploy.md sizing).
func BenchmarkSharedRecord(b *testing.B) {
	db, _ := sharedDB(b)
	r := sharedRecorder(b, db, "gw-bench")
	defer r.Close()
	var n atomic.Int32
	b.SetParallelism(4) // 4 × GOMAXPROCS sessions
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := startSession(r, fmt.Sprintf("b%d", n.Add(1)))
		for pb.Next() {
			if err := s.Statement(StatementEvent{SQL: "SELECT id FROM documents ORDER BY embedding <-> $1 LIMIT 5", Decision: DecisionAllow}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Replay --follow over the shared store shows a live session's events as
// they are committed and stops at its session_end.
func TestSharedReplayFollow(t *testing.T) {
	db, _ := sharedDB(t)
	r := sharedRecorder(t, db, "gw-a")
	s := startSession(r, "live")
	st := OpenSharedStore(db)
	done := make(chan error, 1)
	var out syncBuf
	go func() { done <- st.Replay(context.Background(), &out, "live", true) }()
	time.Sleep(300 * time.Millisecond)
	if err := s.Statement(StatementEvent{SQL: "SELECT 42", Decision: DecisionAllow}); err != nil {
		t.Fatal(err)
	}
	_ = s.End("client_closed")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not stop at session_end")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Count(got, "-- session live:") != 1 || strings.Count(got, "SELECT 42;") != 1 || !strings.Contains(got, "session ended: client_closed") {
		t.Fatalf("follow output:\n%s", got)
	}
}

package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/pgstore"
	"github.com/pgwarden/pgwarden/approvals/storetest"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
)

var pg = pgtest.Lazy{Prefix: "pgwarden-pgstore-"}

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// freshDB returns the DSN of a new, migrated database on the package's
// one PostgreSQL server.
func freshDB(t *testing.T) string {
	t.Helper()
	return pg.FreshDB(t, "store")
}

func openDB(t *testing.T, dsn string) *sharedstore.Store {
	t.Helper()
	db, err := sharedstore.Open(context.Background(), dsn, "pgwarden-test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func openStore(t *testing.T, db *sharedstore.Store, gateway string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), db, gateway, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) approvals.Store {
		return openStore(t, openDB(t, freshDB(t)), "gw-a")
	})
}

func cfg() config.Approval {
	return config.Approval{Approvers: []string{"dba"}, Timeout: time.Minute, Mode: approvals.ModeWait}
}

var (
	alice = identity.Principal{User: "alice", Groups: []string{"eng"}}
	bob   = identity.Principal{User: "bob", Groups: []string{"dba"}}
	carol = identity.Principal{User: "carol", Groups: []string{"dba"}}
)

// twoGateways: two managers on one shared store, as two gateway processes are.
func twoGateways(t *testing.T) (a, b *approvals.Manager, sa, sb *pgstore.Store) {
	dsn := freshDB(t)
	sa, sb = openStore(t, openDB(t, dsn), "gw-a"), openStore(t, openDB(t, dsn), "gw-b")
	a, b = approvals.New(cfg(), sa, zerolog.Nop()), approvals.New(cfg(), sb, zerolog.Nop())
	t.Cleanup(func() { a.Close(); b.Close(); sa.Close(); sb.Close() })
	return a, b, sa, sb
}

func holdOn(t *testing.T, m *approvals.Manager, session string) *approvals.Approval {
	t.Helper()
	h, err := m.Hold(context.Background(), approvals.Request{Requester: alice.User, Groups: alice.Groups, Session: session,
		Database: "vectors", SQL: "DELETE FROM documents", Action: "bulk_delete"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A statement held on gateway A runs when an approver decides on gateway
// B: A's waiter wakes through LISTEN/NOTIFY, well within a second.
func TestApproveOnAnotherGatewayWakesTheHolder(t *testing.T) {
	a, b, _, _ := twoGateways(t)
	h := holdOn(t, a, "s1")
	got := make(chan approvals.Outcome, 1)
	go func() {
		o, err := a.Wait(context.Background(), h.ID)
		if err != nil {
			t.Error(err)
		}
		got <- o
	}()
	// B sees the request through the shared store.
	list, err := b.List(context.Background(), approvals.Pending, 0)
	if err != nil || len(list) != 1 || list[0].ID != h.ID {
		t.Fatalf("gateway B lists %v, %v", list, err)
	}
	time.Sleep(100 * time.Millisecond) // the waiter is blocked before the decision
	start := time.Now()
	if _, err := b.Approve(context.Background(), h.ID, bob, "ok"); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-got:
		if o.State != approvals.Approved {
			t.Fatalf("outcome %s", o.State)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("the holder woke %v after the approve, want < 1s", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the holding gateway never learned of the approve on the other gateway")
	}
	if err := a.MarkExecuted(h.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.MarkExecuted(h.ID); !errors.Is(err, approvals.ErrConflict) {
		t.Fatalf("a second execution through the other gateway: %v, want ErrConflict", err)
	}
}

// Two approvers deciding the same request on two gateways at once: exactly
// one decision wins, the other is a conflict (the API's 409).
func TestConcurrentDecisionsOneWins(t *testing.T) {
	for i := 0; i < 10; i++ {
		a, b, _, _ := twoGateways(t)
		h := holdOn(t, a, fmt.Sprintf("s%d", i))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() { defer wg.Done(); _, errs[0] = a.Approve(context.Background(), h.ID, bob, "") }()
		go func() { defer wg.Done(); _, errs[1] = b.Deny(context.Background(), h.ID, carol, "no") }()
		wg.Wait()
		wins, conflicts := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, approvals.ErrConflict):
				conflicts++
			default:
				t.Fatal(err)
			}
		}
		if wins != 1 || conflicts != 1 {
			t.Fatalf("round %d: %d wins, %d conflicts (%v)", i, wins, conflicts, errs)
		}
	}
}

// A gateway restarting expires only its own sessions' requests; a lost
// gateway's requests are expired by the one that found it dead.
func TestRestartAndLostGatewayExpireOnlyTheirOwn(t *testing.T) {
	dsn := freshDB(t)
	db := openDB(t, dsn)
	sa, sb := openStore(t, db, "gw-a"), openStore(t, db, "gw-b")
	a, b := approvals.New(cfg(), sa, zerolog.Nop()), approvals.New(cfg(), sb, zerolog.Nop())
	defer a.Close()
	defer b.Close()
	ha, hb := holdOn(t, a, "sa"), holdOn(t, b, "sb")
	sa.Close()
	sa2 := openStore(t, openDB(t, dsn), "gw-a") // gateway A's new process
	defer sa2.Close()
	if n := len(sa2.ExpiredAtOpen()); n != 1 || sa2.ExpiredAtOpen()[0].ID != ha.ID {
		t.Fatalf("restart expired %v, want only %s", sa2.ExpiredAtOpen(), ha.ID)
	}
	if got, _ := sb.Get(hb.ID); got.State != approvals.Pending {
		t.Fatalf("B's request is %s after A restarted", got.State)
	}
	lost, err := sa2.ExpireGateway(context.Background(), "gw-b", approvals.GatewayLostNote)
	if err != nil || len(lost) != 1 || lost[0].ID != hb.ID {
		t.Fatalf("ExpireGateway = %v, %v", lost, err)
	}
	got, _ := sa2.Get(hb.ID)
	if got.State != approvals.Expired || got.Note != approvals.GatewayLostNote {
		t.Fatalf("B's request is %s %q", got.State, got.Note)
	}
}

// The store going away: operations fail (the gateway fails closed), and
// once it is back the listener reconnects and a decision reaches the
// holder again.
func TestStoreOutageAndReconnect(t *testing.T) {
	a, b, _, _ := twoGateways(t)
	h := holdOn(t, a, "s1")
	pg.Cluster(t).Stop()
	if _, err := a.Hold(context.Background(), approvals.Request{Requester: "x", SQL: "DROP TABLE t", Session: "s2"}); err == nil ||
		!errors.Is(err, sharedstore.ErrUnreachable) {
		t.Fatalf("Hold with the store down: %v, want ErrUnreachable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pg.Cluster(t).Restart(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan approvals.Outcome, 1)
	go func() { o, _ := a.Wait(context.Background(), h.ID); got <- o }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Approve(context.Background(), h.ID, bob, ""); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("approve after the store came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case o := <-got:
		if o.State != approvals.Approved {
			t.Fatalf("outcome %s", o.State)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the holder never learned of the decision after the store came back")
	}
}

package approvals_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	. "github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/boltstore"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// These tests use a real PostgreSQL and the real HTTP API + CLI to show
// the gate the relay glue builds on: a held statement reaches the database
// only through MarkExecuted/Claim, and then exactly once.

func startPG(t *testing.T) (*pgtest.Cluster, func() *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	c := pgtest.StartT(t, pgtest.Options{})
	if err := c.CreateDB(ctx, "vectors"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "vectors",
		`CREATE TABLE documents (id int PRIMARY KEY, embedding vector(3))`,
		`INSERT INTO documents SELECT g, ARRAY[g, g, g]::real[]::vector FROM generate_series(1, 50) g`,
		`CREATE TABLE counters (n int NOT NULL)`,
		`INSERT INTO counters VALUES (0)`,
	); err != nil {
		t.Fatal(err)
	}
	connect := func() *pgx.Conn {
		conn, err := pgx.Connect(ctx, c.SuperDSN("vectors"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	return c, connect
}

func counter(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT n FROM counters`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func cli(t *testing.T, srv *httptest.Server, token string, args ...string) (int, string) {
	var out, errb bytes.Buffer
	code := RunCLI(context.Background(), args, &out, &errb, &Client{BaseURL: srv.URL, Token: token, HTTP: srv.Client()})
	return code, out.String() + errb.String()
}

func TestIntegrationWaitModeApproveThroughCLI(t *testing.T) {
	_, connect := startPG(t)
	f := newFixture(t, testCfg(ModeWait))
	srv := httptest.NewServer(withTestAuth(f.m.APIHandler()))
	defer srv.Close()
	ctx := context.Background()

	// dba-1's session: hold, wait, then (gate) run upstream.
	session := connect()
	const sql = "DELETE FROM documents"
	a := hold(t, f.m, Request{Requester: "dba-1", Groups: []string{"dba"}, Session: "s1", Database: "vectors", SQL: sql, Action: "bulk_delete", EstimateRows: 50})
	if n := HeldNotice(a); !strings.Contains(n.Message, "held for approval "+a.ID) {
		t.Fatalf("notice %q", n.Message)
	}
	type result struct {
		rows  int64
		state State
		err   error
	}
	done := make(chan result, 1)
	go func() {
		o, err := f.m.Wait(ctx, a.ID)
		if err != nil || o.State != Approved {
			done <- result{state: o.State, err: err}
			return
		}
		if err := f.m.MarkExecuted(a.ID); err != nil {
			done <- result{state: o.State, err: err}
			return
		}
		tag, err := session.Exec(ctx, sql)
		done <- result{rows: tag.RowsAffected(), state: o.State, err: err}
	}()

	// Another session searches while the hold is pending, unslowed.
	other := connect()
	start := time.Now()
	var id int
	if err := other.QueryRow(ctx, `SELECT id FROM documents ORDER BY embedding <-> '[1,1,1]' LIMIT 1`).Scan(&id); err != nil || id != 1 {
		t.Fatalf("search during hold: %d %v", id, err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("search took %s during a hold", el)
	}
	select {
	case r := <-done:
		t.Fatalf("held statement finished before a decision: %+v", r)
	default:
	}

	// The approver's side, through the CLI and the HTTP API.
	code, out := cli(t, srv, "tok-dba2", "list")
	if code != 0 || !strings.Contains(out, a.ID) {
		t.Fatalf("list: %d %s", code, out)
	}
	if code, out := cli(t, srv, "tok-dba1", "approve", a.ID); code != 1 || !strings.Contains(out, "four eyes") {
		t.Fatalf("self-approval: %d %s", code, out)
	}
	if code, out := cli(t, srv, "tok-dba2", "approve", a.ID, "--comment", "50 test docs"); code != 0 {
		t.Fatalf("approve: %d %s", code, out)
	}
	select {
	case r := <-done:
		if r.err != nil || r.rows != 50 {
			t.Fatalf("approved DELETE: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("approved statement did not run")
	}
	var left int
	if err := other.QueryRow(ctx, `SELECT count(*) FROM documents`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("rows left upstream: %d %v", left, err)
	}
	if code, out := cli(t, srv, "tok-dba2", "show", a.ID); code != 0 || !strings.Contains(out, "executed") {
		t.Fatalf("show after run: %d %s", code, out)
	}
	if code, out := cli(t, srv, "tok-dba2", "approve", a.ID); code != 1 || !strings.Contains(out, "conflict") {
		t.Fatalf("second approve: %d %s", code, out)
	}
}

func TestIntegrationExactlyOnceUpstream(t *testing.T) {
	_, connect := startPG(t)
	ctx := context.Background()
	const bump = "UPDATE counters SET n = n + 1"

	t.Run("wait mode, racing executors", func(t *testing.T) {
		check := connect()
		before := counter(t, check)
		f := newFixture(t, testCfg(ModeWait))
		a := hold(t, f.m, req("dba-1", "s1", bump))
		if _, err := f.m.Approve(ctx, a.ID, dba2, ""); err != nil {
			t.Fatal(err)
		}
		conns := make([]*pgx.Conn, 4)
		for i := range conns {
			conns[i] = connect()
		}
		var wg sync.WaitGroup
		var ran atomic.Int32
		for _, conn := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if f.m.MarkExecuted(a.ID) != nil {
					return
				}
				if _, err := conn.Exec(ctx, bump); err == nil {
					ran.Add(1)
				}
			}()
		}
		wg.Wait()
		if ran.Load() != 1 || counter(t, check) != before+1 {
			t.Fatalf("ran %d times; counter %d -> %d", ran.Load(), before, counter(t, check))
		}
	})

	t.Run("retry mode, concurrent re-runs", func(t *testing.T) {
		check := connect()
		before := counter(t, check)
		f := newFixture(t, testCfg(ModeRetry))
		srv := httptest.NewServer(withTestAuth(f.m.APIHandler()))
		defer srv.Close()
		// First run: nothing to claim, held; the client gets 55000.
		if _, ok := f.m.Claim("dba-1", "vectors", bump, nil); ok {
			t.Fatal("claimed before any hold")
		}
		a := hold(t, f.m, req("dba-1", "s1", bump))
		if e := RetryError(a, f.m.Timeout()); e.Code != "55000" || !strings.Contains(e.Message, a.ID) {
			t.Fatalf("retry error %+v", e)
		}
		if code, out := cli(t, srv, "tok-dba2", "approve", a.ID); code != 0 {
			t.Fatalf("approve: %d %s", code, out)
		}
		// The user re-runs from several new connections at once.
		var wg sync.WaitGroup
		var ran atomic.Int32
		for i := 0; i < 4; i++ {
			conn := connect()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, ok := f.m.Claim("dba-1", "vectors", bump, nil); !ok {
					return
				}
				if _, err := conn.Exec(ctx, bump); err == nil {
					ran.Add(1)
				}
			}()
		}
		wg.Wait()
		if ran.Load() != 1 || counter(t, check) != before+1 {
			t.Fatalf("ran %d times; counter %d -> %d", ran.Load(), before, counter(t, check))
		}
		if _, ok := f.m.Claim("dba-1", "vectors", bump, nil); ok {
			t.Fatal("a third run was not held again")
		}
	})

	t.Run("restart with a pending request", func(t *testing.T) {
		check := connect()
		before := counter(t, check)
		dir := t.TempDir()
		s, err := boltstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		m := New(testCfg(ModeWait), s, zerolog.Nop())
		a := hold(t, m, req("dba-1", "s1", bump))
		s.Close() // the gateway stops

		s2, err := boltstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		m2 := New(testCfg(ModeWait), s2, zerolog.Nop())
		srv := httptest.NewServer(withTestAuth(m2.APIHandler()))
		defer srv.Close()
		if code, out := cli(t, srv, "tok-dba2", "list", "--state", "expired"); code != 0 || !strings.Contains(out, a.ID) {
			t.Fatalf("expired list after restart: %d %s", code, out)
		}
		if code, out := cli(t, srv, "tok-dba2", "approve", a.ID); code != 1 || !strings.Contains(out, "already expired") {
			t.Fatalf("approve after restart: %d %s", code, out)
		}
		if m2.MarkExecuted(a.ID) == nil {
			_, _ = check.Exec(ctx, bump)
		}
		if counter(t, check) != before {
			t.Fatal("a request from before the restart executed")
		}
	})
}

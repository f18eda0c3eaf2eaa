package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// scripted is a client connection through the gateway driven message by
// message (after a normal pgx startup).
type scripted struct {
	t  *testing.T
	hc *pgconn.HijackedConn
}

func (w *gw) scripted(t *testing.T, user string, groups ...string) *scripted {
	t.Helper()
	conn := w.connect(t, user, groups...)
	hc, err := conn.PgConn().Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	return &scripted{t: t, hc: hc}
}

// run sends msgs and reads the answers up to the ReadyForQuery of each
// Sync/Query among them, returning them as one line each ("E 42501 msg").
func (c *scripted) run(msgs ...pgproto3.FrontendMessage) []string {
	c.t.Helper()
	fe := c.hc.Frontend
	want := 0
	for _, m := range msgs {
		fe.Send(m)
		switch m.(type) {
		case *pgproto3.Sync, *pgproto3.Query:
			want++
		}
	}
	if err := fe.Flush(); err != nil {
		c.t.Fatal(err)
	}
	var out []string
	_ = c.hc.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for want > 0 {
		m, err := fe.Receive()
		if err != nil {
			c.t.Fatalf("receive after %q: %v", out, err)
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			want--
			out = append(out, "Z "+string(m.TxStatus))
		case *pgproto3.ErrorResponse:
			out = append(out, "E "+m.Code+" "+m.Message)
			if m.Severity == "FATAL" {
				return out
			}
		case *pgproto3.CommandComplete:
			out = append(out, "C "+string(m.CommandTag))
		case *pgproto3.DataRow:
			vals := make([]string, len(m.Values))
			for i, v := range m.Values {
				vals[i] = string(v)
			}
			out = append(out, "D "+strings.Join(vals, "|"))
		case *pgproto3.NoticeResponse:
			out = append(out, "N "+m.Message)
		default:
			out = append(out, fmt.Sprintf("%T", m)[len("*pgproto3."):])
		}
	}
	return out
}

// simple runs one simple Query.
func (c *scripted) simple(sql string) []string {
	c.t.Helper()
	return c.run(&pgproto3.Query{String: sql})
}

// has reports whether a line of out starts with prefix.
func has(out []string, prefix string) bool {
	for _, l := range out {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// execExtended runs sql through Parse/Bind/Execute/Sync of the unnamed
// statement (what pgx's QueryExecModeExec does) and returns its error.
func execExtended(ctx context.Context, conn *pgx.Conn, sql string) error {
	res := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil)
	_, err := res.Close()
	return err
}

// Issue 15 (a): a SQL-level PREPARE sent through the extended protocol and
// its EXECUTE sent the same way get the Execute-time estimate.
func TestPolicyTrackerPrepareThroughParseEstimate(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Policy.Approval.BulkRows = 5 })
	policyTable(t, "trk_a")
	ctx := context.Background()
	conn := w.connect(t, "ivan@example.com", "ingest")
	if err := execExtended(ctx, conn, "PREPARE pd AS DELETE FROM trk_a WHERE id <> $1"); err != nil {
		t.Fatalf("PREPARE through Parse: %v", err)
	}
	err := execExtended(ctx, conn, "EXECUTE pd(0)")
	if sqlstate(err) != "42501" {
		t.Errorf("EXECUTE pd(0) through Parse: want 42501 (bulk_delete), got %v", err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol} {
		_, err = conn.Exec(ctx, "EXECUTE pd(0)", mode)
		if sqlstate(err) != "42501" {
			t.Errorf("EXECUTE pd(0) (%v): want 42501 (bulk_delete), got %v", mode, err)
		}
	}
	if n := tableCount(t, "trk_a"); n != 20 {
		t.Fatalf("trk_a has %d rows, want 20", n)
	}
	_ = pgconn.CommandTag{}
}

// Issue 15 (a): a cached Parse of "EXECUTE pd(0)" made while pd was
// harmless runs the new pd after DEALLOCATE and re-PREPARE: its Execute is
// decided (and estimated) again.
func TestPolicyTrackerCachedExecuteAfterDeallocate(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Policy.Approval.BulkRows = 5 })
	policyTable(t, "trk_b")
	ctx := context.Background()
	conn := w.connect(t, "ivan@example.com", "ingest") // cache-statement mode
	must(conn.Exec(ctx, "PREPARE pd AS SELECT $1::int", pgx.QueryExecModeSimpleProtocol))
	must(conn.Exec(ctx, "EXECUTE pd(0)"))
	must(conn.Exec(ctx, "DEALLOCATE pd", pgx.QueryExecModeSimpleProtocol))
	must(conn.Exec(ctx, "PREPARE pd AS DELETE FROM trk_b WHERE id <> $1", pgx.QueryExecModeSimpleProtocol))
	_, err := conn.Exec(ctx, "EXECUTE pd(0)")
	t.Logf("cached EXECUTE: %v", err)
	if sqlstate(err) != "42501" {
		t.Errorf("cached EXECUTE pd(0) after re-PREPARE: want 42501 (bulk_delete), got %v", err)
	}
	if n := tableCount(t, "trk_b"); n != 20 {
		t.Fatalf("trk_b has %d rows, want 20", n)
	}
}

// Issue 15 (a): a named Parse of "EXECUTE pd(0)" made while pd was
// harmless runs whatever pd is when it is executed: DEALLOCATE and
// re-PREPARE make the same prepared statement a bulk DELETE.
func TestPolicyTrackerNamedExecuteAfterDeallocate(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Policy.Approval.BulkRows = 5 })
	policyTable(t, "trk_c")
	c := w.scripted(t, "ivan@example.com", "ingest")
	out := c.simple("PREPARE pd AS SELECT $1::int")
	out = append(out, c.run(&pgproto3.Parse{Name: "s1", Query: "EXECUTE pd(0)"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})...)
	out = append(out, c.simple("DEALLOCATE pd")...)
	out = append(out, c.simple("PREPARE pd AS DELETE FROM trk_c WHERE id <> $1")...)
	t.Logf("setup: %q", out)
	out = c.run(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("execute: %q", out)
	if !has(out, "E 42501 pgwarden: ") {
		t.Errorf("Bind/Execute of s1 (EXECUTE pd(0), pd now a bulk DELETE): want 42501, got %q", out)
	}
	if n := tableCount(t, "trk_c"); n != 20 {
		t.Fatalf("trk_c has %d rows, want 20", n)
	}
}

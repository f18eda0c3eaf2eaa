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

// rawEmail is customer 1's email as stored (what masking must hide).
func rawEmail(t *testing.T) string {
	t.Helper()
	var e string
	must0(t, direct(t).QueryRow(context.Background(), "SELECT email FROM customers ORDER BY id LIMIT 1").Scan(&e))
	return e
}

// Issue 15 (c): a statement that only runs another is estimated for that
// one: EXPLAIN ANALYZE DELETE of no row and a PREPARE and EXECUTE of one
// in the same query string are plain deletes for a dba, not bulk_delete
// held for approval (retry mode: a hold would be 55000 at once).
func TestPolicyTrackerEstimateInnerStatement(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Policy.Approval.Mode = "retry"; c.Policy.Approval.BulkRows = 5 })
	policyTable(t, "trk_e")
	c := w.scripted(t, "dana@example.com", "dba")
	for _, sql := range []string{
		"EXPLAIN ANALYZE DELETE FROM trk_e WHERE id = -1",
		"PREPARE pd AS DELETE FROM trk_e WHERE id = $1; EXECUTE pd(999999)",
		"EXECUTE pd(999998)",
		"EXPLAIN ANALYZE EXECUTE pd(999997)",
	} {
		out := c.simple(sql)
		if has(out, "E ") {
			t.Errorf("%s: %q", sql, out)
		}
	}
	// and a bulk one still is held
	if out := c.simple("EXPLAIN ANALYZE DELETE FROM trk_e WHERE id > 0"); !has(out, "E 55000 ") {
		t.Errorf("EXPLAIN ANALYZE of a bulk DELETE: want 55000 (held), got %q", out)
	}
	if n := tableCount(t, "trk_e"); n != 20 {
		t.Fatalf("trk_e has %d rows, want 20", n)
	}
}

// Issue 15 (b): a statement whose text is an EXECUTE, described while its
// prepared statement needed no masking, is not masked with that old plan
// once DEALLOCATE and PREPARE made it read PII: a fresh Describe masks,
// and rows it did not describe again are refused, never sent raw.
func TestPolicyTrackerRePrepareMasking(t *testing.T) {
	w := startGateway(t, nil)
	email := rawEmail(t)
	c := w.scripted(t, "alice@example.com", "analyst")
	c.simple("PREPARE q AS SELECT 'nothing'::text AS email")
	out := c.run(&pgproto3.Parse{Name: "s1", Query: "EXECUTE q"}, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !has(out, "D nothing") {
		t.Fatalf("first run: %q", out)
	}
	c.simple("DEALLOCATE q")
	c.simple("PREPARE q AS SELECT email FROM customers ORDER BY id LIMIT 1")
	out = c.run(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if has(out, "D "+email) {
		t.Fatalf("re-prepared, not described again: raw email went out: %q", out)
	}
	c = w.scripted(t, "alice@example.com", "analyst")
	c.simple("PREPARE q AS SELECT 'nothing'::text AS email")
	c.run(&pgproto3.Parse{Name: "s1", Query: "EXECUTE q"}, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
	c.simple("DEALLOCATE q")
	c.simple("PREPARE q AS SELECT email FROM customers ORDER BY id LIMIT 1")
	out = c.run(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if has(out, "D "+email) || !has(out, "D ") {
		t.Fatalf("re-prepared, described: want a masked row, got %q", out)
	}
	// simple protocol: the rows of EXECUTE are traced with the PREPARE the server has
	c2 := w.scripted(t, "alice@example.com", "analyst")
	c2.simple("PREPARE p AS SELECT 1 AS one")
	c2.simple("DEALLOCATE p")
	c2.simple("PREPARE p AS SELECT upper(email) AS x FROM customers ORDER BY id LIMIT 1")
	if out := c2.simple("EXECUTE p"); has(out, "D "+strings.ToUpper(email)) {
		t.Fatalf("EXECUTE of a re-prepared statement: raw derived email went out: %q", out)
	}
}

// Issue 15 (d): a portal opened by SQL DECLARE can be described and
// executed by name through the extended protocol; its rows are masked.
// It dies with its transaction.
func TestPolicyTrackerDeclaredPortal(t *testing.T) {
	w := startGateway(t, nil)
	email := rawEmail(t)
	c := w.scripted(t, "alice@example.com", "analyst")
	c.simple("BEGIN")
	c.simple("DECLARE cur CURSOR FOR SELECT id, email FROM customers ORDER BY id")
	out := c.run(&pgproto3.Describe{ObjectType: 'P', Name: "cur"}, &pgproto3.Execute{Portal: "cur", MaxRows: 2}, &pgproto3.Sync{})
	if has(out, "E ") || !has(out, "D 1|") || has(out, "D 1|"+email) {
		t.Fatalf("Describe/Execute of a DECLAREd portal: %q", out)
	}
	// without a Describe of its own this time: the portal's description holds
	out = c.run(&pgproto3.Execute{Portal: "cur", MaxRows: 1}, &pgproto3.Sync{})
	if has(out, "E ") || has(out, "|"+email) {
		t.Fatalf("second Execute: %q", out)
	}
	c.simple("COMMIT")
	out = c.run(&pgproto3.Execute{Portal: "cur"}, &pgproto3.Sync{})
	if !has(out, "E ") {
		t.Fatalf("Execute of a cursor after COMMIT: want an error, got %q", out)
	}
	if out := c.simple("SELECT 1"); !has(out, "D 1") {
		t.Fatalf("session unusable: %q", out)
	}
	// WITH HOLD survives the commit
	c.simple("BEGIN")
	c.simple("DECLARE h CURSOR WITH HOLD FOR SELECT id, email FROM customers ORDER BY id")
	c.simple("COMMIT")
	out = c.run(&pgproto3.Describe{ObjectType: 'P', Name: "h"}, &pgproto3.Execute{Portal: "h", MaxRows: 1}, &pgproto3.Sync{})
	if has(out, "E ") || has(out, "|"+email) || !has(out, "D 1|") {
		t.Fatalf("WITH HOLD cursor after COMMIT: %q", out)
	}
}

// Issue 15 part 2: a client that leaves while its statement is held
// (closes the connection, or sends Terminate) withdraws the request and
// its minted role is revoked at once, not when the approval times out.
func TestApprovalHeldClientLeaves(t *testing.T) {
	for _, how := range []string{"close", "terminate"} {
		t.Run(how, func(t *testing.T) {
			w := startGateway(t, nil)
			table := "trk_held_" + how
			approvalTable(t, table, 30)
			c := w.scripted(t, requester, "dba")
			out := c.simple("SELECT current_user")
			role := strings.TrimPrefix(out[len(out)-3], "D ")
			fe := c.hc.Frontend
			fe.Send(&pgproto3.Query{String: "DELETE FROM " + table})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			_ = c.hc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var id string
			for id == "" {
				m, err := fe.Receive()
				if err != nil {
					t.Fatalf("waiting for the hold notice: %v", err)
				}
				if n, ok := m.(*pgproto3.NoticeResponse); ok {
					if i := strings.Index(n.Message, "held for approval "); i >= 0 {
						id = strings.Fields(n.Message[i+len("held for approval "):])[0]
						id = strings.TrimRight(id, ";.,")
					}
				}
			}
			left := time.Now()
			if how == "terminate" {
				fe.Send(&pgproto3.Terminate{})
				_ = fe.Flush()
			}
			c.hc.Conn.Close()
			ctx := context.Background()
			d := direct(t)
			for {
				a := getApproval(t, w, id)
				var n int
				must0(t, d.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n))
				if a.State == "withdrawn" && n == 0 {
					break
				}
				if time.Since(left) > 5*time.Second {
					t.Fatalf("5s after the client left: approval %s is %s, role %s exists: %v", id, a.State, role, n == 1)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if n := countRows(t, table); n != 30 {
				t.Fatalf("%s has %d rows, want 30", table, n)
			}
		})
	}
}

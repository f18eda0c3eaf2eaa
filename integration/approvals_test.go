package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/config"
)

// Issue 5 end to end: a real pgwarden in front of the shared PostgreSQL,
// real pgx clients, decisions through the real `pgwarden approvals` binary
// (built once for the test) against the real admin HTTP API.

const (
	requester = "dba-1@example.com"
	approver  = "dba-2@example.com"
)

var heldRE = regexp.MustCompile(`held for approval ([a-z2-7]{16})`)

// cliRunner runs the built pgwarden binary's `approvals` command.
type cliRunner struct{ bin string }

// buildPgwarden builds cmd/pgwarden into a temp dir of t.
func buildPgwarden(t *testing.T) cliRunner {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgwarden")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pgwarden/pgwarden/cmd/pgwarden")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/pgwarden: %v\n%s", err, out)
	}
	return cliRunner{bin: bin}
}

// run executes `pgwarden approvals --admin URL args...` with PGWARDEN_TOKEN
// set to token and returns stdout, stderr and the exit code.
func (c cliRunner) run(t *testing.T, w *gw, token string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"approvals", "--admin", w.AdminURL}, args...)...)
	cmd.Env = append(os.Environ(), "PGWARDEN_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run pgwarden approvals: %v", err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// approve approves id as dba-2 through the CLI and checks the answer.
func (c cliRunner) approve(t *testing.T, w *gw, id, comment string) {
	t.Helper()
	out, errOut, code := c.run(t, w, w.Issuer.token(t, approver, "dba"), "approve", id, "--comment", comment)
	if code != 0 || !strings.Contains(out, "approval "+id+" is now approved (by "+approver+")") {
		t.Fatalf("approve %s: exit %d, stdout %q, stderr %q", id, code, out, errOut)
	}
}

// getApproval reads one approval through the admin API (any verified caller may read).
func getApproval(t *testing.T, w *gw, id string) *approvals.Approval {
	t.Helper()
	c := &approvals.Client{BaseURL: w.AdminURL, Token: w.Issuer.token(t, "auditor@example.com", "analyst"), HTTP: &http.Client{Timeout: 10 * time.Second}}
	a, err := c.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("GET approval %s: %v", id, err)
	}
	return a
}

// postDecision POSTs an approve to the API as user and returns the status and error text.
func postDecision(t *testing.T, w *gw, token, id string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.AdminURL+"/api/v1/approvals/"+id+"/approve", strings.NewReader(`{"comment":"mine"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

// approvalTable creates a fresh table name with n rows for one test
// (the seeded documents stay untouched for other tests).
func approvalTable(t *testing.T, name string, n int) {
	t.Helper()
	ctx := context.Background()
	d := direct(t)
	for _, sql := range []string{
		"DROP TABLE IF EXISTS " + name,
		"CREATE TABLE " + name + " (id int PRIMARY KEY, body text NOT NULL)",
		fmt.Sprintf("INSERT INTO %s SELECT g, 'doc ' || g FROM generate_series(1, %d) g", name, n),
		"ANALYZE " + name,
		"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON " + name + " TO vector_admin, vector_writer",
	} {
		if _, err := d.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), upstream.pg.SuperDSN("vectors")); err == nil {
			c.Exec(context.Background(), "DROP TABLE IF EXISTS "+name)
			c.Close(context.Background())
		}
	})
}

// countRows counts the rows of table upstream, bypassing pgwarden.
func countRows(t *testing.T, table string) int {
	t.Helper()
	var n int
	must0(t, direct(t).QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

// dbaConn connects user (group dba) through the gateway in mode; notices
// receives every NoticeResponse; a cancelled context sends a real
// CancelRequest (pgx's default only closes the socket).
func dbaConn(t *testing.T, w *gw, user string, mode pgx.QueryExecMode) (*pgx.Conn, <-chan string) {
	t.Helper()
	cc := dbaConnConfig(t, w, user, mode)
	notices := make(chan string, 16)
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		select {
		case notices <- n.Message:
		default:
		}
	}
	return w.connectWith(t, cc), notices
}

func dbaConnConfig(t *testing.T, w *gw, user string, mode pgx.QueryExecMode) *pgx.ConnConfig {
	cc := w.connConfig(t, user, w.Issuer.token(t, user, "dba"))
	cc.DefaultQueryExecMode = mode
	cc.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
	}
	return cc
}

type heldResult struct {
	tag pgconn.CommandTag
	err error
	at  time.Time
}

// startHeld runs sql on conn in the background and returns the approval
// ID from the "held for approval" notice, and the statement's result.
func startHeld(t *testing.T, ctx context.Context, conn *pgx.Conn, notices <-chan string, sql string, args ...any) (string, <-chan heldResult) {
	t.Helper()
	return startHeldFn(t, notices, sql, func() (pgconn.CommandTag, error) { return conn.Exec(ctx, sql, args...) })
}

// startHeldFn is startHeld for any way of running the statement.
func startHeldFn(t *testing.T, notices <-chan string, sql string, exec func() (pgconn.CommandTag, error)) (string, <-chan heldResult) {
	t.Helper()
	res := make(chan heldResult, 1)
	go func() {
		tag, err := exec()
		res <- heldResult{tag, err, time.Now()}
	}()
	select {
	case n := <-notices:
		m := heldRE.FindStringSubmatch(n)
		if m == nil || !strings.HasPrefix(n, "pgwarden: ") || !strings.Contains(n, "pgwarden approvals approve "+m[1]) {
			t.Fatalf("notice %q is not the held-for-approval notice", n)
		}
		return m[1], res
	case r := <-res:
		t.Fatalf("%s was not held: %v, %v", sql, r.tag, r.err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no held-for-approval notice within 20s", sql)
	}
	return "", nil
}

// notDone fails if the held statement has finished.
func notDone(t *testing.T, res <-chan heldResult) {
	t.Helper()
	select {
	case r := <-res:
		t.Fatalf("the held statement finished before a decision: %v, %v", r.tag, r.err)
	default:
	}
}

// noNotice fails when a NOTICE (a hold) has arrived on notices.
func noNotice(t *testing.T, notices <-chan string, what string) {
	t.Helper()
	select {
	case msg := <-notices:
		t.Fatalf("%s got a notice: %q", what, msg)
	default:
	}
}

// await waits for the held statement's result.
func await(t *testing.T, res <-chan heldResult, within time.Duration) heldResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(within):
		t.Fatalf("the held statement did not finish within %v", within)
	}
	return heldResult{}
}

// usable checks that the session still answers a SELECT.
func usable(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("session not usable afterwards: %d, %v", n, err)
	}
}

// wantPgError checks err's SQLSTATE and that its message contains every part.
func wantPgError(t *testing.T, err error, code string, parts ...string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want SQLSTATE %s, got %v", code, err)
	}
	if pe.Code != code {
		t.Fatalf("want SQLSTATE %s, got %s: %s", code, pe.Code, pe.Message)
	}
	if !strings.HasPrefix(pe.Message, "pgwarden: ") {
		t.Fatalf("message does not start with pgwarden: %q", pe.Message)
	}
	for _, p := range parts {
		if !strings.Contains(pe.Message, p) {
			t.Fatalf("message %q does not contain %q", pe.Message, p)
		}
	}
	return pe
}

func TestApprovals(t *testing.T) {
	cli := buildPgwarden(t)
	simple := pgx.QueryExecModeSimpleProtocol

	t.Run("wait mode approve", func(t *testing.T) {
		w := startGateway(t, nil)
		const table, n = "ap_wait", 40
		approvalTable(t, table, n)
		conn, notices := dbaConn(t, w, requester, simple)
		id, res := startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)

		a := getApproval(t, w, id)
		if a.State != approvals.Pending || a.Requester != requester || a.Action != "bulk_delete" ||
			a.SQL != "DELETE FROM "+table || a.Database != "vectors" || a.Mode != "wait" || a.Session == "" {
			t.Fatalf("stored request: %+v", a)
		}

		// Another session searches while the hold is pending.
		analyst := w.connect(t, "alice@example.com", "analyst")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		got := ids(t, must(analyst.Query(ctx, knnSQL, queryVector("approval workflow for dangerous statements"))))
		searchTook := time.Since(start)
		cancel()
		if len(got) != 5 {
			t.Fatalf("search during the hold returned %v", got)
		}
		notDone(t, res)
		if s := getApproval(t, w, id).State; s != approvals.Pending {
			t.Fatalf("after the search the request is %s, want pending", s)
		}
		if searchTook > 2*time.Second {
			t.Fatalf("a search in another session took %v while a statement was held", searchTook)
		}
		t.Logf("kNN search in another session completed in %v while approval %s was pending", searchTook, id)

		// Four eyes: the requester cannot approve (CLI and API); a non-approver neither.
		reqTok := w.Issuer.token(t, requester, "dba")
		out, errOut, code := cli.run(t, w, reqTok, "approve", id)
		if code != 1 || !strings.Contains(errOut, "refused") {
			t.Fatalf("self-approval through the CLI: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if st, msg := postDecision(t, w, reqTok, id); st != http.StatusForbidden {
			t.Fatalf("self-approval through the API: %d %q, want 403", st, msg)
		}
		if st, msg := postDecision(t, w, w.Issuer.token(t, "alice@example.com", "analyst"), id); st != http.StatusForbidden {
			t.Fatalf("approval by a non-approver: %d %q, want 403", st, msg)
		}
		if st, _ := postDecision(t, w, "not-a-token", id); st != http.StatusUnauthorized {
			t.Fatalf("approval without a valid token: %d, want 401", st)
		}
		notDone(t, res)
		if countRows(t, table) != n {
			t.Fatal("rows were deleted before the approval")
		}

		// The CLI lists it for the approver.
		out, errOut, code = cli.run(t, w, w.Issuer.token(t, approver, "dba"), "list", "--json")
		if code != 0 || !strings.Contains(out, `"id": "`+id+`"`) {
			t.Fatalf("list: exit %d, %q, %q", code, out, errOut)
		}

		decided := time.Now()
		cli.approve(t, w, id, "test data, fine")
		r := await(t, res, 20*time.Second)
		if r.err != nil {
			t.Fatalf("approved DELETE failed: %v", r.err)
		}
		if r.tag.String() != fmt.Sprintf("DELETE %d", n) || r.tag.RowsAffected() != n {
			t.Fatalf("approved DELETE reported %q, want DELETE %d", r.tag, n)
		}
		t.Logf("held DELETE finished %v after the approval", r.at.Sub(decided))
		if c := countRows(t, table); c != 0 {
			t.Fatalf("%d rows left upstream after the approved DELETE", c)
		}
		a = getApproval(t, w, id)
		if a.State != approvals.Executed || a.DecidedBy != approver || a.Comment != "test data, fine" || a.DecidedAt == nil || a.ExecutedAt == nil {
			t.Fatalf("after execution: %+v", a)
		}
		// A second approve of a decided request is a clear 409.
		out, errOut, code = cli.run(t, w, w.Issuer.token(t, approver, "dba"), "approve", id)
		if code != 1 || !strings.Contains(errOut, "conflict") {
			t.Fatalf("second approve: exit %d, %q, %q", code, out, errOut)
		}
		usable(t, conn)
	})

	t.Run("deny", func(t *testing.T) {
		w := startGateway(t, nil)
		const table, n = "ap_deny", 12
		approvalTable(t, table, n)
		conn, notices := dbaConn(t, w, requester, simple)
		id, res := startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)
		apTok := w.Issuer.token(t, approver, "dba")
		if _, errOut, code := cli.run(t, w, apTok, "deny", id); code != 2 || !strings.Contains(errOut, "--reason") {
			t.Fatalf("deny without a reason: exit %d, %q", code, errOut)
		}
		notDone(t, res)
		out, errOut, code := cli.run(t, w, apTok, "deny", id, "--reason", "use a WHERE clause")
		if code != 0 || !strings.Contains(out, "is now denied") {
			t.Fatalf("deny: exit %d, %q, %q", code, out, errOut)
		}
		r := await(t, res, 20*time.Second)
		wantPgError(t, r.err, "57014", id, "denied by "+approver, "use a WHERE clause")
		if c := countRows(t, table); c != n {
			t.Fatalf("a denied DELETE left %d of %d rows", c, n)
		}
		if a := getApproval(t, w, id); a.State != approvals.Denied || a.Comment != "use a WHERE clause" || a.DecidedBy != approver {
			t.Fatalf("after deny: %+v", a)
		}
		usable(t, conn)
	})

	t.Run("timeout", func(t *testing.T) {
		w := startGateway(t, func(c *config.Config) { c.Policy.Approval.Timeout = 2 * time.Second })
		const table, n = "ap_timeout", 7
		approvalTable(t, table, n)
		conn, notices := dbaConn(t, w, requester, simple)
		start := time.Now()
		id, res := startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)
		r := await(t, res, 20*time.Second)
		took := r.at.Sub(start)
		wantPgError(t, r.err, "57014", id, "expired")
		if took < 1500*time.Millisecond || took > 10*time.Second {
			t.Fatalf("timeout after %v, want about 2s", took)
		}
		if c := countRows(t, table); c != n {
			t.Fatalf("an expired DELETE left %d of %d rows", c, n)
		}
		if a := getApproval(t, w, id); a.State != approvals.Expired {
			t.Fatalf("after the timeout: %+v", a)
		}
		// Too late to approve.
		if _, errOut, code := cli.run(t, w, w.Issuer.token(t, approver, "dba"), "approve", id); code != 1 || !strings.Contains(errOut, "conflict") {
			t.Fatalf("approve after expiry: exit %d, %q", code, errOut)
		}
		usable(t, conn)
		if c := countRows(t, table); c != n {
			t.Fatalf("rows changed after the expired request: %d", c)
		}
	})

	t.Run("client cancel withdraws", func(t *testing.T) {
		w := startGateway(t, nil)
		const table, n = "ap_cancel", 9
		approvalTable(t, table, n)
		conn, notices := dbaConn(t, w, requester, simple)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		id, res := startHeld(t, ctx, conn, notices, "DELETE FROM "+table)
		cancelAt := time.Now()
		cancel() // pgx sends a CancelRequest on a second connection
		r := await(t, res, 20*time.Second)
		wantPgError(t, r.err, "57014", id, "withdrawn")
		if took := r.at.Sub(cancelAt); took > 5*time.Second {
			t.Fatalf("the cancel took %v", took)
		}
		a := getApproval(t, w, id)
		if a.State != approvals.Withdrawn || a.Note == "" {
			t.Fatalf("after the cancel: %+v", a)
		}
		if _, errOut, code := cli.run(t, w, w.Issuer.token(t, approver, "dba"), "approve", id); code != 1 || !strings.Contains(errOut, "conflict") {
			t.Fatalf("approve after withdrawal: exit %d, %q", code, errOut)
		}
		if c := countRows(t, table); c != n {
			t.Fatalf("a withdrawn DELETE left %d of %d rows", c, n)
		}
		usable(t, conn)
	})

	t.Run("retry mode", func(t *testing.T) {
		w := startGateway(t, func(c *config.Config) { c.Policy.Approval.Mode = "retry" })
		const table, n = "ap_retry", 15
		approvalTable(t, table, n)
		conn, _ := dbaConn(t, w, requester, simple)
		ctx := context.Background()
		start := time.Now()
		_, err := conn.Exec(ctx, "DELETE FROM "+table)
		pe := wantPgError(t, err, "55000", "held for approval", "pgwarden approvals approve")
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("retry mode answered after %v, want at once", took)
		}
		id := heldRE.FindStringSubmatch(pe.Message)[1]
		if a := getApproval(t, w, id); a.State != approvals.Pending || a.Mode != "retry" {
			t.Fatalf("retry request: %+v", a)
		}
		if c := countRows(t, table); c != n {
			t.Fatalf("rows changed before approval: %d", c)
		}
		cli.approve(t, w, id, "go ahead")
		// The identical statement (keyword case and spacing do not matter) runs once.
		tag, err := conn.Exec(ctx, "delete   from "+table)
		if err != nil || tag.RowsAffected() != n {
			t.Fatalf("re-run after approval: %v, %v", tag, err)
		}
		if c := countRows(t, table); c != 0 {
			t.Fatalf("%d rows left after the approved re-run", c)
		}
		if a := getApproval(t, w, id); a.State != approvals.Executed || a.ExecutedAt == nil {
			t.Fatalf("after the re-run: %+v", a)
		}
		must(direct(t).Exec(ctx, "INSERT INTO "+table+" SELECT g, 'again' FROM generate_series(1, 5) g"))
		_, err = conn.Exec(ctx, "DELETE FROM "+table)
		pe = wantPgError(t, err, "55000", "held for approval")
		if id2 := heldRE.FindStringSubmatch(pe.Message)[1]; id2 == id {
			t.Fatalf("the third run reused approval %s", id)
		}
		if c := countRows(t, table); c != 5 {
			t.Fatalf("the third run deleted rows: %d left of 5", c)
		}
		usable(t, conn)
	})

	// Extended protocol, text-format parameters (libpq, psql's \bind):
	// the planner estimate with the bound value decides bulk_delete.
	t.Run("extended protocol with a parameter", func(t *testing.T) {
		w := startGateway(t, func(c *config.Config) { c.Policy.Approval.BulkRows = 10 })
		const table, n = "ap_ext", 50
		approvalTable(t, table, n)
		conn, notices := dbaConn(t, w, requester, pgx.QueryExecModeCacheStatement)
		ctx := context.Background()
		sql := "DELETE FROM " + table + " WHERE id > $1"
		execText := func(ctx context.Context, v string) (pgconn.CommandTag, error) {
			return conn.PgConn().ExecParams(ctx, sql, [][]byte{[]byte(v)}, nil, []int16{0}, nil).Close()
		}
		// A small delete (planner estimate ~5 <= bulk_rows 10) runs at once.
		sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
		tag, err := execText(sctx, "45")
		scancel()
		if err != nil || tag.RowsAffected() != 5 {
			list, _ := (&approvals.Client{BaseURL: w.AdminURL, Token: w.Issuer.token(t, approver, "dba")}).List(ctx, "")
			t.Fatalf("small parameterized DELETE: %v, %v (approvals: %+v)", tag, err, list)
		}
		noNotice(t, notices, "a small delete")
		id, res := startHeldFn(t, notices, sql, func() (pgconn.CommandTag, error) { return execText(ctx, "0") })
		a := getApproval(t, w, id)
		if a.Action != "bulk_delete" || a.SQL != sql || len(a.Params) != 1 || a.Params[0] != "0" || a.EstimateRows <= 10 {
			t.Fatalf("held extended-protocol request: %+v", a)
		}
		notDone(t, res)
		cli.approve(t, w, id, "")
		r := await(t, res, 20*time.Second)
		if r.err != nil || r.tag.RowsAffected() != n-5 {
			t.Fatalf("approved parameterized DELETE: %v, %v", r.tag, r.err)
		}
		if c := countRows(t, table); c != 0 {
			t.Fatalf("%d rows left", c)
		}
		usable(t, conn)
	})

	// pgx's default mode sends the int parameter in binary: held, approved, run once.
	t.Run("extended protocol binary parameter", func(t *testing.T) {
		w := startGateway(t, func(c *config.Config) { c.Policy.Approval.BulkRows = 10 })
		const table, n = "ap_extbin", 30
		approvalTable(t, table, n)
		conn, notices := dbaConn(t, w, requester, pgx.QueryExecModeCacheStatement)
		sql := "DELETE FROM " + table + " WHERE id > $1"
		id, res := startHeld(t, context.Background(), conn, notices, sql, 0)
		a := getApproval(t, w, id)
		if a.Action != "bulk_delete" || a.SQL != sql || len(a.Params) != 1 {
			t.Fatalf("held request: %+v", a)
		}
		t.Logf("binary parameter stored as %q, estimate_rows %d", a.Params[0], a.EstimateRows)
		cli.approve(t, w, id, "")
		r := await(t, res, 20*time.Second)
		if r.err != nil || r.tag.RowsAffected() != n {
			t.Fatalf("approved DELETE: %v, %v", r.tag, r.err)
		}
		if c := countRows(t, table); c != 0 {
			t.Fatalf("%d rows left", c)
		}
		usable(t, conn)
	})

	t.Run("extended protocol small binary delete not held", func(t *testing.T) {
		// pgx's default mode sends an int parameter in binary: the gateway
		// decodes it with the type PostgreSQL described, so the planner
		// estimate sees the value and a small DELETE is not held.
		w := startGateway(t, func(c *config.Config) { c.Policy.Approval.BulkRows = 10 })
		const table = "ap_extbin_small"
		approvalTable(t, table, 50)
		conn, _ := dbaConn(t, w, requester, pgx.QueryExecModeCacheStatement)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		tag, err := conn.Exec(ctx, "DELETE FROM "+table+" WHERE id > $1", 45)
		if err != nil || tag.RowsAffected() != 5 {
			t.Fatalf("small parameterized DELETE in pgx's default mode: %v, %v", tag, err)
		}
	})

	t.Run("restart expires pending", func(t *testing.T) {
		dir := t.TempDir()
		const table, n = "ap_restart", 11
		approvalTable(t, table, n)
		var (
			id   string
			res  <-chan heldResult
			conn *pgx.Conn
		)
		t.Run("first gateway", func(t *testing.T) {
			w := startGateway(t, func(c *config.Config) { c.Store.Dir = dir })
			cc := dbaConnConfig(t, w, requester, simple)
			notices := make(chan string, 4)
			cc.OnNotice = func(_ *pgconn.PgConn, nt *pgconn.Notice) { notices <- nt.Message }
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			conn, err = pgx.ConnectConfig(ctx, cc)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			id, res = startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)
			// Leaving this subtest stops the gateway while the DELETE is held.
		})
		if res == nil {
			t.FailNow()
		}
		r := await(t, res, 30*time.Second)
		conn.Close(context.Background())
		if r.err == nil {
			t.Fatalf("the held DELETE completed across a gateway stop: %v", r.tag)
		}
		w := startGateway(t, func(c *config.Config) { c.Store.Dir = dir })
		a := getApproval(t, w, id)
		if !a.State.Final() || a.State == approvals.Executed || a.ExecutedAt != nil {
			t.Fatalf("after the restart the request is still runnable or ran: %+v", a)
		}
		apTok := w.Issuer.token(t, approver, "dba")
		if _, errOut, code := cli.run(t, w, apTok, "approve", id); code != 1 || !strings.Contains(errOut, "conflict") {
			t.Fatalf("approve after restart: exit %d, %q", code, errOut)
		}
		t.Run("listed as expired", func(t *testing.T) {
			if a.State != approvals.Expired {
				t.Fatalf("after the restart: %+v", a)
			}
			out, errOut, code := cli.run(t, w, apTok, "list", "--state", "expired", "--json")
			if code != 0 || !strings.Contains(out, `"id": "`+id+`"`) {
				t.Fatalf("list --state expired: exit %d, %q, %q", code, out, errOut)
			}
		})
		time.Sleep(300 * time.Millisecond)
		if c := countRows(t, table); c != n {
			t.Fatalf("rows changed across the restart: %d of %d", c, n)
		}
	})

	// A crash leaves the request pending in the file: the next gateway's
	// start-up expires it (simulated with a copy of the store taken while
	// the request is held, i.e. the file a killed process leaves behind).
	t.Run("crash leaves nothing runnable", func(t *testing.T) {
		const table, n = "ap_crash", 6
		approvalTable(t, table, n)
		w1 := startGateway(t, nil)
		conn, notices := dbaConn(t, w1, requester, simple)
		id, res := startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)
		data, err := os.ReadFile(filepath.Join(w1.Cfg.Store.Dir, "approvals.db"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		must0(t, os.WriteFile(filepath.Join(dir, "approvals.db"), data, 0o600))
		w2 := startGateway(t, func(c *config.Config) { c.Store.Dir = dir })
		a := getApproval(t, w2, id)
		if a.State != approvals.Expired || !strings.Contains(a.Note, "restart") {
			t.Fatalf("after a crash and restart: %+v", a)
		}
		if _, errOut, code := cli.run(t, w2, w2.Issuer.token(t, approver, "dba"), "approve", id); code != 1 || !strings.Contains(errOut, "conflict") {
			t.Fatalf("approve after the crash: exit %d, %q", code, errOut)
		}
		out, errOut, code := cli.run(t, w2, w2.Issuer.token(t, approver, "dba"), "list", "--state", "expired", "--json")
		if code != 0 || !strings.Contains(out, `"id": "`+id+`"`) {
			t.Fatalf("list --state expired after the crash: exit %d, %q, %q", code, out, errOut)
		}
		// Release the original hold in the first gateway.
		if _, errOut, code := cli.run(t, w1, w1.Issuer.token(t, approver, "dba"), "deny", id, "--reason", "test over"); code != 0 {
			t.Fatalf("deny in the first gateway: exit %d, %q", code, errOut)
		}
		wantPgError(t, await(t, res, 20*time.Second).err, "57014", "test over")
		if c := countRows(t, table); c != n {
			t.Fatalf("rows changed: %d of %d", c, n)
		}
	})

	t.Run("require reason", func(t *testing.T) {
		w := startGateway(t, func(c *config.Config) { c.Policy.Approval.RequireReason = true })
		const table, n = "ap_reason", 8
		approvalTable(t, table, n)
		conn, notices := dbaConn(t, w, requester, simple)
		ctx := context.Background()
		start := time.Now()
		_, err := conn.Exec(ctx, "DELETE FROM "+table)
		wantPgError(t, err, "42501", "SET pgwarden.reason")
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("refused after %v, want at once", took)
		}
		noNotice(t, notices, "a refused statement")
		list, err := (&approvals.Client{BaseURL: w.AdminURL, Token: w.Issuer.token(t, approver, "dba")}).List(ctx, "")
		if err != nil || len(list) != 0 {
			t.Fatalf("a refused statement was stored: %v, %v", list, err)
		}
		usable(t, conn)
		const reason = "ticket OPS-123: purge test docs"
		if _, err := conn.Exec(ctx, "SET pgwarden.reason = '"+reason+"'"); err != nil {
			t.Fatalf("SET pgwarden.reason: %v", err)
		}
		id, res := startHeld(t, ctx, conn, notices, "DELETE FROM "+table)
		if a := getApproval(t, w, id); a.Reason != reason {
			t.Fatalf("request reason %q, want %q", a.Reason, reason)
		}
		out, errOut, code := cli.run(t, w, w.Issuer.token(t, approver, "dba"), "show", id)
		if code != 0 || !strings.Contains(out, reason) {
			t.Fatalf("show: exit %d, %q, %q", code, out, errOut)
		}
		cli.approve(t, w, id, "")
		if r := await(t, res, 20*time.Second); r.err != nil || r.tag.RowsAffected() != n {
			t.Fatalf("approved DELETE with a reason: %v, %v", r.tag, r.err)
		}
		usable(t, conn)
	})
}

package integration

// The client compatibility suite: the real clients people use (psql, pgx,
// psycopg 3, psycopg2, SQLAlchemy, node-postgres + pgvector, pgbench) run as
// they ship, each with a fresh token as its password, against a gateway from
// startGateway. Every client does the same four things and must get what
// PostgreSQL gives directly:
//
//   - knn:    a kNN search returns the ids a direct query returns;
//   - insert: an insert with a vector (group ingest) lands upstream, vector intact;
//   - masked: customers' email/ssn come back masked (group analyst), exactly as
//     pgx sees them through the gateway, and no raw value appears anywhere in
//     the client's output;
//   - denied: DELETE as analyst is refused with SQLSTATE 42501 surfaced by the
//     client, the row is still there upstream and the connection still works.
//
// A client whose runtime is missing is skipped with a message, unless CI is
// set, when it fails (scripts/setup-clients.sh installs them all).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// debianPython is the interpreter Debian's python3-psycopg & co. are built for.
const debianPython = "/usr/bin/python3"

const (
	compatKNNText  = "approximate nearest neighbor search with hnsw and cosine distance"
	compatIngestTx = "garden compost and seedling watering in the greenhouse"
	maskedSQL      = "SELECT id, email, ssn FROM customers ORDER BY id LIMIT 10"
	deniedSQL      = "DELETE FROM documents WHERE id = 1"
)

// clientResult is what a client reports for one operation (the scripts print
// it as one JSON object on stdout).
type clientResult struct {
	IDs      []int64    `json:"ids"`      // knn: the ids, nearest first
	Runs     [][]int64  `json:"runs"`     // knn: repeated runs (prepared/pipelined)
	ID       int64      `json:"id"`       // insert: the new row's id
	Rows     [][]string `json:"rows"`     // masked: id, email, ssn as text
	RowsBin  [][]string `json:"rows_bin"` // masked: the same again by another path (binary results, extended protocol)
	SQLState string     `json:"sqlstate"` // denied: the SQLSTATE the client surfaced
	Message  string     `json:"message"`  // denied: the message the client surfaced
	After    int64      `json:"after"`    // denied: SELECT 1 on the same connection afterwards
}

// compatWant is what every client must reproduce, computed once per gateway.
type compatWant struct {
	vec    string     // query vector literal
	knn    []int64    // its 5 nearest ids, read directly
	masked [][]string // maskedSQL through the gateway with pgx as analyst
	raw    []string   // every raw email and ssn of customers, read directly
}

func computeWant(t *testing.T, w *gw) *compatWant {
	t.Helper()
	ctx := context.Background()
	d := direct(t)
	cw := &compatWant{vec: queryVector(compatKNNText)}
	cw.knn = ids(t, must(d.Query(ctx, knnSQL, cw.vec)))
	if len(cw.knn) != 5 {
		t.Fatalf("direct kNN returned %v", cw.knn)
	}
	rows := must(d.Query(ctx, "SELECT email, ssn FROM customers WHERE email IS NOT NULL AND ssn IS NOT NULL"))
	for rows.Next() {
		var e, s string
		must0(t, rows.Scan(&e, &s))
		cw.raw = append(cw.raw, e, s)
	}
	must0(t, rows.Err())
	if len(cw.raw) < 20 {
		t.Fatalf("only %d raw PII values seeded", len(cw.raw))
	}
	conn := w.connect(t, "compat-ref@example.com", "analyst")
	cw.masked = textRows(t, must(conn.Query(ctx, maskedSQL, pgx.QueryExecModeSimpleProtocol)))
	if len(cw.masked) != 10 {
		t.Fatalf("masked reference has %d rows", len(cw.masked))
	}
	rawByID := map[string][2]string{}
	rr := must(d.Query(ctx, "SELECT id::text, email, ssn FROM customers ORDER BY id LIMIT 10"))
	for rr.Next() {
		var id, e, s string
		must0(t, rr.Scan(&id, &e, &s))
		rawByID[id] = [2]string{e, s}
	}
	must0(t, rr.Err())
	for _, r := range cw.masked {
		raw := rawByID[r[0]]
		if r[1] == raw[0] || r[2] == raw[1] || r[1] == "" || r[2] == "" {
			t.Fatalf("reference row %v is not masked (raw %v)", r, raw)
		}
	}
	return cw
}

// textRows reads every column of rows as text.
func textRows(t *testing.T, rows pgx.Rows) [][]string {
	t.Helper()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		r := make([]string, len(vals))
		for i, v := range vals {
			r[i] = fmt.Sprint(v)
		}
		out = append(out, r)
	}
	must0(t, rows.Err())
	return out
}

// noRawPII fails if any raw customer email or ssn appears in out.
func (cw *compatWant) noRawPII(t *testing.T, what, out string) {
	t.Helper()
	for _, v := range cw.raw {
		if strings.Contains(out, v) {
			t.Fatalf("%s: the raw value %q appears in the output", what, v)
		}
	}
}

// needTool returns the path of a client runtime, or skips (fails under CI)
// when it is missing.
func needTool(t *testing.T, name, why string) string {
	t.Helper()
	p := name
	if !filepath.IsAbs(name) {
		var err error
		if p, err = exec.LookPath(name); err != nil {
			missing(t, fmt.Sprintf("%s not on PATH (%s)", name, why))
		}
	} else if _, err := os.Stat(name); err != nil {
		missing(t, fmt.Sprintf("%s missing (%s)", name, why))
	}
	return p
}

// needPython checks that Debian's python3 can import modules.
func needPython(t *testing.T, modules ...string) {
	t.Helper()
	needTool(t, debianPython, "apt-get install python3")
	out, err := exec.Command(debianPython, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err != nil {
		missing(t, fmt.Sprintf("%s cannot import %s: %s (run scripts/setup-clients.sh)", debianPython, strings.Join(modules, ", "), strings.TrimSpace(string(out))))
	}
}

// missing skips a test whose prerequisite (a client runtime, a tool, a
// binary) is absent; under CI (CI set) it fails instead, so CI never
// passes by skipping.
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("prerequisite missing under CI: %s", msg)
	}
	t.Skipf("prerequisite missing: %s", msg)
}

// compatDir is integration/testdata/compat as an absolute path.
func compatDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "compat")
}

// clientEnv is the environment of a client subprocess: libpq's variables
// point at the gateway with a fresh token for user in groups as PGPASSWORD,
// and any PG* variable of the test's own environment is dropped.
func (w *gw) clientEnv(t *testing.T, user string, groups []string, extra ...string) []string {
	t.Helper()
	h, p := w.hostPort()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "COMPAT_") && !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PGHOST="+h, "PGPORT="+p, "PGUSER="+user, "PGDATABASE=vectors",
		"PGSSLMODE=require", "PGCONNECT_TIMEOUT=10", "PGAPPNAME=pgwarden-compat",
		"PGPASSWORD="+w.Issuer.token(t, user, groups...),
	)
	return append(env, extra...)
}

// runClient runs a client command with clientEnv and a time limit.
func (w *gw) runClient(t *testing.T, user string, groups []string, env []string, stdin string, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = w.clientEnv(t, user, groups, env...)
	cmd.Dir = compatDir(t)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// compatOp runs one operation of a client and returns its result and its
// whole output (stdout+stderr, for the raw-PII check).
type compatOp func(t *testing.T, w *gw, op, user string, groups []string, env []string) (clientResult, string)

// jsonClient is a compatOp for a script that prints a clientResult as JSON.
func jsonClient(prog string, args ...string) compatOp {
	return func(t *testing.T, w *gw, op, user string, groups []string, env []string) (clientResult, string) {
		t.Helper()
		out, stderr, err := w.runClient(t, user, groups, env, "", prog, append(append([]string{}, args...), op)...)
		if err != nil {
			t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(args[len(args)-1]), op, err, out, stderr)
		}
		var r clientResult
		line := strings.TrimSpace(out)
		if i := strings.LastIndexByte(line, '\n'); i >= 0 {
			line = line[i+1:]
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: output is not a result: %v\nstdout: %s\nstderr: %s", op, err, out, stderr)
		}
		return r, out + stderr
	}
}

// runCompat runs the four operations of one client against a fresh gateway.
func runCompat(t *testing.T, client string, run compatOp) {
	w := startGateway(t, nil)
	cw := computeWant(t, w)
	ctx := context.Background()
	d := direct(t)
	analyst := []string{"analyst"}

	t.Run("knn", func(t *testing.T) {
		r, _ := run(t, w, "knn", "alice@example.com", analyst, []string{"COMPAT_VEC=" + cw.vec})
		if !slices.Equal(r.IDs, cw.knn) {
			t.Fatalf("%s kNN ids %v, direct %v", client, r.IDs, cw.knn)
		}
		for i, run := range r.Runs {
			if !slices.Equal(run, cw.knn) {
				t.Fatalf("%s kNN run %d ids %v, direct %v", client, i, run, cw.knn)
			}
		}
	})

	t.Run("insert", func(t *testing.T) {
		vec := queryVector(compatIngestTx)
		title := fmt.Sprintf("compat-%s-%d", client, time.Now().UnixNano())
		r, _ := run(t, w, "insert", "ingest-bot@example.com", []string{"ingest"}, []string{"COMPAT_VEC=" + vec, "COMPAT_TITLE=" + title})
		if r.ID <= 0 {
			t.Fatalf("%s insert reported id %d", client, r.ID)
		}
		t.Cleanup(func() { d.Exec(ctx, "DELETE FROM documents WHERE title = $1", title) })
		var gotTitle string
		var same bool
		if err := d.QueryRow(ctx, "SELECT title, embedding = $2::vector FROM documents WHERE id = $1", r.ID, vec).Scan(&gotTitle, &same); err != nil {
			t.Fatalf("%s inserted id %d, not found upstream: %v", client, r.ID, err)
		}
		if gotTitle != title || !same {
			t.Fatalf("%s: upstream row %d has title %q (want %q), embedding equal=%v", client, r.ID, gotTitle, title, same)
		}
	})

	t.Run("masked", func(t *testing.T) {
		r, out := run(t, w, "masked", "alice@example.com", analyst, nil)
		cw.noRawPII(t, client, out)
		if !slices.EqualFunc(r.Rows, cw.masked, slices.Equal) {
			t.Fatalf("%s masked rows\n%v\nwant (pgx through pgwarden)\n%v", client, r.Rows, cw.masked)
		}
		if r.RowsBin != nil && !slices.EqualFunc(r.RowsBin, cw.masked, slices.Equal) {
			t.Fatalf("%s masked rows (binary results)\n%v\nwant\n%v", client, r.RowsBin, cw.masked)
		}
	})

	// The control: dba has unmask, so the same read shows raw values — the
	// client really returns the column data the checks above look at.
	t.Run("unmasked control", func(t *testing.T) {
		r, out := run(t, w, "masked", "dba-1@example.com", []string{"dba"}, nil)
		if len(r.Rows) != len(cw.masked) || slices.EqualFunc(r.Rows, cw.masked, slices.Equal) {
			t.Fatalf("%s as dba: rows %v are the masked ones", client, r.Rows)
		}
		found := false
		for _, v := range cw.raw {
			found = found || strings.Contains(out, v)
		}
		if !found {
			t.Fatalf("%s as dba (unmask): no raw value in the output, so the raw-PII check proves nothing", client)
		}
	})

	t.Run("denied", func(t *testing.T) {
		r, _ := run(t, w, "denied", "alice@example.com", analyst, nil)
		if r.SQLState != "42501" {
			t.Fatalf("%s: DELETE as analyst surfaced SQLSTATE %q (%s), want 42501", client, r.SQLState, r.Message)
		}
		if !strings.Contains(r.Message, "pgwarden: ") {
			t.Fatalf("%s: message %q does not come from pgwarden", client, r.Message)
		}
		if r.After != 1 {
			t.Fatalf("%s: the connection did not answer SELECT 1 after the refusal (got %d)", client, r.After)
		}
		var n int
		must0(t, d.QueryRow(ctx, "SELECT count(*) FROM documents WHERE id = 1").Scan(&n))
		if n != 1 {
			t.Fatalf("%s: document 1 is gone upstream after a refused DELETE", client)
		}
	})
}

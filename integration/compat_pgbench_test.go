package integration

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pgbench with custom scripts (-n -f FILE), the token as PGPASSWORD, in each
// query mode: simple (one Query per statement), extended (unnamed
// Parse/Bind/Execute) and prepared (named statements reused), two clients.
func TestCompatPgbench(t *testing.T) {
	pgbench := needTool(t, "pgbench", "scripts/setup.sh installs postgresql-contrib")
	w := startGateway(t, nil)
	cw := computeWant(t, w)
	ctx := context.Background()
	d := direct(t)
	script := func(name string) string { return filepath.Join(compatDir(t), name) }
	const qid = 7
	// the script's own query, run directly, is the reference
	var want [5]int64
	must0(t, d.QueryRow(ctx, `SELECT a[1], a[2], a[3], a[4], a[5]
	  FROM (SELECT array_agg(id ORDER BY dist, id) AS a
	          FROM (SELECT id, embedding <-> (SELECT embedding FROM documents WHERE id = $1) AS dist
	                  FROM documents ORDER BY dist, id LIMIT 5) k) s`, qid).Scan(&want[0], &want[1], &want[2], &want[3], &want[4]))
	wantArgs := []string{"-D", fmt.Sprint("qid=", qid)}
	for i, id := range want {
		wantArgs = append(wantArgs, "-D", fmt.Sprintf("w%d=%d", i+1, id))
	}
	bench := func(t *testing.T, user string, groups []string, mode string, args ...string) (string, string, error) {
		t.Helper()
		all := append([]string{"-n", "-c", "2", "-t", "3", "-M", mode}, args...)
		return w.runClient(t, user, groups, nil, "", pgbench, all...)
	}
	analyst := []string{"analyst"}

	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			t.Run("knn", func(t *testing.T) {
				out, stderr, err := bench(t, "alice@example.com", analyst, mode, append([]string{"-f", script("knn.pgbench")}, wantArgs...)...)
				if err != nil {
					t.Fatalf("pgbench kNN: %v\n%s\n%s", err, out, stderr)
				}
				if !strings.Contains(out, "number of transactions actually processed: 6/6") {
					t.Fatalf("pgbench kNN did not process 6 transactions:\n%s\n%s", out, stderr)
				}
			})
			t.Run("knn control", func(t *testing.T) { // the in-script check can fail
				bad := append([]string{"-f", script("knn.pgbench")}, wantArgs...)
				bad[len(bad)-1] = fmt.Sprintf("w5=%d", want[4]+100000)
				out, stderr, err := bench(t, "alice@example.com", analyst, mode, bad...)
				if err == nil || !strings.Contains(stderr, "differs from PostgreSQL") {
					t.Fatalf("a wrong expectation passed: %v\n%s\n%s", err, out, stderr)
				}
			})
			t.Run("insert", func(t *testing.T) {
				run := time.Now().UnixNano()
				title := fmt.Sprint("compat-pgbench-", run)
				t.Cleanup(func() { d.Exec(ctx, "DELETE FROM documents WHERE title = $1", title) })
				out, stderr, err := bench(t, "ingest-bot@example.com", []string{"ingest"}, mode, "-f", script("insert.pgbench"), "-D", fmt.Sprint("run=", run), "-D", fmt.Sprint("qid=", qid))
				if err != nil {
					t.Fatalf("pgbench insert: %v\n%s\n%s", err, out, stderr)
				}
				var n int
				must0(t, d.QueryRow(ctx, "SELECT count(*) FROM documents WHERE title = $1 AND embedding = (SELECT embedding FROM documents WHERE id = $2)", title, qid).Scan(&n))
				if n != 6 {
					t.Fatalf("upstream has %d pgbench rows with document %d's vector, want 6", n, qid)
				}
			})
			t.Run("masked", func(t *testing.T) {
				out, stderr, err := bench(t, "alice@example.com", analyst, mode, "-f", script("masked.pgbench"))
				if err != nil {
					t.Fatalf("pgbench masked read: %v\n%s\n%s", err, out, stderr)
				}
				cw.noRawPII(t, "pgbench", out+stderr)
				byID := map[string][]string{}
				for _, r := range cw.masked {
					byID[r[0]] = r
				}
				seen := 0
				for _, line := range strings.Split(out, "\n") {
					f := strings.Fields(line)
					if len(f) != 4 || f[0] != "masked" {
						continue
					}
					seen++
					if r := byID[f[1]]; r == nil || f[2] != r[1] || f[3] != r[2] {
						t.Fatalf("pgbench read customer %s as %v, want %v", f[1], f[2:], r)
					}
				}
				if seen != 6 {
					t.Fatalf("pgbench printed %d masked rows, want 6:\n%s", seen, out)
				}
			})
			t.Run("denied", func(t *testing.T) {
				out, stderr, err := bench(t, "alice@example.com", analyst, mode, "-f", script("denied.pgbench"))
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 2 {
					t.Fatalf("pgbench DELETE as analyst: want exit 2 (client aborted), got %v\n%s\n%s", err, out, stderr)
				}
				// pgbench prints the server's message but not the SQLSTATE
				if !strings.Contains(stderr, "pgwarden: action delete not allowed") {
					t.Fatalf("pgbench did not report pgwarden's refusal:\n%s", stderr)
				}
				var n int
				must0(t, d.QueryRow(ctx, "SELECT count(*) FROM documents WHERE id = 1").Scan(&n))
				if n != 1 {
					t.Fatal("document 1 is gone upstream after a refused DELETE")
				}
			})
		})
	}
}

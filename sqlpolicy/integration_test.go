package sqlpolicy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// pgxQuery runs one statement with text parameters, the way
// pgwire.Session.Query does on the user's upstream session.
func pgxQuery(conn *pgx.Conn) QueryEstimator {
	return func(ctx context.Context, sql string, args ...string) ([][]string, error) {
		params := make([][]byte, len(args))
		for i, a := range args {
			params[i] = []byte(a)
		}
		res := conn.PgConn().ExecParams(ctx, sql, params, nil, nil, nil).Read()
		if res.Err != nil {
			return nil, res.Err
		}
		out := make([][]string, len(res.Rows))
		for i, r := range res.Rows {
			for _, v := range r {
				out[i] = append(out[i], string(v))
			}
		}
		return out, nil
	}
}

// TestEstimateAgainstPostgres asks a real PostgreSQL 15 planner (through
// EXPLAIN (FORMAT JSON), as the glue does) whether DELETE/UPDATE statements
// are bulk, and checks that asking never changes the data.
func TestEstimateAgainstPostgres(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CreateDB(ctx, "vectors"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "vectors",
		"CREATE TABLE documents (id int PRIMARY KEY, title text, embedding vector(3))",
		"INSERT INTO documents SELECT g, 'doc '||g, ARRAY[g, g+1, g+2]::vector FROM generate_series(1, 5000) g",
		"ANALYZE documents",
	); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.SuperDSN("vectors"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	est := pgxQuery(conn)
	p := NewPolicy(specPolicy()) // bulk_rows 1000
	sess := NewClassifier(16).NewSession()

	cases := []struct {
		sql    string
		params []string
		want   Action
	}{
		{"DELETE FROM documents WHERE id <= 10", nil, ActionDelete},
		{"DELETE FROM documents WHERE id > 100", nil, ActionBulkDelete},
		{"DELETE FROM documents WHERE true", nil, ActionBulkDelete},
		{"DELETE FROM documents WHERE id < $1", []string{"20"}, ActionDelete},
		{"DELETE FROM documents WHERE id < $1", []string{"4000"}, ActionBulkDelete},
		{"UPDATE documents SET title = 'x' WHERE id < 3000", nil, ActionBulkDelete},
		{"UPDATE documents SET title = 'x' WHERE id = 7", nil, ActionUpdate},
		{"WITH d AS (DELETE FROM documents WHERE id > 10 RETURNING *) SELECT count(*) FROM d", nil, ActionBulkDelete},
		{"WITH d AS (DELETE FROM documents WHERE id = 3 RETURNING *) SELECT count(*) FROM d", nil, ActionDelete},
		{"MERGE INTO documents d USING (SELECT 1 AS id) s ON d.id = s.id WHEN MATCHED THEN DELETE", nil, ActionDelete},
		{"MERGE INTO documents d USING documents s ON d.id = s.id WHEN MATCHED THEN UPDATE SET title = 'y'", nil, ActionBulkDelete},
	}
	for _, tc := range cases {
		t.Run(tc.sql, func(t *testing.T) {
			st := stmt(t, tc.sql)
			if !st.NeedsEstimate {
				t.Fatalf("no estimate needed: %+v", st)
			}
			got, err := p.Refine(ctx, st, tc.params, est)
			if err != nil || got != tc.want {
				t.Fatalf("refine: %s %v, want %s", got, err, tc.want)
			}
		})
	}

	// EXECUTE of a prepared DELETE is estimated with EXPLAIN EXECUTE.
	if _, err := conn.Exec(ctx, "PREPARE p(int) AS DELETE FROM documents WHERE id < $1"); err != nil {
		t.Fatal(err)
	}
	a, _ := Classify("PREPARE p(int) AS DELETE FROM documents WHERE id < $1")
	sess.Apply(sess.Resolve(a))
	for arg, want := range map[string]Action{"4000": ActionBulkDelete, "5": ActionDelete} {
		a, _ = Classify("EXECUTE p(" + arg + ")")
		st := sess.Resolve(a)[0]
		if got, err := p.Refine(ctx, st, nil, est); err != nil || got != want {
			t.Fatalf("EXECUTE p(%s): %s %v, want %s", arg, got, err, want)
		}
	}

	// Evaluate: ingest may delete a few rows, not thousands.
	d := p.Evaluate(ctx, []string{"ingest"}, []Statement{stmt(t, "DELETE FROM documents WHERE id < $1")}, []string{"3000"}, est)
	if d.Allowed || d.Action != ActionBulkDelete || d.EstimateRows < 1000 || d.Err == nil {
		t.Fatalf("evaluate bulk: %+v", d)
	}
	d = p.Evaluate(ctx, []string{"ingest"}, []Statement{stmt(t, "DELETE FROM documents WHERE id < $1")}, []string{"3"}, est)
	if !d.Allowed || d.Action != ActionDelete || d.EstimateRows < 1 || d.EstimateRows > 1000 {
		t.Fatalf("evaluate small: %+v", d)
	}

	// A failing EXPLAIN fails closed.
	got, err := p.Refine(ctx, stmt(t, "DELETE FROM missing WHERE id = 1"), nil, est)
	var pe interface{ SQLState() string }
	if got != ActionBulkDelete || !errors.As(err, &pe) {
		t.Fatalf("missing table: %s %v", got, err)
	}

	// Nothing was deleted or updated by asking.
	var n int
	var titles int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE title LIKE 'doc %') FROM documents").Scan(&n, &titles); err != nil {
		t.Fatal(err)
	}
	if n != 5000 || titles != 5000 {
		t.Fatalf("estimation changed the data: %d rows, %d untouched titles", n, titles)
	}
}

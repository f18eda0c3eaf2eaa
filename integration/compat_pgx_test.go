package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgx in every query mode (TestPgxSimpleAndExtended covers kNN parity and a
// pipelined batch per mode): an insert with a vector, a masked read in text
// and binary result formats, a denied DELETE (alone and inside a batch) with
// the connection usable afterwards.
func TestCompatPgx(t *testing.T) {
	w := startGateway(t, nil)
	cw := computeWant(t, w)
	ctx := context.Background()
	d := direct(t)
	modes := []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			connect := func(user string, groups ...string) *pgx.Conn {
				return w.connectMode(t, mode, user, groups...)
			}
			t.Run("insert", func(t *testing.T) {
				conn := connect("ingest-bot@example.com", "ingest")
				vec := queryVector(compatIngestTx)
				title := fmt.Sprintf("compat-pgx-%s-%d", mode, time.Now().UnixNano())
				t.Cleanup(func() { d.Exec(ctx, "DELETE FROM documents WHERE title = $1", title) })
				var id int64
				for i := 0; i < 2; i++ { // twice: the statement cache's second use
					must0(t, conn.QueryRow(ctx, "INSERT INTO documents (title, body, metadata, embedding) VALUES ($1, $2, $3::jsonb, $4::vector) RETURNING id",
						title, "inserted by pgx", `{"source": "compat"}`, vec).Scan(&id))
				}
				var n int
				must0(t, d.QueryRow(ctx, "SELECT count(*) FROM documents WHERE title = $1 AND embedding = $2::vector", title, vec).Scan(&n))
				if n != 2 {
					t.Fatalf("upstream has %d rows titled %q with the vector, want 2", n, title)
				}
			})
			t.Run("masked", func(t *testing.T) {
				conn := connect("alice@example.com", "analyst")
				got := textRows(t, must(conn.Query(ctx, maskedSQL)))
				if !slices.EqualFunc(got, cw.masked, slices.Equal) {
					t.Fatalf("masked rows %v, want %v", got, cw.masked)
				}
				cw.noRawPII(t, "pgx text", fmt.Sprint(got))
				if mode == pgx.QueryExecModeSimpleProtocol {
					return // the simple protocol has no result formats
				}
				bin := textRows(t, must(conn.Query(ctx, maskedSQL, pgx.QueryResultFormats{pgx.BinaryFormatCode})))
				if !slices.EqualFunc(bin, cw.masked, slices.Equal) {
					t.Fatalf("masked rows in binary format %v, want %v", bin, cw.masked)
				}
			})
			t.Run("denied", func(t *testing.T) {
				conn := connect("alice@example.com", "analyst")
				_, err := conn.Exec(ctx, "DELETE FROM documents WHERE id = $1", 1)
				if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "pgwarden: ") {
					t.Fatalf("DELETE as analyst: want 42501 from pgwarden, got %v", err)
				}
				var one int
				must0(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
				// inside a pipelined batch: the refusal surfaces as 42501 (at
				// Parse when pgx prepares the whole batch first, at the
				// statement otherwise; a simple-protocol batch is one Query,
				// refused whole) and the connection stays in sync
				b := &pgx.Batch{}
				b.Queue("SELECT count(*) FROM documents")
				b.Queue("DELETE FROM documents WHERE id = $1", 1)
				b.Queue("SELECT 2")
				br := conn.SendBatch(ctx, b)
				var first error
				for i := 0; i < b.Len(); i++ {
					if _, err := br.Exec(); err != nil && first == nil {
						first = err
					}
				}
				br.Close()
				if sqlstate(first) != "42501" {
					t.Fatalf("batch with a DELETE: want 42501, got %v", first)
				}
				must0(t, conn.QueryRow(ctx, "SELECT 3").Scan(&one))
				if one != 3 {
					t.Fatalf("after the batch: SELECT 3 = %d", one)
				}
				var n int
				must0(t, d.QueryRow(ctx, "SELECT count(*) FROM documents WHERE id = 1").Scan(&n))
				if n != 1 {
					t.Fatal("document 1 is gone upstream after refused DELETEs")
				}
			})
		})
	}

	// Named prepared statements (conn.Prepare) reused, and a DELETE refused
	// at Parse or at Execute.
	t.Run("prepared", func(t *testing.T) {
		conn := w.connect(t, "alice@example.com", "analyst")
		if _, err := conn.Prepare(ctx, "knn", knnSQL); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			got := ids(t, must(conn.Query(ctx, "knn", cw.vec)))
			if !slices.Equal(got, cw.knn) {
				t.Fatalf("prepared run %d: %v, want %v", i, got, cw.knn)
			}
		}
		_, err := conn.Prepare(ctx, "del", "DELETE FROM documents WHERE id = $1")
		if err == nil {
			_, err = conn.Exec(ctx, "del", 1)
		}
		if sqlstate(err) != "42501" {
			t.Fatalf("prepared DELETE: want 42501, got %v", err)
		}
		got := ids(t, must(conn.Query(ctx, "knn", cw.vec)))
		if !slices.Equal(got, cw.knn) {
			t.Fatalf("prepared after refusal: %v, want %v", got, cw.knn)
		}
	})

	// The low-level pipeline: Parse once, two Executes, a refused statement
	// and a third Execute after the Sync that ends the failed segment.
	t.Run("pipeline", func(t *testing.T) {
		conn := w.connect(t, "alice@example.com", "analyst")
		pc := conn.PgConn()
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		p := pc.StartPipeline(pctx)
		p.SendPrepare("pknn", knnSQL, nil)
		p.SendQueryPrepared("pknn", [][]byte{[]byte(cw.vec)}, nil, nil)
		p.SendQueryPrepared("pknn", [][]byte{[]byte(cw.vec)}, nil, nil)
		p.SendPipelineSync()
		p.SendQueryParams(deniedSQL, nil, nil, nil, nil)
		p.SendPipelineSync()
		p.SendQueryPrepared("pknn", [][]byte{[]byte(cw.vec)}, nil, nil)
		p.SendPipelineSync()
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		var knnRuns [][]int64
		var denied error
		syncs := 0
		for syncs < 3 {
			res, err := p.GetResults()
			if err != nil {
				if denied == nil && sqlstate(err) != "" {
					denied = err
					continue
				}
				t.Fatalf("pipeline: %v", err)
			}
			switch r := res.(type) {
			case *pgconn.StatementDescription:
			case *pgconn.PipelineSync:
				syncs++
			case *pgconn.ResultReader:
				rr := r.Read()
				if rr.Err != nil {
					if denied == nil {
						denied = rr.Err
						continue
					}
					t.Fatalf("pipeline result: %v", rr.Err)
				}
				if rr.CommandTag.Select() {
					var run []int64
					for _, row := range rr.Rows {
						run = append(run, atoi(t, string(row[0])))
					}
					knnRuns = append(knnRuns, run)
				}
			case nil:
				t.Fatal("pipeline ended before its third Sync")
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("pipeline close: %v", err)
		}
		if sqlstate(denied) != "42501" {
			t.Fatalf("pipelined DELETE: want 42501, got %v", denied)
		}
		if len(knnRuns) != 3 {
			t.Fatalf("pipeline returned %d kNN results, want 3", len(knnRuns))
		}
		for i, run := range knnRuns {
			if !slices.Equal(run, cw.knn) {
				t.Fatalf("pipelined kNN %d: %v, want %v", i, run, cw.knn)
			}
		}
	})
}

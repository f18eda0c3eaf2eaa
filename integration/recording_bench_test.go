package integration

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/config"
)

// Recording overhead on a kNN search workload through the gateway (real
// PostgreSQL + pgvector, in-process pgwarden, pgx with its statement cache:
// one Bind/Execute/Sync round trip per search, 5 ids back).
//
// The session recorder cannot be switched off (the file store is always
// on, SPEC: "the file store always"), so "Off" is the closest the
// configuration allows: recording.results false — statement events are
// still chained and written, result rows are not captured. "Direct" is
// PostgreSQL without pgwarden, for scale. allocs/op include the in-process
// gateway's allocations.

func benchKNN(b *testing.B, conn *pgx.Conn) {
	ctx := context.Background()
	vec := queryVector("vector databases and approximate nearest neighbour search")
	run := func() {
		rows, err := conn.Query(ctx, knnSQL, vec)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil || n != 5 {
			b.Fatalf("kNN returned %d rows: %v", n, err)
		}
	}
	for i := 0; i < 20; i++ { // warm: prepared statement, catalog and plan caches
		run()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
}

func benchKNNRecording(b *testing.B, results bool) {
	w := startGateway(b, func(c *config.Config) { c.Recording.Results = results })
	benchKNN(b, w.connect(b, "bench@example.com", "analyst"))
}

// BenchmarkKNNRecordingOn: every search recorded with its (masked) rows.
func BenchmarkKNNRecordingOn(b *testing.B) { benchKNNRecording(b, true) }

// BenchmarkKNNRecordingOff: recording.results false (events without rows).
func BenchmarkKNNRecordingOff(b *testing.B) { benchKNNRecording(b, false) }

// BenchmarkKNNRecordingDirect: the same workload straight to PostgreSQL.
func BenchmarkKNNRecordingDirect(b *testing.B) {
	conn, err := pgx.Connect(context.Background(), upstream.pg.SuperDSN("vectors"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	benchKNN(b, conn)
}

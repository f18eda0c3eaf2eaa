package sessions

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
)

// BenchmarkRecordStatement measures the relay's cost of recording one
// statement with a 10-row result: the enqueue (the writer runs concurrently).
func BenchmarkRecordStatement(b *testing.B) {
	cfg := config.Default().Recording
	r, err := Open(cfg, config.Store{Dir: b.TempDir()}, zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	s := r.Start(StartInfo{ID: "bench", User: "alice", Groups: []string{"analyst"}, Database: "vectors", BackendUser: "pgw_a"})
	var rows ResultRows
	for range 10 {
		rows.AppendRow([][]byte{[]byte("1"), []byte("a title of a document"), []byte("0.1234")}, nil)
	}
	ev := StatementEvent{SQL: "SELECT id, title, embedding <-> $1 AS d FROM documents ORDER BY d LIMIT 10",
		Actions: []string{"search"}, Decision: DecisionAllow, Columns: []string{"id", "title", "d"}, Rows: &rows, Duration: time.Millisecond}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Statement(ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = r.Close()
}

// BenchmarkHashChain measures the writer's per-event work: canonical
// encoding plus SHA-256 (throughput in events/s = 1e9 / ns/op).
func BenchmarkHashChain(b *testing.B) {
	enc := newEncoder()
	var rows ResultRows
	for range 10 {
		rows.AppendRow([][]byte{[]byte("1"), []byte("a title of a document"), []byte("0.1234")}, nil)
	}
	ev := Event{Seq: 1, Time: time.Now().UTC().Format(TimeFormat), Session: "bench", Type: TypeStatement, User: "alice",
		SQL: "SELECT id, title, embedding <-> $1 AS d FROM documents ORDER BY d LIMIT 10", Actions: []string{"search"},
		Decision: DecisionAllow, Columns: []string{"id", "title", "d"}, RowsTotal: 10}
	ev.SetRowsJSON(rows.upTo(10))
	b.ReportAllocs()
	var n int
	for i := 0; i < b.N; i++ {
		ev.Seq++
		ev.PrevHash = ev.Hash
		line := enc.Line(&ev)
		n = len(line)
	}
	b.SetBytes(int64(n))
}

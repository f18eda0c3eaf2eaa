package approvals_test

import (
	"context"
	"testing"

	"github.com/rs/zerolog"

	. "github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/boltstore"
)

func benchManager(b *testing.B, mode string) *Manager {
	b.Helper()
	s, err := boltstore.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return New(testCfg(mode), s, zerolog.Nop())
}

// Claim runs before every retry-mode hold; the common case is a miss.
func BenchmarkClaimMiss(b *testing.B) {
	m := benchManager(b, ModeRetry)
	params := []string{"10"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := m.Claim("dba-1", "vectors", "DELETE FROM documents WHERE id > $1", params); ok {
			b.Fatal("hit")
		}
	}
}

// SessionEnded runs at the end of every session; with nothing held it
// must cost next to nothing.
func BenchmarkSessionEndedNothingHeld(b *testing.B) {
	m := benchManager(b, ModeWait)
	b.ReportAllocs()
	for b.Loop() {
		m.SessionEnded("s1")
	}
}

// Hold is one fsynced bbolt transaction.
func BenchmarkHold(b *testing.B) {
	m := benchManager(b, ModeRetry)
	r := req("dba-1", "s1", "DELETE FROM documents")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Hold(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	m := benchManager(b, ModeRetry)
	a, err := m.Hold(context.Background(), req("dba-1", "s1", "DELETE FROM documents"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Get(context.Background(), a.ID); err != nil {
			b.Fatal(err)
		}
	}
}

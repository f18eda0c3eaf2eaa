package approvals_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	. "github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/boltstore"
)

// FuzzManagerGet: IDs from URLs reach Get; nothing but ErrNotFound or a
// real record comes back.
func FuzzManagerGet(f *testing.F) {
	dir := f.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	m := New(testCfg(ModeWait), s, zerolog.Nop(), WithClock(func() time.Time { return time.Unix(1e9, 0) }))
	f.Add("aaaaaaaaaaaaaaaa")
	f.Add("../../x")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		a, err := m.Get(context.Background(), id)
		if err == nil || a != nil || !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%q) = %v, %v", id, a, err)
		}
	})
}

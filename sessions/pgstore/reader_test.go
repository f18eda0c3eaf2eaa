package pgstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sessions/logtest"
	"github.com/pgwarden/pgwarden/sessions/pgstore"
)

var _ sessions.Log = (*pgstore.Reader)(nil)

var pg = pgtest.Lazy{Prefix: "pgwarden-sessions-pgstore-"}

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// freshDB returns a new, migrated shared store on the package's one
// PostgreSQL server (started on first use).
func freshDB(t *testing.T) *sharedstore.Store {
	t.Helper()
	dsn := pg.FreshDB(t, "events")
	db, err := sharedstore.Open(context.Background(), dsn, "pgwarden-test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) (*sessions.Recorder, sessions.Log) {
		db := freshDB(t)
		r, err := sessions.OpenShared(config.Recording{Results: true, MaxRows: 10}, db, "gw-a", zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r, pgstore.NewReader(db)
	})
}

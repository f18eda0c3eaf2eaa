package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sessions/logtest"
	"github.com/pgwarden/pgwarden/sessions/pgstore"
)

var _ sessions.Log = (*pgstore.Reader)(nil)

var (
	cluster  *pgtest.Cluster
	startErr error
	once     sync.Once
	dbSeq    atomic.Int32
	tmpDir   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// freshDB returns a new, migrated shared store on the package's one
// PostgreSQL server (started on first use).
func freshDB(t *testing.T) *sharedstore.Store {
	t.Helper()
	once.Do(func() {
		if startErr = pgtest.Available(); startErr != nil {
			return
		}
		tmpDir, startErr = os.MkdirTemp("", "pgwarden-sessions-pgstore-")
		if startErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cluster, startErr = pgtest.Start(ctx, filepath.Join(tmpDir, "data"), pgtest.Options{})
	})
	if startErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(startErr)
		}
		t.Skip(startErr)
	}
	name := fmt.Sprintf("events%d", dbSeq.Add(1))
	if err := cluster.CreateDB(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	db, err := sharedstore.Open(context.Background(), cluster.SuperDSN(name), "pgwarden-test", true)
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

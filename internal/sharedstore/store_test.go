package sharedstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestMigrationsNumbered(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || Version() != len(ms) {
		t.Fatalf("%d migrations, Version %d", len(ms), Version())
	}
	for _, m := range ms {
		if strings.TrimSpace(m.SQL) == "" || m.Name == "" {
			t.Fatalf("migration %d is empty or unnamed", m.Version)
		}
	}
}

func TestRedactAndScrub(t *testing.T) {
	dsn := "postgres://u:s3cr%21t@h:5432/db?sslmode=disable&password=other"
	r := Redact(dsn)
	if strings.Contains(r, "s3cr") || strings.Contains(r, "other") {
		t.Fatalf("Redact left a secret: %s", r)
	}
	msg := scrub(errors.New("cannot parse `postgres://u:s3cr!t@h` or s3cr%21t"), dsn)
	if strings.Contains(msg, "s3cr") {
		t.Fatalf("scrub left the password: %s", msg)
	}
}

// Open with migrate=false refuses an empty database (ErrSchema); gateways
// migrating at once apply each migration exactly once; then migrate=false
// accepts the schema.
func TestMigrateOnceAndSchemaCheck(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	ctx := context.Background()
	if err := c.CreateDB(ctx, "store"); err != nil {
		t.Fatal(err)
	}
	dsn := c.SuperDSN("store")
	if _, err := Open(ctx, dsn, "t", false); !errors.Is(err, ErrSchema) {
		t.Fatalf("Open without migrate on an empty database: %v, want ErrSchema", err)
	}
	var wg sync.WaitGroup
	applied := make([][]int, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, dsn, "t", false)
			if err == nil {
				s.Close()
			}
			s, err = openPlain(ctx, dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			applied[i], errs[i] = s.Migrate(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += len(applied[i])
	}
	if total != Version() {
		t.Fatalf("concurrent migrations applied %d steps in all, want %d (each once)", total, Version())
	}
	s, err := Open(ctx, dsn, "t", false)
	if err != nil {
		t.Fatalf("Open without migrate after migrating: %v", err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != Version() {
		t.Fatalf("SchemaVersion %d, %v", v, err)
	}
}

func TestOpenUnreachableKeepsPasswordOut(t *testing.T) {
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dsn := "postgres://u:hunter2pw@127.0.0.1:" + itoa(port) + "/db?sslmode=disable"
	_, err = Open(context.Background(), dsn, "t", true)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Open of a closed port: %v, want ErrUnreachable", err)
	}
	if strings.Contains(err.Error(), "hunter2pw") {
		t.Fatalf("the error carries the password: %v", err)
	}
}

// openPlain opens a pool without touching the schema (tests).
func openPlain(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &Store{Pool: pool, dsn: dsn}, nil
}

func itoa(n int) string { return strconv.Itoa(n) }

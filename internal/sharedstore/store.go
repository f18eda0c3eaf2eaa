package sharedstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one embedded schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order. Their
// names are NNNN_name.sql; a gap or a duplicate version is a build bug
// (TestMigrationsNumbered).
func Migrations() ([]Migration, error) {
	ents, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range ents {
		name := e.Name()
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sharedstore: migration file %s is not NNNN_name.sql", name)
		}
		b, err := migrationFiles.ReadFile("migrations/" + name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("sharedstore: migrations are not numbered 1..n: %d at position %d", m.Version, i+1)
		}
	}
	return out, nil
}

// Version is the schema version this binary needs (its newest migration).
func Version() int {
	ms, err := Migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// ErrUnreachable wraps every failure to reach the store.
var ErrUnreachable = errors.New("the shared store is unreachable")

// ErrSchema is a schema older than this binary needs (store.migrate: off).
var ErrSchema = errors.New("the shared store's schema is out of date")

// OpTimeout bounds each store operation a session waits for.
const OpTimeout = 5 * time.Second

// Store is an open pool on store.dsn.
type Store struct {
	Pool *pgxpool.Pool
	dsn  string
}

// Redact returns the DSN without its password (for errors and logs).
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable store.dsn)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Open connects to dsn and checks the schema: with migrate it is created
// or upgraded first, without it a schema older than Version() is refused
// (ErrSchema: run `pgwarden store migrate`). The pool reconnects by itself
// when the store comes back after an outage.
func Open(ctx context.Context, dsn, app string, migrate bool) (*Store, error) {
	s, err := OpenRaw(ctx, dsn, app)
	if err != nil {
		return nil, err
	}
	pool := s.Pool
	if migrate {
		if _, err := s.Migrate(ctx); err != nil {
			pool.Close()
			return nil, err
		}
		return s, nil
	}
	have, err := s.SchemaVersion(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if have < Version() {
		pool.Close()
		return nil, fmt.Errorf("sharedstore: %w: version %d, this pgwarden needs %d; run `pgwarden store migrate --config FILE` (store.migrate is off)", ErrSchema, have, Version())
	}
	return s, nil
}

// OpenRaw opens the pool without looking at the schema (`pgwarden store
// migrate`). The pool connects lazily.
func OpenRaw(ctx context.Context, dsn, app string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sharedstore: store.dsn: %s", scrub(err, dsn))
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > OpTimeout {
		cfg.ConnConfig.ConnectTimeout = OpTimeout
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sharedstore: %w: %s", ErrUnreachable, scrub(err, dsn))
	}
	return &Store{Pool: pool, dsn: dsn}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// DSN is store.dsn (callers that need a dedicated connection, e.g. LISTEN).
func (s *Store) DSN() string { return s.dsn }

// Unreachable wraps err as ErrUnreachable with the DSN's secrets removed
// (nil stays nil).
func (s *Store) Unreachable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnreachable, scrub(err, s.dsn))
}

// scrub removes the DSN's password from an error's text (pgx includes the
// connection string in some parse and connect errors).
func scrub(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
			msg = strings.ReplaceAll(msg, url.QueryEscape(pw), "xxxxx")
		}
	}
	return msg
}

// SchemaVersion is the newest migration applied (0: none).
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	var v int
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM pgwarden.schema_migrations`).Scan(&v)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // no table / no schema yet
		return 0, nil
	}
	if err != nil {
		return 0, s.Unreachable(err)
	}
	return v, nil
}

// migrateLock is the advisory lock key migrations hold ("pgwarden" in ASCII).
const migrateLock int64 = 0x7067776172646e

// Migrate applies every embedded migration the store lacks, each in its own
// transaction, and returns the versions it applied. Concurrent callers
// (gateways starting together) serialize on an advisory lock; the second
// finds nothing left to do.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return nil, s.Unreachable(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return nil, s.Unreachable(err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, migrateLock) }()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS pgwarden;
CREATE TABLE IF NOT EXISTS pgwarden.schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("sharedstore: create schema_migrations: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM pgwarden.schema_migrations`).Scan(&have); err != nil {
		return nil, s.Unreachable(err)
	}
	var applied []int
	for _, m := range ms {
		if m.Version <= have {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO pgwarden.schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("sharedstore: migration %04d_%s: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// Check is the readiness check: the store answers within the deadline.
// Its error names no address or secret.
func (s *Store) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.Pool.Ping(ctx); err != nil {
		return errors.New("shared store unreachable")
	}
	return nil
}

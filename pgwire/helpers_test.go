package pgwire

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// shared is the PostgreSQL cluster most tests use (TestMain starts it).
var shared *pgtest.Cluster

func TestMain(m *testing.M) {
	code := func() int {
		if err := pgtest.Available(); err != nil {
			if os.Getenv("CI") != "" {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Fprintln(os.Stderr, "skipping integration tests:", err)
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "pgwire-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := pgtest.Start(ctx, filepath.Join(dir, "data"), pgtest.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Stop()
		if err := prepareCluster(ctx, c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		shared = c
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func prepareCluster(ctx context.Context, c *pgtest.Cluster) error {
	if err := c.CreateDB(ctx, "vectors"); err != nil {
		return err
	}
	return c.Exec(ctx, "vectors",
		"DO $$ BEGIN CREATE ROLE tester NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
		"GRANT ALL ON SCHEMA public TO tester",
		"CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text, embedding vector(3))",
		"GRANT ALL ON items TO tester",
	)
}

func needPG(t testing.TB) *pgtest.Cluster {
	t.Helper()
	if shared == nil {
		t.Skip("PostgreSQL not available")
	}
	return shared
}

// fakeVerifier accepts "good-<user>" for user; "expired" is refused as expired.
type fakeVerifier struct{ groups []string }

func (v fakeVerifier) Verify(_ context.Context, token, user string) (identity.Principal, error) {
	switch {
	case token == "":
		return identity.Principal{}, &identity.RefusalError{Reason: identity.ReasonMissing, Detail: "empty"}
	case token == "expired":
		return identity.Principal{}, &identity.RefusalError{Reason: identity.ReasonExpired, Detail: "exp in the past"}
	case token == "good-"+user:
		return identity.Principal{User: user, Subject: user, Groups: v.groups, Expiry: time.Now().Add(time.Hour), Issuer: "test"}, nil
	case strings.HasPrefix(token, "good-"):
		return identity.Principal{}, &identity.RefusalError{Reason: identity.ReasonUserMismatch, Detail: "user"}
	}
	return identity.Principal{}, &identity.RefusalError{Reason: identity.ReasonSignature, Detail: "bad signature"}
}

func (fakeVerifier) Check(context.Context) error { return nil }

// testProvider mints real PostgreSQL login roles through the superuser.
type testProvider struct {
	c         *pgtest.Cluster
	ttl       time.Duration
	renewable bool
	minted    atomic.Int32
	revoked   atomic.Int32
	renewed   atomic.Int32
	mu        sync.Mutex
	live      map[string]bool
}

func newTestProvider(c *pgtest.Cluster) *testProvider {
	return &testProvider{c: c, ttl: time.Hour, renewable: true, live: map[string]bool{}}
}

func (p *testProvider) Name() string                { return "test" }
func (p *testProvider) Check(context.Context) error { return nil }
func (p *testProvider) Close() error                { return nil }

func (p *testProvider) Mint(ctx context.Context, req credentials.Request) (credentials.Lease, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "pgt_" + hex.EncodeToString(b[:])
	pw := "pw'" + hex.EncodeToString(b[:4]) + `\x` // odd characters exercise DSN quoting
	exp := time.Now().Add(p.ttl)
	err := p.c.Exec(ctx, "vectors",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s IN ROLE tester", pgx.Identifier{name}.Sanitize(), quoteLiteral(pw)))
	if err != nil {
		return nil, &credentials.MintError{Public: "test provider could not create the role", Cause: err}
	}
	p.minted.Add(1)
	p.mu.Lock()
	p.live[name] = true
	p.mu.Unlock()
	return &testLease{p: p, user: name, pw: pw, exp: exp}, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func (p *testProvider) liveCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

type testLease struct {
	p       *testProvider
	user    string
	pw      string
	mu      sync.Mutex
	exp     time.Time
	revoked bool
}

func (l *testLease) Username() string { return l.user }
func (l *testLease) Password() string { return l.pw }
func (l *testLease) Expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.exp
}

func (l *testLease) Renew(context.Context) (time.Time, error) {
	if !l.p.renewable {
		return time.Time{}, credentials.ErrNotRenewable
	}
	l.p.renewed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.exp = time.Now().Add(l.p.ttl)
	return l.exp, nil
}

func (l *testLease) Revoke(ctx context.Context) error {
	l.mu.Lock()
	if l.revoked {
		l.mu.Unlock()
		return nil
	}
	l.revoked = true
	l.mu.Unlock()
	id := pgx.Identifier{l.user}.Sanitize()
	err := l.p.c.Exec(ctx, "vectors",
		fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", quoteLiteral(l.user)),
		"DROP OWNED BY "+id,
		"DROP ROLE "+id)
	l.p.revoked.Add(1)
	l.p.mu.Lock()
	delete(l.p.live, l.user)
	l.p.mu.Unlock()
	return err
}

// gateway is a running Server for a test.
type gateway struct {
	srv  *Server
	addr string
	prov *testProvider
	reg  *prometheus.Registry
	c    *pgtest.Cluster
}

func startGateway(t *testing.T, c *pgtest.Cluster, mod func(*Config)) *gateway {
	t.Helper()
	prov := newTestProvider(c)
	reg := prometheus.NewRegistry()
	cfg := Config{
		Targets: []Target{{
			Name:     "default",
			Upstream: Upstream{Host: c.Host, Port: c.Port, SSLMode: "disable", ConnectTimeout: 5 * time.Second},
			Provider: prov,
		}},
		Verifier:       fakeVerifier{groups: []string{"analyst"}},
		StartupTimeout: 10 * time.Second,
		Logger:         zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Registerer:     reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	if len(cfg.Targets) == 1 {
		if p, ok := cfg.Targets[0].Provider.(*testProvider); ok {
			prov = p
		}
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil && !errors.Is(err, ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &gateway{srv: srv, addr: l.Addr().String(), prov: prov, reg: reg, c: c}
}

// dsn returns a client connection string for user with token.
func (g *gateway) dsn(user, token, extra string) string {
	host, port, _ := net.SplitHostPort(g.addr)
	s := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=vectors sslmode=disable connect_timeout=5", host, port, user, token)
	if extra != "" {
		s += " " + extra
	}
	return s
}

func (g *gateway) connect(t *testing.T, user string, extra string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, g.dsn(user, "good-"+user, extra))
	if err != nil {
		t.Fatalf("connect through gateway: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// connectNotices connects like connect and collects the messages of the
// NoticeResponses the client receives.
func (g *gateway) connectNotices(t *testing.T, user string) (*pgx.Conn, <-chan string) {
	t.Helper()
	notices := make(chan string, 4)
	cfg, err := pgx.ParseConfig(g.dsn(user, "good-"+user, ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices <- n.Message }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through gateway: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, notices
}

// nextNotice waits (bounded) for the next notice message.
func nextNotice(t *testing.T, notices <-chan string) string {
	t.Helper()
	select {
	case n := <-notices:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no notice")
		return ""
	}
}

// eventually polls cond (bounded) until it holds.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	t.Fatalf("not a counter or gauge")
	return 0
}

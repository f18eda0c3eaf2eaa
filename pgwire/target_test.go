package pgwire

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestTargets routes sessions by startup database to two targets with
// their own providers, and a third whose server is down.
func TestTargets(t *testing.T) {
	c := needPG(t)
	provA, provB, provDown := newTestProvider(c), newTestProvider(c), newTestProvider(c)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close() // nothing listens there now
	var mu sync.Mutex
	profiles := map[string]string{} // database -> profile seen by the hook factory
	up := Upstream{Host: c.Host, Port: c.Port, SSLMode: "disable"}
	g := startGateway(t, c, func(cfg *Config) {
		cfg.Targets = []Target{
			{Name: "kb", Databases: []string{"vectors"}, Upstream: up, Provider: provA},
			{Name: "ops", Databases: []string{"postgres"}, Upstream: up, Provider: provB},
			{Name: "down", Databases: []string{"staging"}, Upstream: Upstream{Host: "127.0.0.1", Port: deadPort, SSLMode: "disable", ConnectTimeout: time.Second}, Provider: provDown},
		}
		cfg.Hooks = func(ctx context.Context, s Session) (Hooks, error) {
			mu.Lock()
			profiles[s.Info().Database] = s.Info().Profile
			mu.Unlock()
			return &testHooks{s: s}, nil
		}
	})
	kb := g.connect(t, "alice", "")
	var db string
	if err := kb.QueryRow(tctx(t), "SELECT current_database()").Scan(&db); err != nil || db != "vectors" {
		t.Fatalf("kb session on %q: %v", db, err)
	}
	opsConn := connectDSN(t, strings.Replace(g.dsn("bob", "good-bob", ""), "dbname=vectors", "dbname=postgres", 1))
	if err := opsConn.QueryRow(tctx(t), "SELECT current_database()").Scan(&db); err != nil || db != "postgres" {
		t.Fatalf("ops session on %q: %v", db, err)
	}
	if provA.minted.Load() != 1 || provB.minted.Load() != 1 {
		t.Fatalf("each profile mints with its own provider: kb %d, ops %d", provA.minted.Load(), provB.minted.Load())
	}
	mu.Lock()
	if profiles["vectors"] != "kb" || profiles["postgres"] != "ops" {
		t.Fatalf("SessionInfo.Profile: %v", profiles)
	}
	mu.Unlock()
	if v := value(t, g.srv.m.sessions.WithLabelValues("kb")); v != 1 {
		t.Fatalf("pgwarden_sessions{profile=kb} = %v", v)
	}

	// A profile whose server is down fails its own sessions (08001), and
	// only those.
	pe := pgErr(t, connectErr(t, strings.Replace(g.dsn("carol", "good-carol", ""), "dbname=vectors", "dbname=staging", 1)))
	if pe.Code != "08001" || !strings.HasPrefix(pe.Message, "pgwarden: ") {
		t.Fatalf("down profile: %s %s", pe.Code, pe.Message)
	}
	eventually(t, 5*time.Second, "down profile's lease revoked", func() bool { return provDown.liveCount() == 0 })
	if err := kb.QueryRow(tctx(t), "SELECT current_database()").Scan(&db); err != nil {
		t.Fatalf("kb session after the other profile failed: %v", err)
	}

	t.Run("unknown database", func(t *testing.T) {
		// Before the token: the same password request as for a served
		// database, so a stranger cannot probe which databases exist.
		_, r := rawStartup(t, g.addr, startupBytes(map[string]string{"user": "mallory", "database": "secret_hr"}))
		m, err := pgproto3.NewFrontend(r, nil).Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.AuthenticationCleartextPassword); !ok {
			t.Fatalf("unknown database answered %T before the token", m)
		}
		pe := pgErr(t, connectErr(t, strings.Replace(g.dsn("mallory", "bogus", ""), "dbname=vectors", "dbname=secret_hr", 1)))
		if pe.Code != "28P01" {
			t.Fatalf("bad token on an unknown database: %s %s", pe.Code, pe.Message)
		}
		pe = pgErr(t, connectErr(t, strings.Replace(g.dsn("mallory", "good-mallory", ""), "dbname=vectors", "dbname=secret_hr", 1)))
		if pe.Code != "28000" || pe.Severity != "FATAL" || !strings.HasPrefix(pe.Message, "pgwarden: ") {
			t.Fatalf("unknown database: %s %s %s", pe.Severity, pe.Code, pe.Message)
		}
		for _, leak := range []string{"vectors", "postgres", "staging", "kb", "ops"} {
			if strings.Contains(pe.Message+pe.Detail+pe.Hint, leak) {
				t.Fatalf("the refusal names %q: %q %q %q", leak, pe.Message, pe.Detail, pe.Hint)
			}
		}
		if n := provA.minted.Load() + provB.minted.Load() + provDown.minted.Load(); n != 3 {
			t.Fatalf("an unknown database minted a credential (%d mints)", n)
		}
	})
}

func TestTargetsRefused(t *testing.T) {
	c := needPG(t)
	p := newTestProvider(c)
	for name, ts := range map[string][]Target{
		"database twice":  {{Name: "a", Databases: []string{"x"}, Provider: p}, {Name: "b", Databases: []string{"y", "x"}, Provider: p}},
		"two catch-alls":  {{Name: "a", Provider: p}, {Name: "b", Provider: p}},
		"no provider":     {{Name: "a", Databases: []string{"x"}}},
		"no name":         {{Databases: []string{"x"}, Provider: p}},
		"name twice":      {{Name: "a", Databases: []string{"x"}, Provider: p}, {Name: "a", Databases: []string{"y"}, Provider: p}},
		"bad sslmode":     {{Name: "a", Provider: p, Upstream: Upstream{SSLMode: "allow"}}},
		"catch-all twice": {{Name: "a", Provider: p}, {Name: "b", Databases: []string{"x"}, Provider: p}, {Name: "c", Provider: p}},
	} {
		if _, err := NewServer(Config{Verifier: fakeVerifier{}, Targets: ts}); err == nil {
			t.Errorf("%s: NewServer accepted it", name)
		}
	}
}

func connectDSN(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect through gateway: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

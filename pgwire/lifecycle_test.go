package pgwire

import (
	"context"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestUpstreamKilled(t *testing.T) {
	needPG(t)
	c := pgtest.StartT(t, pgtest.Options{})
	ctx := tctx(t)
	if err := prepareCluster(ctx, c); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, c, nil)
	conn := g.connect(t, "kim", "")
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// The backend notices the postmaster's death while sleeping and exits.
	go func() { time.Sleep(300 * time.Millisecond); c.Kill() }()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(20)")
	pe := pgErr(t, err)
	if pe.Code != "08006" || pe.Message != "pgwarden: upstream connection lost" {
		t.Fatalf("%s %s", pe.Code, pe.Message)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	stillServes(t, g, "")
	eventually(t, 10*time.Second, "upstream_lost counted", func() bool {
		return value(t, g.srv.m.ended.WithLabelValues(reasonUpstreamLost)) == 1
	})
}

func TestShutdownEndsSessions(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	conn := g.connect(t, "leo", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(tctx(t), "SELECT 1")
	if err == nil {
		t.Fatal("session survived shutdown")
	}
	// The FATAL 57P01 arrived before the close; pgx reports it on the next use.
	if pe := pgErr(t, err); pe.Code != "57P01" || pe.Message != "pgwarden: gateway shutting down" {
		t.Fatalf("want 57P01, got %v", err)
	}
	if g.prov.liveCount() != 0 {
		t.Fatalf("%d leases not revoked after Shutdown", g.prov.liveCount())
	}
}

func TestCredentialExpiry(t *testing.T) {
	c := needPG(t)
	prov := newTestProvider(c)
	prov.ttl = 1500 * time.Millisecond
	prov.renewable = false
	g := startGateway(t, c, func(cfg *Config) { cfg.Targets[0].Provider = prov })
	conn := g.connect(t, "mallory", "")
	start := time.Now()
	_, err := conn.Exec(tctx(t), "SELECT pg_sleep(10)")
	pe := pgErr(t, err)
	if pe.Code != "57P01" || pe.Message != "pgwarden: session credential expired; reconnect for a new one" {
		t.Fatalf("%s %s", pe.Code, pe.Message)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("expired session ended after %v", el)
	}
	eventually(t, 5*time.Second, "lease revoked", func() bool { return prov.liveCount() == 0 })
}

func TestCredentialRenewed(t *testing.T) {
	c := needPG(t)
	prov := newTestProvider(c)
	prov.ttl = 1200 * time.Millisecond
	g := startGateway(t, c, func(cfg *Config) { cfg.Targets[0].Provider = prov })
	conn := g.connect(t, "nina", "")
	if _, err := conn.Exec(tctx(t), "SELECT pg_sleep(2.5)"); err != nil {
		t.Fatalf("renewable session ended: %v", err)
	}
	if prov.renewed.Load() < 2 {
		t.Fatalf("renewed %d times", prov.renewed.Load())
	}
}

func TestUpstreamFatalPassedThrough(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	ctx := tctx(t)
	conn := g.connect(t, "oscar", "")
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := pgxQueryRowSuper(ctx, c, "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1", user).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate: %v %v", err, ok)
	}
	_, err := conn.Exec(ctx, "SELECT 1")
	// PostgreSQL's own FATAL reaches the client; no second 08006 is invented.
	if pe := pgErr(t, err); pe.Code != "57P01" || pe.Message == "pgwarden: upstream connection lost" {
		t.Fatalf("%s %s", pe.Code, pe.Message)
	}
	eventually(t, 5*time.Second, "lease revoked", func() bool { return g.prov.liveCount() == 0 })
}

func TestClientVanishesMidMessage(t *testing.T) {
	c := needPG(t)
	for _, hooked := range []bool{false, true} {
		g := startGateway(t, c, func(cfg *Config) {
			if hooked {
				cfg.Hooks = func(ctx context.Context, s Session) (Hooks, error) { return &testHooks{s: s, wantClient: "Q"}, nil }
			}
		})
		conn := g.connect(t, "peggy", "")
		// A Query header claiming 100 bytes, then 10 bytes, then gone.
		raw := conn.PgConn().Conn()
		if _, err := raw.Write(append([]byte{'Q', 0, 0, 0, 104}, "SELECT 1; "...)); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		eventually(t, 5*time.Second, "lease revoked", func() bool { return g.prov.liveCount() == 0 })
		eventually(t, 5*time.Second, "session ended", func() bool { return g.srv.ActiveSessions() == 0 })
		stillServes(t, g, "")
	}
}

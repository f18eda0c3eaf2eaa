package pgwire

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Startup parameters never meet the statement policy: a client starting
// with standard_conforming_strings=off would make the server lex SQL
// differently from the gateway's parser. Refused (FATAL 42501) before a
// credential is minted, whatever Config.StartupParam says.
func TestStartupParamRefusals(t *testing.T) {
	c := needPG(t)
	for _, withHook := range []bool{false, true} {
		g := startGateway(t, c, func(cfg *Config) {
			if withHook {
				cfg.StartupParam = func(name, value string) (string, bool) {
					if strings.HasPrefix(strings.ToLower(name), "log_") {
						return "not an ordinary setting", false
					}
					return "", true
				}
			}
		})
		refused := []string{"standard_conforming_strings=off", "standard_conforming_strings=0", "standard_conforming_strings=false"}
		if withHook {
			refused = append(refused, "log_statement=none")
		}
		for _, extra := range refused {
			err := connectErr(t, g.dsn("alice", "good-alice", extra))
			if err == nil {
				t.Fatalf("hook=%v %s: connected", withHook, extra)
			}
			pe := pgErr(t, err)
			if pe.Code != "42501" || pe.Severity != "FATAL" || !strings.HasPrefix(pe.Message, "pgwarden: ") {
				t.Fatalf("hook=%v %s: got %s %s %q", withHook, extra, pe.Severity, pe.Code, pe.Message)
			}
			name, _, _ := strings.Cut(extra, "=")
			if !strings.Contains(pe.Message, name) {
				t.Fatalf("message %q does not name %s", pe.Message, name)
			}
		}
		if n := g.prov.minted.Load(); n != 0 {
			t.Fatalf("hook=%v: %d credentials minted for refused connections", withHook, n)
		}
		// What drivers send keeps working, and so does an explicit on.
		conn := g.connect(t, "alice", "standard_conforming_strings=on application_name=app client_encoding=UTF8 "+
			"DateStyle='ISO, MDY' TimeZone=UTC extra_float_digits=3 search_path=public IntervalStyle=postgres")
		var scs string
		if err := conn.QueryRow(tctx(t), "SHOW standard_conforming_strings").Scan(&scs); err != nil || scs != "on" {
			t.Fatalf("hook=%v: standard_conforming_strings %q %v", withHook, scs, err)
		}
		conn.Close(context.Background())
	}
}

// A role or database default (ALTER DATABASE ... SET) shows only in the
// server's ParameterStatus at connect: the gateway refuses such a session
// (FATAL 42501) and revokes its credential.
func TestUpstreamStartsWithoutStandardConformingStrings(t *testing.T) {
	c := needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateDB(ctx, "scs_off"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "postgres", "ALTER DATABASE scs_off SET standard_conforming_strings = off"); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, c, nil)
	dsn := strings.Replace(g.dsn("alice", "good-alice", ""), "dbname=vectors", "dbname=scs_off", 1)
	err := connectErr(t, dsn)
	if err == nil {
		t.Fatal("connected to a database whose default turns standard_conforming_strings off")
	}
	pe := pgErr(t, err)
	if pe.Code != "42501" || pe.Severity != "FATAL" || !strings.HasPrefix(pe.Message, "pgwarden: ") || !strings.Contains(pe.Message, "standard_conforming_strings") {
		t.Fatalf("got %s %s %q", pe.Severity, pe.Code, pe.Message)
	}
	eventually(t, 5*time.Second, "credential revoked", func() bool { return g.prov.revoked.Load() == g.prov.minted.Load() })
	stillServes(t, g, "")
}

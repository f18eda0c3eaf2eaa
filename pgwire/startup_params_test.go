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
		refused := []string{"standard_conforming_strings=off", "standard_conforming_strings=0", "standard_conforming_strings=false",
			// pg_query cannot lex these client encodings (internal/parsesafe)
			"client_encoding=SJIS", "client_encoding=Shift_JIS", "client_encoding=BIG5", "client_encoding=WIN936",
			"client_encoding=UHC", "client_encoding=GB18030", "client_encoding=JOHAB", "client_encoding=nonsense"}
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
		// What drivers send keeps working, and so does an explicit on, and
		// so do the client encodings whose bytes below 0x80 are ASCII.
		for _, enc := range []string{"LATIN1", "WIN1252", "EUC_JP", "unicode"} {
			conn := g.connect(t, "alice", "client_encoding="+enc)
			conn.Close(context.Background())
		}
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

// The same for client_encoding: a database default of SJIS (pg_query
// cannot lex it, internal/parsesafe) shows only in the server's
// ParameterStatus at connect, for a client that sends no client_encoding.
func TestUpstreamStartsWithUnsafeClientEncoding(t *testing.T) {
	c := needPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CreateDB(ctx, "enc_sjis"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "postgres", "ALTER DATABASE enc_sjis SET client_encoding = 'SJIS'"); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, c, nil)
	dsn := strings.Replace(g.dsn("alice", "good-alice", ""), "dbname=vectors", "dbname=enc_sjis", 1)
	err := connectErr(t, dsn)
	if err == nil {
		t.Fatal("connected to a database whose default client_encoding is SJIS")
	}
	pe := pgErr(t, err)
	if pe.Code != "42501" || pe.Severity != "FATAL" || !strings.HasPrefix(pe.Message, "pgwarden: ") || !strings.Contains(pe.Message, "client_encoding") {
		t.Fatalf("got %s %s %q", pe.Severity, pe.Code, pe.Message)
	}
	eventually(t, 5*time.Second, "credential revoked", func() bool { return g.prov.revoked.Load() == g.prov.minted.Load() })
	// A client that asks for UTF8 itself overrides the default: allowed.
	conn := g.connect(t, "alice", "dbname=enc_sjis client_encoding=UTF8")
	conn.Close(context.Background())
	stillServes(t, g, "")
}

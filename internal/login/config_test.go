package login_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/login"
)

func TestParseClientConfig(t *testing.T) {
	c, err := login.ParseClientConfig([]byte("issuer: https://idp.example/\nclient_id: cli\nscopes: [openid]\ngateway:\n  host: gw\n  port: 6432\n  dbname: vectors\n  user: a@b\n"))
	if err != nil || c.Issuer != "https://idp.example/" || c.ClientID != "cli" || !slices.Equal(c.Scopes, []string{"openid"}) || c.Gateway.Port != 6432 || c.Gateway.User != "a@b" {
		t.Fatalf("%+v %v", c, err)
	}
	if c, err := login.ParseClientConfig(nil); err != nil || c.Issuer != "" {
		t.Fatalf("empty: %+v %v", c, err)
	}
	for _, bad := range []string{"isuer: x", "issuer: ftp://x", "gateway:\n  port: 70000", "gateway:\n  sslmode: prefer", "client_id: \"a\\nb\""} {
		if _, err := login.ParseClientConfig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPsqlEnv(t *testing.T) {
	c := &login.ClientConfig{Gateway: login.Gateway{Host: "gw.example:7000", DBName: "vectors"}}
	tok := "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFAZXhhbXBsZS5jb20ifQ.x" // {"email":"a@example.com"}
	env := login.PsqlEnv([]string{"PATH=/bin", "PGPASSWORD=old", "PGDATABASE=mine"}, c, tok)
	want := []string{"PATH=/bin", "PGDATABASE=mine", "PGHOST=gw.example", "PGPORT=7000", "PGUSER=a@example.com", "PGSSLMODE=require", "PGPASSWORD=" + tok}
	if !slices.Equal(env, want) {
		t.Fatalf("env\n got %q\nwant %q", env, want)
	}
	env = login.PsqlEnv([]string{"PGSSLMODE=verify-full", "PGUSER=me"}, &login.ClientConfig{Gateway: login.Gateway{User: "cfg"}}, "opaque")
	if strings.Join(env, " ") != "PGSSLMODE=verify-full PGUSER=me PGPASSWORD=opaque" {
		t.Fatalf("user settings not kept: %q", env)
	}
}

func FuzzParseClientConfig(f *testing.F) {
	f.Add([]byte("issuer: https://idp/\ngateway:\n  port: 5\n"))
	f.Add([]byte("scopes: [a, b]\n"))
	f.Add([]byte("gateway: [1]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := login.ParseClientConfig(b)
		if err != nil {
			return
		}
		if c.Gateway.Port < 0 || c.Gateway.Port > 65535 {
			t.Fatalf("port %d accepted", c.Gateway.Port)
		}
		switch c.Gateway.SSLMode {
		case "", "require", "verify-ca", "verify-full":
		default:
			t.Fatalf("sslmode %q accepted", c.Gateway.SSLMode)
		}
	})
}

func FuzzDecodeCache(f *testing.F) {
	f.Add([]byte(`{"issuer":"i","client_id":"c","access_token":"a","expiry":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"refresh_token":"r"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := login.DecodeCache(b)
		if err != nil {
			if tok != nil {
				t.Fatal("token with error")
			}
			if strings.Contains(err.Error(), string(b)) && len(b) > 8 {
				t.Fatalf("error echoes the file: %v", err)
			}
			return
		}
		if tok.AccessToken == "" && tok.RefreshToken == "" {
			t.Fatal("empty token accepted")
		}
	})
}

func FuzzUserFromToken(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFAZXhhbXBsZS5jb20ifQ.x")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		u := login.UserFromToken(tok)
		if strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("control characters in %q", u)
		}
	})
}

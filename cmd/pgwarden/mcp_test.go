package main

import (
	"strings"
	"testing"
)

// pgwarden mcp refuses to start, with a failing exit status and nothing on
// stdout (the agent's MCP channel), when it lacks a token, a database or a
// usable gateway address.
func TestMCPUsage(t *testing.T) {
	empty := writeConfig(t, "")
	withIssuer := writeConfig(t, "issuer: http://127.0.0.1:1/issuer\n")
	tok := "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIn0."
	for _, tc := range []struct {
		name, token string
		args        []string
		want        string
	}{
		{"no token", "", []string{"mcp", "--config", empty, "--database", "vectors"}, "no token: set PGWARDEN_TOKEN, or run pgwarden login"},
		{"nothing cached", "", []string{"mcp", "--config", withIssuer, "--database", "vectors"}, "no valid token in the login cache: run pgwarden login"},
		{"no database", tok, []string{"mcp", "--config", empty}, "no database: pass --database"},
		{"bad gateway", tok, []string{"mcp", "--config", empty, "--database", "vectors", "--gateway", "nohostport"}, `--gateway "nohostport": want host:port`},
		{"bad port", tok, []string{"mcp", "--config", empty, "--database", "vectors", "--gateway", "h:99999"}, "bad port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PGWARDEN_TOKEN", tc.token)
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			t.Setenv("HOME", t.TempDir())
			code, out, errs := runCLI(tc.args...)
			if code == 0 || out != "" || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want an error with %q", code, out, errs, tc.want)
			}
			if strings.Contains(errs, tok) {
				t.Fatal("the token reached stderr")
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testConfig = `
listen: 127.0.0.1:6432
tls: { self_signed: true }
upstream: { databases: [vectors] }
auth: { oidc: { issuer: https://idp.example.com, audience: pgwarden } }
credentials: { native: { admin_dsn: postgres://pgwarden_admin@127.0.0.1:5432/vectors } }
policy:
  roles:
    analyst: { actions: [search, read], db_role: vector_reader }
    dba: { actions: [all], db_role: vector_admin, unmask: true }
  approval: { approvers: [dba] }
masking:
  rules:
    - { table: public.customers, column: email, method: email }
`

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pgwarden.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPolicyExplain(t *testing.T) {
	cfg := writeConfig(t, testConfig)
	code, out, errs := runCLI("policy", "explain", "--config", cfg, "--groups", "analyst",
		"SELECT upper(email) FROM customers; DELETE FROM documents")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"action:   read", "action:   bulk_delete", "decision: deny", "redact: derived from public.customers.email"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runCLI("policy", "explain", "--config", cfg, "--groups", "dba", "DROP TABLE documents")
	if !strings.Contains(out, "needs approval") || !strings.Contains(out, "unmask") {
		t.Errorf("dba DROP:\n%s", out)
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown key names its path", []string{"serve", "--config", writeConfig(t, testConfig+"\nlimits: { max_conections: 5 }\n")}, 2, "limits.max_conections: unknown key"},
		{"bad value names its path", []string{"serve", "--config", writeConfig(t, strings.Replace(testConfig, "actions: [search, read]", "actions: [search, reed]", 1))}, 2, "policy.roles.analyst.actions[1]"},
		{"missing config file", []string{"serve", "--config", "/nonexistent/pgwarden.yaml"}, 2, "config"},
		{"serve without --config", []string{"serve"}, 2, "--config is required"},
		{"policy explain without --config", []string{"policy", "explain", "SELECT 1"}, 2, "--config is required"},
		{"unknown flag", []string{"version", "--bogus"}, 2, "bogus"},
		{"token without a dev stack", []string{"token", "--user", "a@example.com", "--data", t.TempDir()}, 1, "pgwarden dev"},
		{"version", []string{"version"}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runCLI(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, out, errs)
			}
			if c.msg != "" && !strings.Contains(errs, c.msg) {
				t.Fatalf("stderr %q lacks %q", errs, c.msg)
			}
		})
	}
}

func TestConfigEnvExpansion(t *testing.T) {
	t.Setenv("PGW_TEST_ISSUER", "https://login.example.org")
	t.Setenv("PGW_TEST_DSN", "postgres://admin:p#ss: word@db.internal/vectors")
	// Expansion happens per YAML value, after parsing: a value containing YAML
	// syntax (": ", "#") cannot change the document's structure. Inside a
	// flow mapping ({...}) the reference must be quoted.
	body := strings.Replace(testConfig, "https://idp.example.com", `"${PGW_TEST_ISSUER}"`, 1)
	body = strings.Replace(body, "admin_dsn: postgres://pgwarden_admin@127.0.0.1:5432/vectors", `admin_dsn: "${PGW_TEST_DSN}"`, 1)
	code, _, errs := runCLI("policy", "explain", "--config", writeConfig(t, body), "--groups", "analyst", "SELECT 1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestSessionsSince(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, testConfig+"store: { dir: "+dir+" }\n")
	if code, _, errs := runCLI("sessions", "list", "--config", cfg); code != 1 || !strings.Contains(errs, "no session recordings under "+dir) {
		t.Fatalf("empty store: exit %d, %q", code, errs)
	}
	if err := os.Mkdir(filepath.Join(dir, "sessions"), 0o700); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI("sessions", "list", "--config", cfg, "--since", "1h"); code != 0 {
		t.Fatalf("--since 1h: exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI("sessions", "export", "--config", cfg, "--since", "2026-11-28T00:00:00Z"); code != 0 {
		t.Fatalf("--since RFC 3339: exit %d: %s", code, errs)
	}
	code, _, errs := runCLI("sessions", "list", "--config", cfg, "--since", "last tuesday")
	if code != 2 || !strings.Contains(errs, "since") {
		t.Fatalf("bad --since: exit %d, %q", code, errs)
	}
}

package integration

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/identity/devissuer/devissuertest"
	"github.com/pgwarden/pgwarden/internal/login"
)

// TestLoginDeviceFlowThroughGateway: a person logs in with the device flow
// against the development issuer (zitadel's OpenID Provider), approves in
// "the browser" (the verification page), and the token the CLI received
// connects through pgwarden — with pgx and with the real psql using the
// environment `pgwarden psql` builds.
func TestLoginDeviceFlowThroughGateway(t *testing.T) {
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second})

	w := startGateway(t, func(c *config.Config) { c.Auth.OIDC.Issuer = is.URL() })

	prompt := &devissuertest.Buffer{}
	cl, err := login.New(login.Options{Issuer: is.URL(), CacheDir: t.TempDir(), Prompt: prompt})
	if err != nil {
		t.Fatal(err)
	}
	approved := devissuertest.Approve(prompt, is.URL(), devissuertest.Approval{User: "alice@example.com", Groups: "analyst"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok, err := cl.Token(ctx)
	if err != nil {
		t.Fatalf("device login: %v", err)
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}

	conn := w.connectWith(t, w.connConfig(t, "alice@example.com", tok.AccessToken))
	var n int
	must0(t, conn.QueryRow(ctx, "SELECT count(*) FROM documents").Scan(&n))
	if n == 0 {
		t.Fatal("analyst sees no documents")
	}
	if _, err := conn.Exec(ctx, "DELETE FROM documents"); sqlstate(err) != "42501" {
		t.Fatalf("analyst DELETE: want 42501, got %v", err)
	}

	// The real psql with the environment `pgwarden psql` execs it with.
	psql := needTool(t, "psql", "scripts/setup.sh installs postgresql-client")
	h, p := w.hostPort()
	var gwCfg login.ClientConfig
	gwCfg.Gateway.Host, gwCfg.Gateway.DBName = h, "vectors"
	gwCfg.Gateway.Port = mustAtoi(t, p)
	env := login.PsqlEnv(scrubPGEnv(os.Environ()), &gwCfg, tok.AccessToken)
	cmd := exec.CommandContext(ctx, psql, "-X", "-At", "-c", "SELECT current_setting('is_superuser'), count(*) > 0 FROM documents")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "off|t" {
		t.Fatalf("psql with PsqlEnv: %v: %s", err, out)
	}
}

func scrubPGEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	return out
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("not a port: %q", s)
		}
		n = n*10 + int(r-'0')
	}
	return n
}

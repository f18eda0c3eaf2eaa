package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/identity/devissuer/devissuertest"
)

// loginEnv serves a dev issuer and points the user cache/config dirs at
// temporary ones.
func loginEnv(t *testing.T) *devissuer.Issuer {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "config"))
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second})
	return is
}

func TestLoginPrintIsExactlyTheToken(t *testing.T) {
	is := loginEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout bytes.Buffer
	stderr := &devissuertest.Buffer{}
	approved := devissuertest.Approve(stderr, is.URL(), devissuertest.Approval{User: "carol@example.com", Groups: "analyst"})
	if code := run(ctx, []string{"login", "--print", "--issuer", is.URL()}, &stdout, stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	tok := strings.TrimSuffix(out, "\n")
	if strings.Count(out, "\n") != 1 || strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \t") {
		t.Fatalf("--print output is not exactly one token line: %q", out)
	}
	if strings.Contains(stderr.String(), tok) {
		t.Fatal("token on stderr")
	}
	v, err := identity.NewOIDC(ctx, config.OIDC{Issuer: is.URL(), Audience: "pgwarden", GroupsClaim: "groups"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p, err := v.Verify(ctx, tok, "carol@example.com")
	if err != nil || !slices.Equal(p.Groups, []string{"analyst"}) {
		t.Fatalf("verify: %+v %v", p, err)
	}
	// Second run: the cached token, no prompt.
	stdout.Reset()
	stderr2 := &devissuertest.Buffer{}
	if code := run(ctx, []string{"login", "--print", "--issuer", is.URL()}, &stdout, stderr2); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr2.String())
	}
	if stdout.String() != out || stderr2.String() != "" {
		t.Fatalf("second --print: stdout %q stderr %q", stdout.String(), stderr2.String())
	}
	// The cache file is 0600 in the user cache dir.
	matches, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "pgwarden", "token-*.json"))
	if len(matches) != 1 {
		t.Fatalf("cache files %v", matches)
	}
	if st, _ := os.Stat(matches[0]); st.Mode().Perm() != 0o600 {
		t.Fatalf("cache mode %v", st.Mode().Perm())
	}
}

func TestLoginFromClientConfig(t *testing.T) {
	is := loginEnv(t)
	cfgDir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "pgwarden")
	os.MkdirAll(cfgDir, 0o700)
	os.WriteFile(filepath.Join(cfgDir, "client.yaml"), []byte("issuer: "+is.URL()+"\nclient_id: pgwarden-cli\n"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout bytes.Buffer
	stderr := &devissuertest.Buffer{}
	approved := devissuertest.Approve(stderr, is.URL(), devissuertest.Approval{User: "dave@example.com", Groups: "ingest"})
	if code := run(ctx, []string{"login"}, &stdout, stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	<-approved
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "Logged in as dave@example.com") {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	// A bad client config is a usage error (exit 2) naming the key.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("gateway:\n  sslmode: disable\n"), 0o600)
	stderr = &devissuertest.Buffer{}
	if code := run(ctx, []string{"login", "--config", bad}, &stdout, stderr); code != 2 || !strings.Contains(stderr.String(), "gateway.sslmode") {
		t.Fatalf("bad config: exit %d %s", code, stderr.String())
	}
	// No issuer anywhere: exit 2.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	stderr = &devissuertest.Buffer{}
	if code := run(ctx, []string{"login"}, &stdout, stderr); code != 2 || !strings.Contains(stderr.String(), "no issuer") {
		t.Fatalf("no issuer: exit %d %s", code, stderr.String())
	}
}

func TestPsqlExecsWithTokenAndGateway(t *testing.T) {
	is := loginEnv(t)
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "psql"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	t.Setenv("PATH", bin)
	t.Setenv("PGPORT", "7777") // set by the user: kept
	t.Setenv("PGPASSWORD", "stale")
	cfg := filepath.Join(t.TempDir(), "client.yaml")
	os.WriteFile(cfg, []byte("issuer: "+is.URL()+"\ngateway:\n  host: gw.example\n  port: 6432\n  dbname: vectors\n"), 0o600)
	var gotPath string
	var gotArgv, gotEnv []string
	orig := execPsql
	execPsql = func(p string, argv, env []string) error { gotPath, gotArgv, gotEnv = p, argv, env; return nil }
	t.Cleanup(func() { execPsql = orig })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout bytes.Buffer
	stderr := &devissuertest.Buffer{}
	approved := devissuertest.Approve(stderr, is.URL(), devissuertest.Approval{User: "erin@example.com", Groups: "analyst"})
	if code := run(ctx, []string{"psql", "--config", cfg, "-c", "select 1", "-At"}, &stdout, stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	<-approved
	if gotPath != filepath.Join(bin, "psql") || !slices.Equal(gotArgv, []string{"psql", "-c", "select 1", "-At"}) {
		t.Fatalf("exec %s %q", gotPath, gotArgv)
	}
	env := map[string]string{}
	for _, kv := range gotEnv {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := env[k]; dup {
			t.Fatalf("%s twice in the environment", k)
		}
		env[k] = v
	}
	if env["PGHOST"] != "gw.example" || env["PGPORT"] != "7777" || env["PGDATABASE"] != "vectors" ||
		env["PGUSER"] != "erin@example.com" || env["PGSSLMODE"] != "require" || strings.Count(env["PGPASSWORD"], ".") != 2 {
		t.Fatalf("env %v", env)
	}
}

func TestSplitPsqlArgs(t *testing.T) {
	var f loginFlags
	rest, err := splitPsqlArgs([]string{"--config=a.yaml", "--issuer", "http://x", "--", "--config", "b"}, &f)
	if err != nil || f.config != "a.yaml" || f.issuer != "http://x" || !slices.Equal(rest, []string{"--config", "b"}) {
		t.Fatalf("%v %+v %q", err, f, rest)
	}
	if _, err := splitPsqlArgs([]string{"--issuer"}, &f); err == nil {
		t.Fatal("missing value accepted")
	}
}

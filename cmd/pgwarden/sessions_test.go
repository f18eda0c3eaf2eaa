package main

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions"
)

// `sessions list --profile P` filters (the store and the admin API alike)
// and the table shows each session's profile.
func TestSessionsListProfile(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, testConfig+"store: { dir: "+dir+" }\n")
	rec, err := sessions.Open(config.Default().Recording, config.Store{Dir: dir}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range []sessions.StartInfo{
		{ID: "sesskb", User: "alice", Database: "kb", Profile: "kb"},
		{ID: "sesssup", User: "bob", Database: "support", Profile: "support"},
	} {
		if err := rec.Start(si).End("client_closed"); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(name, out string) {
		t.Helper()
		if !strings.Contains(out, "PROFILE") || !strings.Contains(out, "sesskb") || strings.Contains(out, "sesssup") {
			t.Fatalf("%s: list --profile kb:\n%s", name, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "sesskb") && !strings.Contains(l, " kb ") {
				t.Fatalf("%s: row lacks the profile: %q", name, l)
			}
		}
	}
	code, out, errs := runCLI("sessions", "list", "--config", cfg, "--profile", "kb")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	check("store", out)

	st, err := sessions.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st.APIHandler())
	defer srv.Close()
	code, out, errs = runCLI("sessions", "list", "--admin", srv.URL, "--token", "t", "--profile", "kb")
	if code != 0 {
		t.Fatalf("--admin: exit %d: %s", code, errs)
	}
	check("admin API", out)
}

// `sessions list --actor A` filters (the store and the admin API alike)
// and a delegated session's user shows as "user via actor".
func TestSessionsListActor(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, testConfig+"store: { dir: "+dir+" }\n")
	rec, err := sessions.Open(config.Default().Recording, config.Store{Dir: dir}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range []sessions.StartInfo{
		{ID: "sessagent", User: "alice", Actor: "agent-7", Database: "kb"},
		{ID: "sessplain", User: "alice", Database: "kb"},
	} {
		if err := rec.Start(si).End("client_closed"); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(name, out string) {
		t.Helper()
		if !strings.Contains(out, "sessagent") || strings.Contains(out, "sessplain") || !strings.Contains(out, "alice via agent-7") {
			t.Fatalf("%s: list --actor agent-7:\n%s", name, out)
		}
	}
	code, out, errs := runCLI("sessions", "list", "--config", cfg, "--actor", "agent-7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	check("store", out)

	st, err := sessions.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(st.APIHandler())
	defer srv.Close()
	code, out, errs = runCLI("sessions", "list", "--admin", srv.URL, "--token", "t", "--actor", "agent-7")
	if code != 0 {
		t.Fatalf("--admin: exit %d: %s", code, errs)
	}
	check("admin API", out)
}

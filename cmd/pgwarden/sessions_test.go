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
	listBothWays(t, []sessions.StartInfo{
		{ID: "sesskb", User: "alice", Database: "kb", Profile: "kb"},
		{ID: "sesssup", User: "bob", Database: "support", Profile: "support"},
	}, []string{"--profile", "kb"}, func(name, out string) {
		t.Helper()
		if !strings.Contains(out, "PROFILE") || !strings.Contains(out, "sesskb") || strings.Contains(out, "sesssup") {
			t.Fatalf("%s: list --profile kb:\n%s", name, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "sesskb") && !strings.Contains(l, " kb ") {
				t.Fatalf("%s: row lacks the profile: %q", name, l)
			}
		}
	})
}

// `sessions list --actor A` filters (the store and the admin API alike)
// and a delegated session's user shows as "user via actor".
func TestSessionsListActor(t *testing.T) {
	listBothWays(t, []sessions.StartInfo{
		{ID: "sessagent", User: "alice", Actor: "agent-7", Database: "kb"},
		{ID: "sessplain", User: "alice", Database: "kb"},
	}, []string{"--actor", "agent-7"}, func(name, out string) {
		t.Helper()
		if !strings.Contains(out, "sessagent") || strings.Contains(out, "sessplain") || !strings.Contains(out, "alice via agent-7") {
			t.Fatalf("%s: list --actor agent-7:\n%s", name, out)
		}
	})
}

// listBothWays records each of infos as a whole session in a new store,
// runs `sessions list` with filter on the store (by --config) and then on
// an admin API serving it (by --admin), and hands each output to check
// with the name of the way ("store", "admin API").
func listBothWays(t *testing.T, infos []sessions.StartInfo, filter []string, check func(name, out string)) {
	t.Helper()
	dir := t.TempDir()
	cfg := writeConfig(t, testConfig+"store: { dir: "+dir+" }\n")
	rec, err := sessions.Open(config.Default().Recording, config.Store{Dir: dir}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range infos {
		if err := rec.Start(si).End("client_closed"); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(append([]string{"sessions", "list", "--config", cfg}, filter...)...)
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
	code, out, errs = runCLI(append([]string{"sessions", "list", "--admin", srv.URL, "--token", "t"}, filter...)...)
	if code != 0 {
		t.Fatalf("--admin: exit %d: %s", code, errs)
	}
	check("admin API", out)
}

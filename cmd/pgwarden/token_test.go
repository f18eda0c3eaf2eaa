package main

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/identity/devissuer"
)

// `pgwarden token --actor A --actor-groups G` mints a delegated token: an
// RFC 8693 act claim naming the agent and its groups; without
// --actor-groups the act object has no groups (the session then gets
// none); --actor-groups alone is a usage error.
func TestTokenActor(t *testing.T) {
	data := t.TempDir()
	if _, err := devissuer.Open(data, "http://127.0.0.1:1/dev-issuer"); err != nil {
		t.Fatal(err)
	}
	claims := func(tok string) map[string]any {
		t.Helper()
		parts := strings.Split(strings.TrimSpace(tok), ".")
		if len(parts) != 3 {
			t.Fatalf("not a JWS: %q", tok)
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	code, tok, errs := runCLI("token", "--data", data, "--user", "alice@example.com", "--groups", "analyst,ingest", "--actor", "agent-7", "--actor-groups", "analyst")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if c := claims(tok); c["email"] != "alice@example.com" || !reflect.DeepEqual(c["act"], map[string]any{"sub": "agent-7", "groups": []any{"analyst"}}) {
		t.Fatalf("claims %v", c)
	}
	code, tok, errs = runCLI("token", "--data", data, "--user", "alice@example.com", "--actor", "agent-7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if c := claims(tok); !reflect.DeepEqual(c["act"], map[string]any{"sub": "agent-7"}) {
		t.Fatalf("act without --actor-groups: %v", c["act"])
	}
	code, tok, _ = runCLI("token", "--data", data, "--user", "alice@example.com")
	if _, ok := claims(tok)["act"]; code != 0 || ok {
		t.Fatalf("a token without --actor has act (exit %d)", code)
	}
	if code, _, errs := runCLI("token", "--data", data, "--user", "alice@example.com", "--actor-groups", "analyst"); code != 2 || !strings.Contains(errs, "--actor") {
		t.Fatalf("--actor-groups without --actor: exit %d: %s", code, errs)
	}
}

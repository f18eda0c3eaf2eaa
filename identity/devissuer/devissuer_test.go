package devissuer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/identity/devissuer/devissuertest"
)

func verifier(t *testing.T, issuer string) *identity.OIDC {
	t.Helper()
	v, err := identity.NewOIDC(context.Background(), config.OIDC{
		Issuer: issuer, Audience: "pgwarden", UsernameClaim: "email", GroupsClaim: "groups", ClockSkew: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// TestDiscoveryAndJWKSFlow is the real OIDC flow: discovery over HTTP,
// JWKS over HTTP, a token minted by the dev issuer verified by NewOIDC.
func TestDiscoveryAndJWKSFlow(t *testing.T) {
	is, srv := devissuertest.Serve(t, t.TempDir())
	if is.URL() != srv.URL+"/dev-issuer" {
		t.Fatalf("URL() = %q", is.URL())
	}
	v := verifier(t, is.URL())
	if err := v.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	tok, err := is.Mint("alice@example.com", []string{"analyst", "dba"}, time.Hour, "pgwarden")
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), tok, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "alice@example.com" || p.Subject != "alice@example.com" || !reflect.DeepEqual(p.Groups, []string{"analyst", "dba"}) || p.Issuer != is.URL() {
		t.Fatalf("principal %+v", p)
	}
	if d := time.Until(p.Expiry); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Fatalf("expiry in %s, want ~1h", d)
	}
	// Wrong audience is refused even though the signature is good.
	tok2, _ := is.Mint("alice@example.com", nil, time.Hour, "other")
	_, err = v.Verify(context.Background(), tok2, "alice@example.com")
	if r, ok := identity.AsRefusal(err); !ok || r.Reason != identity.ReasonAudience {
		t.Fatalf("other audience: %v", err)
	}
}

func TestHandlerRoutes(t *testing.T) {
	is, srv := devissuertest.Serve(t, t.TempDir())
	get := func(path string) (*http.Response, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	resp, disc := get("/dev-issuer/.well-known/openid-configuration")
	if resp.StatusCode != 200 || disc["issuer"] != is.URL() || disc["jwks_uri"] != is.URL()+"/keys" {
		t.Fatalf("discovery %d %v", resp.StatusCode, disc)
	}
	resp, jwks := get("/dev-issuer/keys")
	keys, _ := jwks["keys"].([]any)
	if resp.StatusCode != 200 || len(keys) != 1 {
		t.Fatalf("jwks %d %v", resp.StatusCode, jwks)
	}
	k := keys[0].(map[string]any)
	if k["kid"] != is.KeyID() || k["alg"] != "ES256" || k["d"] != nil {
		t.Fatalf("jwk %v (must be public only, with kid %q)", k, is.KeyID())
	}
	if resp, _ := get("/dev-issuer/other"); resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
	r, _ := http.Post(srv.URL+"/dev-issuer/keys", "text/plain", strings.NewReader("x"))
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	r.Body.Close()
}

func TestKeyPersistsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	is1, srv1 := devissuertest.Serve(t, dir)
	tok, err := is1.Mint("bob@example.com", []string{"ingest"}, time.Hour, "pgwarden")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "issuer", "signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	srv1.Close()
	// A restart (new process, same data dir, new port) reuses the key.
	mux := http.NewServeMux()
	srv2 := httptest.NewServer(mux)
	defer srv2.Close()
	is2, err := devissuer.Open(dir, srv2.URL+"/dev-issuer/")
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev-issuer/", is2.Handler())
	if is2.KeyID() != is1.KeyID() {
		t.Fatalf("kid changed across restarts: %s -> %s", is1.KeyID(), is2.KeyID())
	}
	if is2.URL() != srv2.URL+"/dev-issuer" {
		t.Fatalf("trailing slash kept: %q", is2.URL())
	}
	// The old token names the old issuer URL: refused by the new one (iss),
	// but its signature is good: rewrite nothing, just check that a fresh
	// token from OpenExisting verifies against the restarted server.
	tk, err := devissuer.OpenExisting(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tk.URL() != is2.URL() || tk.KeyID() != is1.KeyID() {
		t.Fatalf("OpenExisting: url %q kid %q", tk.URL(), tk.KeyID())
	}
	tok2, err := tk.Mint("bob@example.com", []string{"ingest"}, time.Minute, "pgwarden")
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(t, is2.URL())
	if _, err := v.Verify(context.Background(), tok2, "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tok, "bob@example.com")
	if r, ok := identity.AsRefusal(err); !ok || r.Reason != identity.ReasonIssuer {
		t.Fatalf("token for the old URL: %v", err)
	}
}

func TestOpenExistingRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	_, err := devissuer.OpenExisting(dir)
	if err == nil || !strings.Contains(err.Error(), "pgwarden dev") {
		t.Fatalf("OpenExisting on an empty dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "issuer", "signing-key.pem")); !os.IsNotExist(err) {
		t.Fatal("OpenExisting created a key")
	}
}

func TestRefusesLooseKeyPermissions(t *testing.T) {
	dir := t.TempDir()
	if _, err := devissuer.Open(dir, "http://127.0.0.1:1/dev-issuer"); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "issuer", "signing-key.pem"), 0o644)
	if _, err := devissuer.OpenExisting(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loose key accepted: %v", err)
	}
}

func TestMintAndOpenValidation(t *testing.T) {
	is, err := devissuer.Open(t.TempDir(), "http://127.0.0.1:1/dev-issuer")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, aud string
		ttl       time.Duration
	}{
		{"", "pgwarden", time.Hour},
		{"a\nb", "pgwarden", time.Hour},
		{"a@x", "", time.Hour},
		{"a@x", "pgwarden", 0},
		{"a@x", "pgwarden", 25 * time.Hour},
	} {
		if _, err := is.Mint(tc.user, nil, tc.ttl, tc.aud); err == nil {
			t.Errorf("Mint(%q, ttl %s, aud %q) succeeded", tc.user, tc.ttl, tc.aud)
		}
	}
	for _, u := range []string{"", "ftp://x/y", "/relative", "http://h/x?q=1"} {
		if _, err := devissuer.Open(t.TempDir(), u); err == nil {
			t.Errorf("Open with issuer %q succeeded", u)
		}
	}
}

// MintDelegated's act claim goes through the real discovery + JWKS path
// into a delegated principal: the actor recorded, the groups those both
// hold, none when the actor is given no groups.
func TestMintDelegated(t *testing.T) {
	is, _ := devissuertest.Serve(t, t.TempDir())
	v := verifier(t, is.URL())
	for _, c := range []struct {
		act  *devissuer.Actor
		want []string
	}{
		{&devissuer.Actor{Sub: "agent-7", Groups: []string{"analyst", "other"}}, []string{"analyst"}},
		{&devissuer.Actor{Sub: "agent-7"}, nil},
		{&devissuer.Actor{Sub: "agent-7", Groups: []string{}}, nil},
	} {
		tok, err := is.MintDelegated("alice@example.com", []string{"analyst", "ingest"}, c.act, time.Hour, "pgwarden")
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(context.Background(), tok, "alice@example.com")
		if err != nil || p.User != "alice@example.com" || p.Actor != "agent-7" || !reflect.DeepEqual(p.Groups, c.want) {
			t.Fatalf("actor %+v: principal %+v %v, want groups %v", c.act, p, err, c.want)
		}
	}
	for _, sub := range []string{"", "a\nb"} {
		if _, err := is.MintDelegated("alice@example.com", nil, &devissuer.Actor{Sub: sub}, time.Hour, "pgwarden"); err == nil {
			t.Fatalf("minted a token for actor %q", sub)
		}
	}
}

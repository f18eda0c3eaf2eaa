package login_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/identity/devissuer/devissuertest"
	"github.com/pgwarden/pgwarden/internal/login"
)

func verifier(t *testing.T, issuer string) *identity.OIDC {
	v, err := identity.NewOIDC(context.Background(), config.OIDC{Issuer: issuer, Audience: "pgwarden", UsernameClaim: "email", GroupsClaim: "groups", ClockSkew: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestLoginDeviceFlowTokenVerifies(t *testing.T) {
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second})
	prompt := &devissuertest.Buffer{}
	cacheDir := filepath.Join(t.TempDir(), "cache", "pgwarden")
	c, err := login.New(login.Options{Issuer: is.URL(), CacheDir: cacheDir, Prompt: prompt})
	if err != nil {
		t.Fatal(err)
	}
	approved := devissuertest.Approve(prompt, is.URL(), devissuertest.Approval{User: "alice@example.com", Groups: "analyst, ingest", Action: "approve", Code: devissuertest.CompleteURI})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := c.Login(ctx)
	if err != nil {
		t.Fatalf("login: %v (prompt %q)", err, prompt.String())
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatalf("token lacks access or refresh token: %+v", tok.Expiry)
	}
	if d := time.Until(tok.Expiry); d < 55*time.Minute || d > 61*time.Minute {
		t.Fatalf("expiry in %s, want ~1h", d)
	}
	if strings.Contains(prompt.String(), tok.AccessToken) {
		t.Fatal("the prompt shows the token")
	}
	// The device-flow token verifies exactly like a `pgwarden token` one.
	p, err := verifier(t, is.URL()).Verify(ctx, tok.AccessToken, "alice@example.com")
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if p.User != "alice@example.com" || p.Subject != "alice@example.com" || !reflect.DeepEqual(p.Groups, []string{"analyst", "ingest"}) || p.Issuer != is.URL() {
		t.Fatalf("principal %+v", p)
	}
	if got := login.UserFromToken(tok.AccessToken); got != "alice@example.com" {
		t.Fatalf("UserFromToken = %q", got)
	}
	// Cache: 0600 file in a 0700 directory, and the cached token is used.
	st, err := os.Stat(c.CachePath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("cache mode %v", st.Mode().Perm())
	}
	if dst, _ := os.Stat(cacheDir); dst.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode %v", dst.Mode().Perm())
	}
	if !strings.HasPrefix(filepath.Base(c.CachePath()), "token-") {
		t.Fatalf("cache path %s", c.CachePath())
	}
	again, err := c.Token(ctx) // no prompt: valid cached token
	if err != nil || again.AccessToken != tok.AccessToken {
		t.Fatalf("cached token not reused: %v", err)
	}
}

func TestLoginRefreshAfterExpiry(t *testing.T) {
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second, AccessTTL: 31 * time.Second})
	prompt := &devissuertest.Buffer{}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := login.New(login.Options{Issuer: is.URL(), CacheDir: t.TempDir(), Prompt: prompt, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	approved := devissuertest.Approve(prompt, is.URL(), devissuertest.Approval{User: "bob@example.com", Groups: "ingest", Action: "approve", Code: devissuertest.CompleteURI})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-approved
	promptLen := len(prompt.String())
	// Still valid now; expired (within the refresh margin) a little later.
	mu.Lock()
	now = now.Add(5 * time.Second)
	mu.Unlock()
	second, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.AccessToken == first.AccessToken || second.RefreshToken == first.RefreshToken {
		t.Fatal("expired token was not refreshed (or the refresh token not rotated)")
	}
	if len(prompt.String()) != promptLen {
		t.Fatalf("refresh prompted: %q", prompt.String()[promptLen:])
	}
	cached, err := c.Cached()
	if err != nil || cached.AccessToken != second.AccessToken {
		t.Fatalf("refreshed token not cached: %v", err)
	}
	p, err := verifier(t, is.URL()).Verify(ctx, second.AccessToken, "bob@example.com")
	if err != nil || !reflect.DeepEqual(p.Groups, []string{"ingest"}) {
		t.Fatalf("refreshed token: %+v %v", p, err)
	}
	// The old refresh token was rotated away: using it fails.
	if _, err := c.Refresh(ctx, first); err == nil || strings.Contains(err.Error(), first.RefreshToken) {
		t.Fatalf("reused refresh token: %v", err)
	}
}

func TestSilentNeverPrompts(t *testing.T) {
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second})
	prompt := &devissuertest.Buffer{}
	c, err := login.New(login.Options{Issuer: is.URL(), CacheDir: t.TempDir(), Prompt: prompt})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Silent(context.Background()); !errors.Is(err, login.ErrNoLogin) || prompt.String() != "" {
		t.Fatalf("Silent without a cache: %v, prompt %q", err, prompt.String())
	}
}

func TestLoginDenied(t *testing.T) {
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second})
	prompt := &devissuertest.Buffer{}
	c, _ := login.New(login.Options{Issuer: is.URL(), CacheDir: t.TempDir(), Prompt: prompt})
	denied := devissuertest.Approve(prompt, is.URL(), devissuertest.Approval{User: "", Groups: "", Action: "deny", Code: devissuertest.CompleteURI})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.Login(ctx)
	if err == nil || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("denied login: %v", err)
	}
	if e := <-denied; e != nil {
		t.Fatal(e)
	}
	if _, err := os.Stat(c.CachePath()); !os.IsNotExist(err) {
		t.Fatalf("a denied login left a cache file: %v", err)
	}
}

func TestCacheReadableByOthersIgnored(t *testing.T) {
	dir := t.TempDir()
	c, _ := login.New(login.Options{Issuer: "http://127.0.0.1:1/x", CacheDir: dir})
	body := `{"issuer":"http://127.0.0.1:1/x","client_id":"pgwarden-cli","access_token":"a.b.c","expiry":"2999-01-01T00:00:00Z"}`
	if err := os.WriteFile(c.CachePath(), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cached(); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("0644 cache used: %v", err)
	}
	os.Chmod(c.CachePath(), 0o600)
	tok, err := c.Cached()
	if err != nil || !c.Valid(tok) {
		t.Fatalf("0600 cache: %v", err)
	}
	// Another issuer's cache file name differs; a mismatched file is refused.
	other, _ := login.New(login.Options{Issuer: "http://127.0.0.1:1/y", CacheDir: dir})
	if other.CachePath() == c.CachePath() {
		t.Fatal("same cache file for two issuers")
	}
	os.WriteFile(other.CachePath(), []byte(body), 0o600)
	if _, err := other.Cached(); err == nil {
		t.Fatal("cache of another issuer used")
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"issuer":"https://evil.example","token_endpoint":"https://evil.example/t","device_authorization_endpoint":"https://evil.example/d"}`))
	}))
	defer srv.Close()
	c, _ := login.New(login.Options{Issuer: srv.URL, CacheDir: t.TempDir()})
	if _, err := c.Login(context.Background()); err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Fatalf("mismatched discovery accepted: %v", err)
	}
}

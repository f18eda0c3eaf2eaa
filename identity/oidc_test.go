package identity_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func oidcCfg(issuer string) config.OIDC {
	return config.OIDC{Issuer: issuer, Audience: "pgwarden", UsernameClaim: "email", GroupsClaim: "groups", ClockSkew: 30 * time.Second}
}

func newVerifier(t testing.TB, cfg config.OIDC, opts ...identity.Option) *identity.OIDC {
	t.Helper()
	opts = append([]identity.Option{
		identity.WithNow(func() time.Time { return t0 }),
		identity.WithJWKSRefetchInterval(0),
		identity.WithDiscoveryRetry(time.Millisecond, time.Millisecond),
	}, opts...)
	v, err := identity.NewOIDC(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func wantReason(t *testing.T, err error, want identity.Reason) {
	t.Helper()
	r, ok := identity.AsRefusal(err)
	if !ok {
		t.Fatalf("err = %v, want a RefusalError(%s)", err, want)
	}
	if r.Reason != want {
		t.Fatalf("reason = %s (%v), want %s", r.Reason, r, want)
	}
}

func TestVerifyValidTokens(t *testing.T) {
	ec, rs, ed := newECKey(t, "ec1"), newRSAKey(t, "rs1"), newEdKey(t, "ed1")
	iss := newTestIssuer(t, false, ec, rs, ed)
	v := newVerifier(t, oidcCfg(iss.URL()))
	for _, k := range []testKey{ec, rs, ed} {
		t.Run(string(k.alg), func(t *testing.T) {
			tok := k.sign(t, iss.claims(t0, "alice@example.com", "analyst", "dba"))
			p, err := v.Verify(context.Background(), tok, "alice@example.com")
			if err != nil {
				t.Fatal(err)
			}
			want := identity.Principal{User: "alice@example.com", Subject: "sub-alice@example.com", Groups: []string{"analyst", "dba"}, Expiry: t0.Add(time.Hour), Issuer: iss.URL()}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("principal = %+v, want %+v", p, want)
			}
			// user "" skips the user check (admin API bearer tokens).
			if _, err := v.Verify(context.Background(), tok, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := v.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	good := newECKey(t, "good")
	other := newECKey(t, "good") // same kid, different key
	stranger := newECKey(t, "stranger")
	iss := newTestIssuer(t, false, good)
	v := newVerifier(t, oidcCfg(iss.URL()))
	user := "alice@example.com"
	base := func() map[string]any { return iss.claims(t0, user, "analyst") }
	with := func(mut func(map[string]any)) map[string]any { c := base(); mut(c); return c }
	valid := good.sign(t, base())

	hsHeader := map[string]any{"alg": "HS256", "kid": "good", "typ": "JWT"}
	hsTok := unsigned(hsHeader, base(), "")
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(hsTok[:len(hsTok)-1]))
	hsTok += base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	cases := []struct {
		name  string
		token string
		user  string
		want  identity.Reason
	}{
		{"empty", "", user, identity.ReasonMissing},
		{"blank", "   ", user, identity.ReasonMissing},
		{"garbage", "not-a-token", user, identity.ReasonMalformed},
		{"four parts", valid + ".x", user, identity.ReasonMalformed},
		{"json serialization", `{"payload":"e30","signatures":[]}`, user, identity.ReasonMalformed},
		{"bad base64", "!!!.@@@.###", user, identity.ReasonMalformed},
		{"oversized", strings.Repeat("a", identity.MaxTokenBytes) + ".b.c", user, identity.ReasonMalformed},
		{"expired", good.sign(t, with(func(c map[string]any) { c["exp"] = t0.Add(-31 * time.Second).Unix() })), user, identity.ReasonExpired},
		{"nbf beyond skew", good.sign(t, with(func(c map[string]any) { c["nbf"] = t0.Add(31 * time.Second).Unix() })), user, identity.ReasonNotYetValid},
		{"iat beyond skew", good.sign(t, with(func(c map[string]any) { c["iat"] = t0.Add(time.Hour).Unix() })), user, identity.ReasonNotYetValid},
		{"no exp", good.sign(t, with(func(c map[string]any) { delete(c, "exp") })), user, identity.ReasonClaims},
		{"exp not a number", good.sign(t, with(func(c map[string]any) { c["exp"] = "tomorrow" })), user, identity.ReasonClaims},
		{"wrong issuer", good.sign(t, with(func(c map[string]any) { c["iss"] = "https://evil.example.com" })), user, identity.ReasonIssuer},
		{"no issuer", good.sign(t, with(func(c map[string]any) { delete(c, "iss") })), user, identity.ReasonIssuer},
		{"wrong audience", good.sign(t, with(func(c map[string]any) { c["aud"] = "someone-else" })), user, identity.ReasonAudience},
		{"audience list without us", good.sign(t, with(func(c map[string]any) { c["aud"] = []string{"a", "b"} })), user, identity.ReasonAudience},
		{"no audience", good.sign(t, with(func(c map[string]any) { delete(c, "aud") })), user, identity.ReasonAudience},
		{"unknown kid", stranger.sign(t, base()), user, identity.ReasonSignature},
		{"same kid other key", other.sign(t, base()), user, identity.ReasonSignature},
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "JWT"}, base(), ""), user, identity.ReasonSignature},
		{"alg HS256", hsTok, user, identity.ReasonSignature},
		{"tampered payload", tamper(t, valid, func(c map[string]any) { c["groups"] = []string{"dba"} }), user, identity.ReasonSignature},
		{"tampered signature", valid[:len(valid)-4] + "AAAA", user, identity.ReasonSignature},
		{"user mismatch", valid, "bob@example.com", identity.ReasonUserMismatch},
		{"user differs by case", valid, "Alice@example.com", identity.ReasonUserMismatch},
		{"no username claim", good.sign(t, with(func(c map[string]any) { delete(c, "email") })), user, identity.ReasonClaims},
		{"username not a string", good.sign(t, with(func(c map[string]any) { c["email"] = 42 })), user, identity.ReasonClaims},
		{"username with control chars", good.sign(t, with(func(c map[string]any) { c["email"] = "a\nb" })), "a\nb", identity.ReasonClaims},
		{"groups not strings", good.sign(t, with(func(c map[string]any) { c["groups"] = []any{"a", 1} })), user, identity.ReasonClaims},
		{"groups an object", good.sign(t, with(func(c map[string]any) { c["groups"] = map[string]any{"a": 1} })), user, identity.ReasonClaims},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tc.token, tc.user)
			wantReason(t, err, tc.want)
			if p.User != "" || p.Groups != nil {
				t.Fatalf("refused verification returned a principal: %+v", p)
			}
			r, _ := identity.AsRefusal(err)
			if tc.token != "" && len(tc.token) > 20 && strings.Contains(r.Error(), tc.token) {
				t.Fatal("refusal detail contains the token")
			}
		})
	}
	// Sanity: the unmodified token does verify, so the refusals above are
	// caused by what each case changed.
	if _, err := v.Verify(context.Background(), valid, user); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyClockSkew(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	v := newVerifier(t, oidcCfg(iss.URL()))
	c := iss.claims(t0, "a@x", "g")
	c["exp"] = t0.Add(-29 * time.Second).Unix() // expired, but within the 30s skew
	c["nbf"] = t0.Add(29 * time.Second).Unix()  // not yet valid, but within the skew
	if _, err := v.Verify(context.Background(), k.sign(t, c), "a@x"); err != nil {
		t.Fatalf("token within skew refused: %v", err)
	}
	c["exp"] = float64(t0.Unix()) - 30.5 // fractional NumericDate past the skew
	_, err := v.Verify(context.Background(), k.sign(t, c), "a@x")
	wantReason(t, err, identity.ReasonExpired)
	if r, _ := identity.AsRefusal(err); r.Short() != "token expired" {
		t.Fatalf("Short() = %q", r.Short())
	}
}

func TestClaimMapping(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	cases := []struct {
		name, userClaim, groupsClaim string
		extra                        map[string]any
		user                         string
		groups                       []string
	}{
		{"nested keycloak roles", "preferred_username", "realm_access.roles",
			map[string]any{"preferred_username": "alice", "realm_access": map[string]any{"roles": []string{"analyst", "offline_access"}}},
			"alice", []string{"analyst", "offline_access"}},
		{"scope string", "email", "scope", map[string]any{"scope": "analyst ingest,dba"}, "a@x", []string{"analyst", "ingest", "dba"}},
		{"scp single string", "email", "scp", map[string]any{"scp": "analyst"}, "a@x", []string{"analyst"}},
		{"scp array", "email", "scp", map[string]any{"scp": []string{"read", "write"}}, "a@x", []string{"read", "write"}},
		{"machine identity via sub", "sub", "scope", map[string]any{"sub": "ci-pipeline", "scope": "ingest"}, "ci-pipeline", []string{"ingest"}},
		{"namespaced claim with dots", "email", "https://pgwarden.example.com/groups",
			map[string]any{"https://pgwarden.example.com/groups": []string{"dba"}}, "a@x", []string{"dba"}},
		{"nested username", "user.name", "groups", map[string]any{"user": map[string]any{"name": "nested"}}, "nested", []string{"g"}},
		{"groups absent", "email", "roles", nil, "a@x", nil},
		{"groups claim disabled", "email", "", nil, "a@x", nil},
		{"nested path through a non-object", "email", "groups.x", nil, "a@x", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := oidcCfg(iss.URL())
			cfg.UsernameClaim, cfg.GroupsClaim = tc.userClaim, tc.groupsClaim
			v := newVerifier(t, cfg)
			c := iss.claims(t0, "a@x", "g")
			for key, val := range tc.extra {
				c[key] = val
			}
			p, err := v.Verify(context.Background(), k.sign(t, c), tc.user)
			if err != nil {
				t.Fatal(err)
			}
			if p.User != tc.user || !reflect.DeepEqual(p.Groups, tc.groups) {
				t.Fatalf("got user %q groups %#v, want %q %#v", p.User, p.Groups, tc.user, tc.groups)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := newECKey(t, "k1"), newRSAKey(t, "k2")
	iss := newTestIssuer(t, false, k1)
	v := newVerifier(t, oidcCfg(iss.URL()))
	ctx := context.Background()
	if _, err := v.Verify(ctx, k1.sign(t, iss.claims(t0, "a@x")), "a@x"); err != nil {
		t.Fatal(err)
	}
	hits := iss.jwksHits.Load()
	// Cached: a second token with the same key costs no fetch.
	if _, err := v.Verify(ctx, k1.sign(t, iss.claims(t0, "a@x")), "a@x"); err != nil {
		t.Fatal(err)
	}
	if got := iss.jwksHits.Load(); got != hits {
		t.Fatalf("known key refetched the JWKS (%d -> %d)", hits, got)
	}
	// Before rotation k2 is unknown.
	_, err := v.Verify(ctx, k2.sign(t, iss.claims(t0, "a@x")), "a@x")
	wantReason(t, err, identity.ReasonSignature)
	// The issuer rotates: k2 published, k1 retired. No restart.
	iss.setKeys(k2)
	if _, err := v.Verify(ctx, k2.sign(t, iss.claims(t0, "a@x")), "a@x"); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	// The retired key stops verifying once the refreshed set is cached
	// (go-oidc stores it a moment after handing it to the waiting caller).
	old := k1.sign(t, iss.claims(t0, "a@x"))
	for i := 0; i < 100; i++ {
		if _, err = v.Verify(ctx, old, "a@x"); err != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	wantReason(t, err, identity.ReasonSignature)
}

func TestJWKSRefetchIsRateLimited(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	v := newVerifier(t, oidcCfg(iss.URL()), identity.WithJWKSRefetchInterval(time.Hour))
	ctx := context.Background()
	if _, err := v.Verify(ctx, k.sign(t, iss.claims(t0, "a@x")), "a@x"); err != nil {
		t.Fatal(err)
	}
	before := iss.jwksHits.Load()
	for i := 0; i < 50; i++ {
		junk := newECKey(t, "junk"+string(rune('a'+i%26)))
		_, err := v.Verify(ctx, junk.sign(t, iss.claims(t0, "a@x")), "a@x")
		wantReason(t, err, identity.ReasonSignature)
	}
	if got := iss.jwksHits.Load() - before; got != 0 {
		t.Fatalf("50 unknown-kid tokens caused %d JWKS fetches within the refetch interval, want 0", got)
	}
	// Known keys keep working while refetches are limited.
	if _, err := v.Verify(ctx, k.sign(t, iss.claims(t0, "a@x")), "a@x"); err != nil {
		t.Fatal(err)
	}
}

func TestIssuerDownAtStartThenUp(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	iss.down.Store(true)
	v := newVerifier(t, oidcCfg(iss.URL()))
	ctx := context.Background()
	if err := v.Check(ctx); err == nil {
		t.Fatal("Check succeeded while the issuer is down")
	}
	tok := k.sign(t, iss.claims(t0, "a@x"))
	_, err := v.Verify(ctx, tok, "a@x")
	wantReason(t, err, identity.ReasonUnavailable)
	if r, _ := identity.AsRefusal(err); r.Short() != "identity provider unavailable" {
		t.Fatalf("Short() = %q", r.Short())
	}
	iss.down.Store(false)
	var p identity.Principal
	for i := 0; i < 200; i++ { // retry backoff is 1ms in tests
		if p, err = v.Verify(ctx, tok, "a@x"); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil || p.User != "a@x" {
		t.Fatalf("after the issuer came up: %+v, %v", p, err)
	}
	if err := v.Check(ctx); err != nil {
		t.Fatalf("Check after recovery: %v", err)
	}
}

func TestDiscoveryBackoffAvoidsHammering(t *testing.T) {
	iss := newTestIssuer(t, false, newECKey(t, "k"))
	iss.down.Store(true)
	v, err := identity.NewOIDC(context.Background(), oidcCfg(iss.URL()), identity.WithDiscoveryRetry(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i := 0; i < 20; i++ {
		_, err := v.Verify(context.Background(), newECKey(t, "k").sign(t, iss.claims(t0, "a@x")), "a@x")
		wantReason(t, err, identity.ReasonUnavailable)
	}
	if got := iss.discHits.Load(); got != 1 {
		t.Fatalf("discovery requested %d times during backoff, want 1", got)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	iss.advertise = "https://other.example.com"
	v := newVerifier(t, oidcCfg(iss.URL()))
	_, err := v.Verify(context.Background(), k.sign(t, iss.claims(t0, "a@x")), "a@x")
	wantReason(t, err, identity.ReasonUnavailable)
	if err := v.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "did not match") {
		t.Fatalf("Check = %v, want an issuer mismatch", err)
	}
}

func TestCAFile(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, true, k)
	tok := k.sign(t, iss.claims(t0, "a@x", "g"))

	// Without the CA the TLS handshake fails: fail closed.
	v := newVerifier(t, oidcCfg(iss.URL()))
	_, err := v.Verify(context.Background(), tok, "a@x")
	wantReason(t, err, identity.ReasonUnavailable)

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := oidcCfg(iss.URL())
	cfg.CAFile = ca
	v = newVerifier(t, cfg)
	if _, err := v.Verify(context.Background(), tok, "a@x"); err != nil {
		t.Fatalf("with ca_file: %v", err)
	}

	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a pem"), 0o644)
	cfg.CAFile = bad
	if _, err := identity.NewOIDC(context.Background(), cfg); !config.IsConfigError(err) || !strings.Contains(err.Error(), "auth.oidc.ca_file") {
		t.Fatalf("bad ca_file: err = %v, want a config error naming auth.oidc.ca_file", err)
	}
	cfg.CAFile = filepath.Join(dir, "missing.pem")
	if _, err := identity.NewOIDC(context.Background(), cfg); !config.IsConfigError(err) {
		t.Fatalf("missing ca_file: err = %v", err)
	}
}

func TestOversizedJWKSRefused(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	// Many copies of the key push the JWKS past the 1 MiB response bound.
	var keys []testKey
	for i := 0; i < 8000; i++ {
		keys = append(keys, k)
	}
	iss.setKeys(keys...)
	v := newVerifier(t, oidcCfg(iss.URL()))
	_, err := v.Verify(context.Background(), k.sign(t, iss.claims(t0, "a@x")), "a@x")
	wantReason(t, err, identity.ReasonUnavailable)
}

func TestRefusalNeverLeaksToken(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	v := newVerifier(t, oidcCfg(iss.URL()))
	tok := k.sign(t, iss.claims(t0, "a@x"))
	sig := tok[strings.LastIndex(tok, ".")+1:]
	_, err := v.Verify(context.Background(), tok, "b@x")
	b, _ := json.Marshal(err)
	if strings.Contains(err.Error(), sig) || strings.Contains(string(b), sig) {
		t.Fatalf("refusal contains the token's signature: %v", err)
	}
}

// A caller that gives up (cancelled ctx) must not put the verifier into
// discovery backoff: that says nothing about the issuer. NewOIDC with a
// cancelled ctx (pgwarden dev: its issuer's listener is not up yet) makes
// no attempt and logs no warning (issue 15: "OIDC discovery failed" at
// every start of pgwarden dev).
func TestCancelledCallerDoesNotTriggerBackoff(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	var logBuf bytes.Buffer
	v, err := identity.NewOIDC(dead, oidcCfg(iss.URL()),
		identity.WithNow(func() time.Time { return t0 }),
		identity.WithDiscoveryRetry(time.Hour, time.Hour),
		identity.WithLogger(zerolog.New(&logBuf).Level(zerolog.InfoLevel)))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := iss.discHits.Load(); got != 0 {
		t.Fatalf("a cancelled ctx still requested discovery %d times", got)
	}
	if strings.Contains(logBuf.String(), `"warn"`) || strings.Contains(logBuf.String(), "discovery failed") {
		t.Fatalf("a deferred first discovery logged: %s", logBuf.String())
	}
	if _, err := v.Verify(context.Background(), k.sign(t, iss.claims(t0, "a@x")), "a@x"); err != nil {
		t.Fatalf("first use after a skipped discovery: %v", err)
	}
}

// Many sessions connecting at once right after start-up (cold key cache,
// default refetch limit) all verify: the refetch limiter never refuses a
// key that the issuer does publish.
func TestConcurrentColdStart(t *testing.T) {
	for round := 0; round < 5; round++ {
		k := newECKey(t, "k")
		iss := newTestIssuer(t, false, k)
		v, err := identity.NewOIDC(context.Background(), oidcCfg(iss.URL()), identity.WithNow(func() time.Time { return t0 }))
		if err != nil {
			t.Fatal(err)
		}
		tok := k.sign(t, iss.claims(t0, "a@x", "g"))
		const n = 32
		errs := make(chan error, n)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			go func() {
				<-start
				_, err := v.Verify(context.Background(), tok, "a@x")
				errs <- err
			}()
		}
		close(start)
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: concurrent cold-start verify: %v", round, err)
			}
		}
		if hits := iss.jwksHits.Load(); hits > 2 {
			t.Fatalf("round %d: %d JWKS fetches for one key", round, hits)
		}
		v.Close()
	}
}

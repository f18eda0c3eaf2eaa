package identity_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testKey is a signing key with its kid and algorithm.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv any
	pub  any
}

func newECKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.ES256, priv: k, pub: &k.PublicKey}
}

func newRSAKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.RS256, priv: k, pub: &k.PublicKey}
}

func newEdKey(t testing.TB, kid string) testKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, alg: jose.EdDSA, priv: priv, pub: pub}
}

// sign returns a compact JWS over claims.
func (k testKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), k.kid))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testIssuer is an OIDC issuer under the test's control: discovery + JWKS
// over a real HTTP server, switchable keys, and an outage switch.
type testIssuer struct {
	srv       *httptest.Server
	mu        sync.Mutex
	keys      []testKey
	down      atomic.Bool
	jwksHits  atomic.Int64
	discHits  atomic.Int64
	advertise string // issuer value in the discovery document ("" = the real URL)
}

func newTestIssuer(t testing.TB, tlsServer bool, keys ...testKey) *testIssuer {
	t.Helper()
	ti := &testIssuer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discHits.Add(1)
		if ti.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		iss := ti.URL()
		if ti.advertise != "" {
			iss = ti.advertise
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss,
			"jwks_uri":                              ti.URL() + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256", "EdDSA"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksHits.Add(1)
		if ti.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		ti.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range ti.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
		}
		ti.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	})
	if tlsServer {
		ti.srv = httptest.NewTLSServer(mux)
	} else {
		ti.srv = httptest.NewServer(mux)
	}
	t.Cleanup(ti.srv.Close)
	return ti
}

func (ti *testIssuer) URL() string { return ti.srv.URL }

func (ti *testIssuer) setKeys(keys ...testKey) {
	ti.mu.Lock()
	ti.keys = keys
	ti.mu.Unlock()
}

// claims returns a valid claim set for user at now.
func (ti *testIssuer) claims(now time.Time, user string, groups ...string) map[string]any {
	return map[string]any{
		"iss":    ti.URL(),
		"sub":    "sub-" + user,
		"aud":    "pgwarden",
		"exp":    now.Add(time.Hour).Unix(),
		"iat":    now.Add(-time.Minute).Unix(),
		"nbf":    now.Add(-time.Minute).Unix(),
		"email":  user,
		"groups": groups,
	}
}

// tamper replaces the payload of a compact JWS, keeping header and signature.
func tamper(t testing.TB, token string, mutate func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	mutate(c)
	nb, _ := json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(nb)
	return strings.Join(parts, ".")
}

// unsigned builds an alg-"none" token (or any header) by hand.
func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

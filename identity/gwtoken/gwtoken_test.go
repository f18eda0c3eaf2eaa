package gwtoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgwarden/pgwarden/identity"
)

const (
	testIssuer   = "https://pgwarden.example.test"
	testAudience = "pgwarden"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func testOptions(dir string, c *clock) Options {
	return Options{
		Issuer:        testIssuer,
		Audience:      testAudience,
		UsernameClaim: "email",
		GroupsClaim:   "groups",
		KeyFile:       filepath.Join(dir, "gateway-token.key"),
		Now:           c.Now,
	}
}

func open(t testing.TB, o Options) *Issuer {
	t.Helper()
	i, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return i
}

func issue(t testing.TB, i *Issuer, p identity.Principal) string {
	t.Helper()
	tok, _, err := i.Issue(p)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

var alice = identity.Principal{User: "alice@example.com", Subject: "u-123", Groups: []string{"dba", "dev"}}

func wantRefusal(t *testing.T, v identity.Verifier, token, user string, want identity.Reason) {
	t.Helper()
	p, err := v.Verify(context.Background(), token, user)
	if err == nil {
		t.Fatalf("accepted (principal %+v), want refusal %q", p, want)
	}
	r, ok := identity.AsRefusal(err)
	if !ok {
		t.Fatalf("error %v is not a RefusalError", err)
	}
	if r.Reason != want {
		t.Fatalf("reason %q (%v), want %q", r.Reason, err, want)
	}
	if !reflect.DeepEqual(p, identity.Principal{}) {
		t.Fatalf("refusal came with a non-zero principal %+v", p)
	}
	if strings.Contains(err.Error(), token) && len(token) > 8 {
		t.Fatalf("refusal detail contains the token")
	}
}

func TestRoundTrip(t *testing.T) {
	c := &clock{t0}
	i := open(t, testOptions(t.TempDir(), c))
	tok, exp, err := i.Issue(alice)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(time.Hour); !exp.Equal(want) {
		t.Fatalf("expires %s, want %s", exp, want)
	}
	c.now = t0.Add(59 * time.Minute)
	p, err := i.Verifier().Verify(context.Background(), tok, "alice@example.com")
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := identity.Principal{User: alice.User, Subject: "u-123", Groups: []string{"dba", "dev"}, Expiry: exp, Issuer: testIssuer}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("principal %+v, want %+v", p, want)
	}
	if _, err := i.Verifier().Verify(context.Background(), " "+tok+"\n", ""); err != nil {
		t.Fatalf("Verify with user \"\" and surrounding space: %v", err)
	}
	if err := i.Verifier().Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}

	// The header and the claims on the wire.
	parts := strings.Split(tok, ".")
	var hdr map[string]any
	mustDecode(t, parts[0], &hdr)
	if hdr["alg"] != "ES256" || hdr["kid"] != i.KeyID() || hdr["typ"] != "JWT" {
		t.Fatalf("header %v", hdr)
	}
	var claims map[string]any
	mustDecode(t, parts[1], &claims)
	for k, v := range map[string]any{
		"iss": testIssuer, "aud": testAudience, "sub": "u-123", "email": alice.User,
		"iat": float64(t0.Unix()), "nbf": float64(t0.Unix()), "exp": float64(exp.Unix()),
	} {
		if !reflect.DeepEqual(claims[k], v) {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if !reflect.DeepEqual(claims["groups"], []any{"dba", "dev"}) {
		t.Errorf("groups %v", claims["groups"])
	}
	if jti, _ := claims["jti"].(string); len(jti) < 16 {
		t.Errorf("jti %q", jti)
	}
	tok2 := issue(t, i, alice)
	var claims2 map[string]any
	mustDecode(t, strings.Split(tok2, ".")[1], &claims2)
	if claims2["jti"] == claims["jti"] {
		t.Errorf("two tokens share jti %v", claims["jti"])
	}
}

func TestExpiryCappedByPrincipal(t *testing.T) {
	c := &clock{t0}
	i := open(t, testOptions(t.TempDir(), c))
	p := alice
	p.Subject = ""
	p.Expiry = t0.Add(10*time.Minute + 500*time.Millisecond)
	tok, exp, err := i.Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(10 * time.Minute); !exp.Equal(want) {
		t.Fatalf("expires %s, want %s (the principal's expiry, rounded down)", exp, want)
	}
	got, err := i.Verifier().Verify(context.Background(), tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Expiry.Equal(exp) || got.Subject != p.User {
		t.Fatalf("principal %+v: want expiry %s and sub = user", got, exp)
	}
	c.now = exp.Add(ClockSkew)
	wantRefusal(t, i.Verifier(), tok, "", identity.ReasonExpired)

	// A later principal expiry does not extend the TTL.
	c.now = t0
	p.Expiry = t0.Add(48 * time.Hour)
	if _, exp, _ := i.Issue(p); !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("expires %s, want the TTL", exp)
	}
	p.Expiry = t0.Add(-time.Second)
	if _, _, err := i.Issue(p); err == nil {
		t.Fatal("issued a token for an expired principal")
	}
	if _, _, err := i.Issue(identity.Principal{}); err == nil {
		t.Fatal("issued a token without a user")
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	i := open(t, testOptions(dir, c))
	v := i.Verifier()
	good := issue(t, i, alice)
	parts := strings.Split(good, ".")

	other := open(t, testOptions(t.TempDir(), c)) // same iss and aud, another key
	otherKey := other.key

	payload := func(mut func(map[string]any)) []byte {
		var m map[string]any
		mustDecode(t, parts[1], &m)
		mut(m)
		b, _ := json.Marshal(m)
		return b
	}
	samePayload := payload(func(map[string]any) {})

	pubDER, _ := x509.MarshalPKIXPublicKey(&i.key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	_ = json.Unmarshal(i.jwks, &jwks)

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

	b64 := base64.RawURLEncoding.EncodeToString
	tampered := parts[0] + "." + b64(payload(func(m map[string]any) { m["email"] = "mallory@example.com" })) + "." + parts[2]

	// Same key file, other iss / aud: validly signed, wrong claims.
	wrongIss := testOptions(dir, c)
	wrongIss.Issuer = "https://elsewhere.example.test"
	wrongAud := testOptions(dir, c)
	wrongAud.Audience = "someone-else"

	cases := []struct {
		name  string
		token string
		user  string
		want  identity.Reason
	}{
		{"empty", "  ", "", identity.ReasonMissing},
		{"garbage", "not a token", "", identity.ReasonMalformed},
		{"four parts", good + ".x", "", identity.ReasonMalformed},
		{"oversized", parts[0] + "." + strings.Repeat("A", MaxTokenBytes) + "." + parts[2], "", identity.ReasonMalformed},
		{"tampered payload", tampered, "", identity.ReasonSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)), "", identity.ReasonSignature},
		{"another issuer's token", issue(t, other, alice), "", identity.ReasonSignature},
		{"another key under our kid", sign(t, jose.ES256, otherKey, i.kid, samePayload), "", identity.ReasonSignature},
		{"alg none", b64([]byte(`{"alg":"none","kid":"`+i.kid+`"}`)) + "." + parts[1] + ".", "", identity.ReasonSignature},
		{"alg none with signature", b64([]byte(`{"alg":"none","kid":"`+i.kid+`"}`)) + "." + parts[1] + "." + parts[2], "", identity.ReasonSignature},
		{"HS256 with the public key PEM", sign(t, jose.HS256, pubPEM, i.kid, samePayload), "", identity.ReasonSignature},
		{"HS256 with the public JWK", sign(t, jose.HS256, []byte(jwks.Keys[0]), i.kid, samePayload), "", identity.ReasonSignature},
		{"RS256", sign(t, jose.RS256, rsaKey, i.kid, samePayload), "", identity.ReasonSignature},
		{"ES384", sign(t, jose.ES384, p384, i.kid, samePayload), "", identity.ReasonSignature},
		{"no kid", sign(t, jose.ES256, i.key, "", samePayload), "", identity.ReasonSignature},
		{"embedded jwk", signEmbedded(t, i), "", identity.ReasonSignature},
		{"wrong iss", issue(t, open(t, wrongIss), alice), "", identity.ReasonIssuer},
		{"wrong aud", issue(t, open(t, wrongAud), alice), "", identity.ReasonAudience},
		{"aud missing", sign(t, jose.ES256, i.key, i.kid, payload(func(m map[string]any) { delete(m, "aud") })), "", identity.ReasonAudience},
		{"no exp", sign(t, jose.ES256, i.key, i.kid, payload(func(m map[string]any) { delete(m, "exp") })), "", identity.ReasonClaims},
		{"exp a string", sign(t, jose.ES256, i.key, i.kid, payload(func(m map[string]any) { m["exp"] = "soon" })), "", identity.ReasonClaims},
		{"no username", sign(t, jose.ES256, i.key, i.kid, payload(func(m map[string]any) { delete(m, "email") })), "", identity.ReasonClaims},
		{"username with control character", sign(t, jose.ES256, i.key, i.kid, payload(func(m map[string]any) { m["email"] = "a\nb" })), "", identity.ReasonClaims},
		{"groups not a list", sign(t, jose.ES256, i.key, i.kid, payload(func(m map[string]any) { m["groups"] = 7 })), "", identity.ReasonClaims},
		{"claims not an object", sign(t, jose.ES256, i.key, i.kid, []byte(`[1]`)), "", identity.ReasonMalformed},
		{"user mismatch", good, "bob@example.com", identity.ReasonUserMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantRefusal(t, v, tc.token, tc.user, tc.want) })
	}

	t.Run("expired", func(t *testing.T) {
		c.now = t0.Add(time.Hour + ClockSkew)
		defer func() { c.now = t0 }()
		wantRefusal(t, v, good, "", identity.ReasonExpired)
	})
	t.Run("within skew after exp", func(t *testing.T) {
		c.now = t0.Add(time.Hour + ClockSkew - time.Second)
		defer func() { c.now = t0 }()
		if _, err := v.Verify(context.Background(), good, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("nbf in the future", func(t *testing.T) {
		c.now = t0.Add(-ClockSkew - time.Second)
		defer func() { c.now = t0 }()
		wantRefusal(t, v, good, "", identity.ReasonNotYetValid)
	})
	t.Run("nbf within skew", func(t *testing.T) {
		c.now = t0.Add(-ClockSkew + time.Second)
		defer func() { c.now = t0 }()
		if _, err := v.Verify(context.Background(), good, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("short reasons", func(t *testing.T) {
		_, err := v.Verify(context.Background(), good, "bob@example.com")
		r, _ := identity.AsRefusal(err)
		if r.Short() != "user does not match token" {
			t.Fatalf("Short() = %q", r.Short())
		}
	})
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	o := testOptions(dir, c)
	a := open(t, o)
	st, err := os.Stat(o.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key file", len(entries))
	}
	b := open(t, o)
	if a.KeyID() != b.KeyID() {
		t.Fatalf("kid changed across Open: %s, %s", a.KeyID(), b.KeyID())
	}
	// A token from before the "restart" still verifies.
	if _, err := b.Verifier().Verify(context.Background(), issue(t, a, alice), ""); err != nil {
		t.Fatalf("token from the first Open: %v", err)
	}

	if err := os.Chmod(o.KeyFile, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(o); err == nil || !strings.Contains(err.Error(), "0640") {
		t.Fatalf("group-readable key file: err %v", err)
	}
	if err := os.Chmod(o.KeyFile, 0o604); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(o); err == nil {
		t.Fatal("other-readable key file accepted")
	}

	writeKey := func(name string, block *pem.Block) Options {
		o := testOptions(dir, c)
		o.KeyFile = filepath.Join(dir, name)
		var data []byte
		if block != nil {
			data = pem.EncodeToMemory(block)
		} else {
			data = []byte("not pem")
		}
		if err := os.WriteFile(o.KeyFile, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return o
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalECPrivateKey(p384)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256DER, _ := x509.MarshalECPrivateKey(p256)
	pubDER, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)

	for name, tc := range map[string]struct {
		block   *pem.Block
		wantErr string
	}{
		"rsa":     {&pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER}, "want an EC P-256 private key"},
		"p384":    {&pem.Block{Type: "EC PRIVATE KEY", Bytes: p384DER}, "want P-256"},
		"public":  {&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}, "want an EC P-256 private key"},
		"garbage": {nil, "no PEM block"},
		"sec1":    {&pem.Block{Type: "EC PRIVATE KEY", Bytes: p256DER}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Open(writeKey(name+".key", tc.block))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Open: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}

	o.KeyFile = filepath.Join(dir, "missing-dir", "k.key")
	if _, err := Open(o); err == nil {
		t.Fatal("key file in a missing directory accepted")
	}
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	for name, mut := range map[string]func(*Options){
		"no issuer":             func(o *Options) { o.Issuer = "" },
		"issuer not a URL":      func(o *Options) { o.Issuer = "pgwarden" },
		"no audience":           func(o *Options) { o.Audience = "" },
		"no key file":           func(o *Options) { o.KeyFile = "" },
		"ttl too long":          func(o *Options) { o.TTL = MaxTTL + time.Second },
		"negative ttl":          func(o *Options) { o.TTL = -time.Minute },
		"username claim iss":    func(o *Options) { o.UsernameClaim = "iss" },
		"groups claim exp":      func(o *Options) { o.GroupsClaim = "exp" },
		"groups claim username": func(o *Options) { o.GroupsClaim = o.UsernameClaim },
	} {
		o := testOptions(dir, c)
		mut(&o)
		if _, err := Open(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	o := testOptions(dir, c)
	o.TTL = MaxTTL
	o.UsernameClaim = "sub"
	o.GroupsClaim = ""
	i := open(t, o)
	tok, exp, err := i.Issue(alice)
	if err != nil || !exp.Equal(t0.Add(MaxTTL)) {
		t.Fatalf("Issue: %v, expires %s", err, exp)
	}
	p, err := i.Verifier().Verify(context.Background(), tok, alice.User)
	if err != nil {
		t.Fatal(err)
	}
	if p.User != alice.User || p.Subject != alice.User || p.Groups != nil {
		t.Fatalf("username_claim sub: principal %+v", p)
	}
	if i.IssuerURL() != testIssuer {
		t.Fatalf("IssuerURL %q", i.IssuerURL())
	}
}

func TestJWKS(t *testing.T) {
	i := open(t, testOptions(t.TempDir(), &clock{t0}))
	srv := httptest.NewServer(i.JWKSHandler())
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
		t.Fatalf("Cache-Control %q", cc)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(raw.Keys))
	}
	k := raw.Keys[0]
	if k["kty"] != "EC" || k["crv"] != "P-256" || k["kid"] != i.KeyID() || k["alg"] != "ES256" || k["use"] != "sig" {
		t.Fatalf("key %v", k)
	}
	if _, ok := k["d"]; ok {
		t.Fatal("JWKS serves the private part d")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(i.jwks, &set); err != nil {
		t.Fatal(err)
	}
	if !set.Keys[0].IsPublic() || !set.Keys[0].Valid() {
		t.Fatal("served key is not a valid public key")
	}
	// The served key verifies a token, i.e. it is the signing key.
	jws, err := jose.ParseSignedCompact(issue(t, i, alice), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(set.Keys[0]); err != nil {
		t.Fatalf("served key does not verify a token: %v", err)
	}

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, srv.URL, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodGet {
			t.Fatalf("%s: status %s, Allow %q", m, resp.Status, resp.Header.Get("Allow"))
		}
	}
}

func mustDecode(t testing.TB, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// sign makes a compact JWS of payload with alg, key and kid.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, payload []byte) string {
	t.Helper()
	var k any = key
	if kid != "" {
		k = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signEmbedded signs a valid payload with the issuer's own key and kid but
// also embeds the public key in the header.
func signEmbedded(t testing.TB, i *Issuer) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: i.key, KeyID: i.kid}},
		(&jose.SignerOptions{EmbedJWK: true}))
	if err != nil {
		t.Fatal(err)
	}
	tok := issue(t, i, alice)
	var m map[string]any
	mustDecode(t, strings.Split(tok, ".")[1], &m)
	b, _ := json.Marshal(m)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

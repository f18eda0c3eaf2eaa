package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// oidcIssuer is a real OIDC issuer over HTTP (discovery + JWKS) whose keys
// the tests hold, so they can mint good tokens and forge every kind of bad one.
type oidcIssuer struct {
	srv   *httptest.Server
	URL   string
	key   *ecdsa.PrivateKey
	kid   string
	other *ecdsa.PrivateKey // never published
}

func newIssuer(t testing.TB) *oidcIssuer {
	t.Helper()
	is := &oidcIssuer{kid: "test-key-1"}
	var err error
	if is.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if is.other, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.URL, "jwks_uri": is.URL + "/keys",
			"authorization_endpoint": is.URL + "/auth", "token_endpoint": is.URL + "/token",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "ES256", Use: "sig"}}})
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

// claims are the standard claims of a token for user in groups.
func (is *oidcIssuer) claims(user string, groups ...string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": is.URL, "aud": "pgwarden", "sub": "sub-" + user, "email": user,
		"groups": groups, "iat": now.Unix(), "nbf": now.Add(-time.Second).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// sign signs claims with key (the published key unless another is given).
func (is *oidcIssuer) sign(t testing.TB, claims map[string]any, key *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	if key == nil {
		key, kid = is.key, is.kid
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// token is a valid token for user in groups.
func (is *oidcIssuer) token(t testing.TB, user string, groups ...string) string {
	return is.sign(t, is.claims(user, groups...), nil, "")
}

// unsigned is the claims as an alg=none token.
func unsigned(t testing.TB, claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

// tamper replaces the payload of a signed token (signature kept).
func tamper(t testing.TB, tok string, claims map[string]any) string {
	parts := strings.Split(tok, ".")
	b, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// delegated is a valid token in which actor acts for user (RFC 8693 act
// claim: an agent acting for a person). actorGroups nil gives the act
// object no groups claim, so the gateway grants the session no groups.
func (is *oidcIssuer) delegated(t testing.TB, user string, groups []string, actor string, actorGroups []string) string {
	c := is.claims(user, groups...)
	act := map[string]any{"sub": actor}
	if actorGroups != nil {
		act["groups"] = actorGroups
	}
	c["act"] = act
	return is.sign(t, c, nil, "")
}

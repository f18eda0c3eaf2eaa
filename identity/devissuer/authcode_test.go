package devissuer_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/identity/devissuer/devissuertest"
)

// The admin's callback is never served in these tests: the browser stops
// at the redirect to it.
const uiRedirect = "http://127.0.0.1:1/ui/callback"

// browser is a cookie-keeping HTTP client that follows redirects within the
// issuer and stops at the one to the client's redirect URI.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/ui/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

func authorizeURL(is *devissuer.Issuer, redirect, state, verifier string) string {
	q := url.Values{
		"client_id": {devissuer.UIClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {"openid email profile"}, "state": {state}, "audience": {"pgwarden"},
	}
	if verifier != "" {
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		q.Set("code_challenge_method", "S256")
	}
	return is.URL() + devissuer.AuthorizationPath + "?" + q.Encode()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn runs the browser part of the flow: authorize, the sign-in page,
// the form; it returns the code the browser is sent back with.
func signIn(t *testing.T, c *http.Client, is *devissuer.Issuer, verifier, user, groups string) string {
	t.Helper()
	resp, err := c.Get(authorizeURL(is, uiRedirect, "st4te", verifier))
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dev-issuer"+devissuer.LoginPath || !strings.Contains(page, "DEVELOPMENT ONLY") {
		t.Fatalf("sign-in page: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	m := hiddenID.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no auth request id in the page:\n%s", page)
	}
	resp, err = c.PostForm(is.URL()+devissuer.LoginPath, url.Values{"id": {m[1]}, "user": {user}, "groups": {groups}, "action": {"signin"}})
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Scheme+"://"+loc.Host+loc.Path != uiRedirect {
		t.Fatalf("after sign-in: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), b)
	}
	if loc.Query().Get("state") != "st4te" || loc.Query().Get("code") == "" {
		t.Fatalf("callback parameters %v", loc.Query())
	}
	return loc.Query().Get("code")
}

func exchange(t *testing.T, is *devissuer.Issuer, code, verifier string) (int, map[string]any) {
	t.Helper()
	status, _, m := post(t, is.URL()+devissuer.TokenPath, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {uiRedirect},
		"client_id": {devissuer.UIClientID}, "code_verifier": {verifier},
	})
	return status, m
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
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

// TestAuthCodeFlow is the admin page's browser sign-in against the dev
// issuer: authorize with PKCE, the development sign-in page, the code at the
// redirect URI, the exchange with the verifier, an access token the
// gateway's verifier accepts; the code is good once.
func TestAuthCodeFlow(t *testing.T) {
	is, _ := devissuertest.Serve(t, t.TempDir())

	resp, err := http.Get(is.URL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc["authorization_endpoint"] != is.URL()+devissuer.AuthorizationPath || !slices.Contains(anyStrings(disc["code_challenge_methods_supported"]), "S256") ||
		!slices.Contains(anyStrings(disc["grant_types_supported"]), "authorization_code") {
		t.Fatalf("discovery %v", disc)
	}

	pkce := oauth2.GenerateVerifier()
	code := signIn(t, browser(t), is, pkce, "bob@example.com", "dba, analyst")
	status, m := exchange(t, is, code, pkce)
	at, _ := m["access_token"].(string)
	if status != 200 || at == "" || m["id_token"] == nil || m["refresh_token"] != nil {
		t.Fatalf("exchange: %d %v", status, m)
	}
	p, err := verifier(t, is.URL()).Verify(t.Context(), at, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "bob@example.com" || strings.Join(p.Groups, ",") != "dba,analyst" || p.Issuer != is.URL() {
		t.Fatalf("principal %+v", p)
	}
	c := jwtClaims(t, at)
	if !slices.Contains(anyStrings(c["aud"]), devissuer.Audience) || c["email"] != "bob@example.com" || c["preferred_username"] != "bob@example.com" || c["sub"] != "bob@example.com" {
		t.Fatalf("access token claims %v", c)
	}
	if d := time.Until(p.Expiry); d < 59*time.Minute || d > time.Hour+time.Minute {
		t.Fatalf("access token expires in %s", d)
	}
	// A code is redeemed once.
	if status, m := exchange(t, is, code, pkce); status == 200 || m["error"] != "invalid_grant" {
		t.Fatalf("second exchange of a code: %d %v", status, m)
	}

	// A wrong code_verifier is refused (and burns the code).
	pkce = oauth2.GenerateVerifier()
	code = signIn(t, browser(t), is, pkce, "bob@example.com", "dba")
	if status, m := exchange(t, is, code, oauth2.GenerateVerifier()); status == 200 || m["access_token"] != nil {
		t.Fatalf("wrong code_verifier: %d %v", status, m)
	}
	if status, m := exchange(t, is, code, ""); status == 200 || m["access_token"] != nil {
		t.Fatalf("no code_verifier: %d %v", status, m)
	}
	// The redirect_uri of the exchange must be the authorize one.
	code = signIn(t, browser(t), is, pkce, "bob@example.com", "dba")
	status, _, m = post(t, is.URL()+devissuer.TokenPath, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:2/ui/callback"},
		"client_id": {devissuer.UIClientID}, "code_verifier": {pkce},
	})
	if status == 200 {
		t.Fatalf("exchange with another redirect_uri: %v", m)
	}
}

func anyStrings(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestAuthCodeRefusals: redirect URIs outside the loopback /ui/callback
// pattern are refused without a redirect; PKCE S256 is required; the
// sign-in form only completes the request of the browser that loaded it.
func TestAuthCodeRefusals(t *testing.T) {
	is, _ := devissuertest.Serve(t, t.TempDir())
	pkce := oauth2.GenerateVerifier()
	for _, bad := range []string{
		"http://127.0.0.1:1@evil.example/ui/callback",
		"http://evil.example:80/ui/callback",
		"https://127.0.0.1:1/ui/callback",
		"http://127.0.0.1/ui/callback",
		"http://127.0.0.1:1/ui/callback?x=1",
		"http://127.0.0.1:1/ui/callback#x",
		"http://127.0.0.1:1/other",
		"http://127.0.0.2:1/ui/callback",
		"http://localhost:01/ui/callback",
	} {
		resp, err := browser(t).Get(authorizeURL(is, bad, "s", pkce))
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Path != "/dev-issuer"+devissuer.AuthorizationPath || resp.Header.Get("Location") != "" {
			t.Errorf("redirect_uri %q: %d at %s %q\n%s", bad, resp.StatusCode, resp.Request.URL, resp.Header.Get("Location"), b)
		}
	}
	// localhost is as good as 127.0.0.1.
	resp, err := browser(t).Get(authorizeURL(is, "http://localhost:6480/ui/callback", "s", pkce))
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != 200 || !strings.Contains(b, "DEVELOPMENT ONLY") {
		t.Fatalf("localhost redirect_uri: %d\n%s", resp.StatusCode, b)
	}
	// Without PKCE, or with plain, the client is told so at its redirect URI.
	for _, method := range []string{"", "plain"} {
		u := authorizeURL(is, uiRedirect, "s", "")
		if method != "" {
			u += "&code_challenge=" + pkce + "&code_challenge_method=" + method
		}
		resp, err := browser(t).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body(t, resp)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("code") != "" {
			t.Errorf("PKCE method %q: %d %q", method, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	// The sign-in form: another browser (no cookie), a cross-origin post,
	// no user, then cancel.
	c := browser(t)
	resp, err = c.Get(authorizeURL(is, uiRedirect, "st", pkce))
	if err != nil {
		t.Fatal(err)
	}
	m := hiddenID.FindStringSubmatch(body(t, resp))
	if m == nil {
		t.Fatal("no sign-in form")
	}
	form := url.Values{"id": {m[1]}, "user": {"mallory@example.com"}, "groups": {"dba"}}
	resp, err = browser(t).PostForm(is.URL()+devissuer.LoginPath, form)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "not started in this browser") {
		t.Fatalf("sign-in from another browser: %d\n%s", resp.StatusCode, b)
	}
	req, _ := http.NewRequest(http.MethodPost, is.URL()+devissuer.LoginPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body(t, resp); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin sign-in: %d", resp.StatusCode)
	}
	resp, err = c.PostForm(is.URL()+devissuer.LoginPath, url.Values{"id": {m[1]}, "user": {" "}})
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "a user is required") || !strings.Contains(b, m[1]) {
		t.Fatalf("no user: %d\n%s", resp.StatusCode, b)
	}
	resp, err = c.PostForm(is.URL()+devissuer.LoginPath, url.Values{"id": {m[1]}, "action": {"cancel"}})
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != uiRedirect+"?error=access_denied&state=st" {
		t.Fatalf("cancel: %d %q", resp.StatusCode, loc)
	}
	// The cancelled request is gone: its callback gives no code.
	resp, err = c.Get(is.URL() + devissuer.AuthorizationPath + "/callback?id=" + url.QueryEscape(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	body(t, resp)
	if resp.StatusCode == http.StatusFound {
		t.Fatalf("callback of a cancelled request: %q", resp.Header.Get("Location"))
	}
	// An unknown auth request id gets no form.
	resp, err = c.Get(is.URL() + devissuer.LoginPath + "?authRequestID=nope")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusBadRequest || hiddenID.MatchString(b) {
		t.Fatalf("unknown auth request: %d\n%s", resp.StatusCode, b)
	}
}

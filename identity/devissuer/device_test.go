package devissuer_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/identity/devissuer/devissuertest"
)

type tokenResp struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

func post(t *testing.T, u string, form url.Values) (int, tokenResp, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tr tokenResp
	var m map[string]any
	json.Unmarshal(b, &tr)
	json.Unmarshal(b, &m)
	return resp.StatusCode, tr, m
}

func startDevice(t *testing.T, is *devissuer.Issuer) (deviceCode, userCode string, disc map[string]any) {
	t.Helper()
	resp, err := http.Get(is.URL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc["device_authorization_endpoint"] != is.URL()+devissuer.DeviceAuthorizationPath || disc["token_endpoint"] != is.URL()+devissuer.TokenPath {
		t.Fatalf("discovery %v", disc)
	}
	code, _, m := post(t, is.URL()+devissuer.DeviceAuthorizationPath, url.Values{"client_id": {devissuer.CLIClientID}, "scope": {"openid offline_access"}})
	if code != 200 {
		t.Fatalf("device authorization: %d %v", code, m)
	}
	if m["verification_uri"] != is.URL()+devissuer.DevicePath {
		t.Fatalf("verification_uri %v", m["verification_uri"])
	}
	return m["device_code"].(string), m["user_code"].(string), disc
}

func poll(t *testing.T, is *devissuer.Issuer, dc string) (int, tokenResp) {
	t.Helper()
	code, tr, _ := post(t, is.URL()+devissuer.TokenPath, url.Values{"client_id": {devissuer.CLIClientID}, "grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc}})
	return code, tr
}

// TestDevicePendingSlowDownApproveOnce walks RFC 8628's token endpoint
// answers: authorization_pending, slow_down when polled too fast, the token
// after approval, and the device code used only once.
func TestDevicePendingSlowDownApproveOnce(t *testing.T) {
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second})
	dc, uc, _ := startDevice(t, is)
	if code, tr := poll(t, is, dc); code != 400 || tr.Error != "authorization_pending" {
		t.Fatalf("first poll: %d %q", code, tr.Error)
	}
	if _, tr := poll(t, is, dc); tr.Error != "slow_down" {
		t.Fatalf("immediate second poll: %q, want slow_down", tr.Error)
	}
	// Approve through the page, with the code typed without its dash in lower case.
	code, _, _ := post(t, is.URL()+devissuer.DevicePath, url.Values{"user_code": {strings.ToLower(strings.ReplaceAll(uc, "-", ""))}, "user": {"alice@example.com"}, "groups": {"analyst,dba"}})
	if code != 200 {
		t.Fatalf("approve: %d", code)
	}
	time.Sleep(time.Second)
	code, tr := poll(t, is, dc)
	if code != 200 || tr.AccessToken == "" || tr.RefreshToken == "" {
		t.Fatalf("after approval: %d %q", code, tr.Error)
	}
	p, err := verifier(t, is.URL()).Verify(t.Context(), tr.AccessToken, "alice@example.com")
	if err != nil || strings.Join(p.Groups, ",") != "analyst,dba" {
		t.Fatalf("verify: %+v %v", p, err)
	}
	time.Sleep(time.Second)
	if code, tr := poll(t, is, dc); code == 200 || tr.AccessToken != "" {
		t.Fatal("a device code was redeemed twice")
	}
	// Approving the used code again fails.
	if code, _, _ := post(t, is.URL()+devissuer.DevicePath, url.Values{"user_code": {uc}, "user": {"mallory"}}); code != 400 {
		t.Fatalf("re-approve: %d", code)
	}
	// Refresh: a new access token, the refresh token rotated.
	code, tr2, _ := post(t, is.URL()+devissuer.TokenPath, url.Values{"client_id": {devissuer.CLIClientID}, "grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}})
	if code != 200 || tr2.AccessToken == "" || tr2.RefreshToken == tr.RefreshToken {
		t.Fatalf("refresh: %d %q", code, tr2.Error)
	}
	if _, err := verifier(t, is.URL()).Verify(t.Context(), tr2.AccessToken, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := post(t, is.URL()+devissuer.TokenPath, url.Values{"client_id": {devissuer.CLIClientID}, "grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}); code == 200 {
		t.Fatal("a rotated refresh token was accepted")
	}
}

func TestDeviceDeniedAndExpired(t *testing.T) {
	is, _ := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second, CodeTTL: time.Second})
	dc, uc, _ := startDevice(t, is)
	if code, _, _ := post(t, is.URL()+devissuer.DevicePath, url.Values{"user_code": {uc}, "action": {"deny"}}); code != 200 {
		t.Fatalf("deny: %d", code)
	}
	if _, tr := poll(t, is, dc); tr.Error != "access_denied" {
		t.Fatalf("denied: %q", tr.Error)
	}
	dc2, uc2, _ := startDevice(t, is)
	time.Sleep(1100 * time.Millisecond)
	if _, tr := poll(t, is, dc2); tr.Error != "expired_token" {
		t.Fatalf("expired: %q", tr.Error)
	}
	if code, _, _ := post(t, is.URL()+devissuer.DevicePath, url.Values{"user_code": {uc2}, "user": {"a"}}); code != 400 {
		t.Fatalf("approving an expired code: %d", code)
	}
}

func TestDevicePageAndClientChecks(t *testing.T) {
	is, srv := devissuertest.ServeDevice(t, devissuer.DeviceOptions{PollInterval: time.Second})
	_, uc, _ := startDevice(t, is)
	// The page pre-fills the code from the verification_uri_complete link, escaped.
	resp, err := http.Get(is.URL() + devissuer.DevicePath + "?user_code=" + url.QueryEscape(`<script>`+uc))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(b), "<script>") || !strings.Contains(string(b), "Development only") {
		t.Fatalf("page: %d %s", resp.StatusCode, b)
	}
	// A cross-origin form post is refused.
	req, _ := http.NewRequest(http.MethodPost, is.URL()+devissuer.DevicePath, strings.NewReader(url.Values{"user_code": {uc}, "user": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin approve: %d", resp.StatusCode)
	}
	// Approving needs a user name.
	if code, _, _ := post(t, is.URL()+devissuer.DevicePath, url.Values{"user_code": {uc}}); code != 400 {
		t.Fatalf("no user: %d", code)
	}
	// Unknown clients get no device code; GET on the token endpoint is 405;
	// the authorization endpoint serves the UI client only, never the CLI one.
	if code, _, _ := post(t, is.URL()+devissuer.DeviceAuthorizationPath, url.Values{"client_id": {"other"}}); code < 400 {
		t.Fatalf("unknown client: %d", code)
	}
	if r, err := http.Get(is.URL() + devissuer.TokenPath); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET token endpoint: %v %v", r.StatusCode, err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noFollow.Get(srv.URL + "/dev-issuer/authorize?" + url.Values{"client_id": {devissuer.CLIClientID}, "response_type": {"code"},
		"scope": {"openid"}, "redirect_uri": {"http://127.0.0.1:1/ui/callback"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest || r.Header.Get("Location") != "" {
		t.Fatalf("authorize endpoint for the CLI client: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	// The client_credentials grant is not offered.
	if code, tr, _ := post(t, is.URL()+devissuer.TokenPath, url.Values{"client_id": {devissuer.CLIClientID}, "grant_type": {"client_credentials"}}); code == 200 || tr.AccessToken != "" {
		t.Fatalf("client_credentials: %d", code)
	}
}

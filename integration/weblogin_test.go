package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/config"
)

// loginApp is Hydra's login and consent app for the tests: it signs in
// whoever the test says is next (a person typing a password, in effect)
// and grants the requested scopes and audience, with email and groups in
// the access token.
type loginApp struct {
	URL   string
	admin string // Hydra's admin URL
	mu    sync.Mutex
	user  string
	group []string
}

func (a *loginApp) next(user string, groups ...string) {
	a.mu.Lock()
	a.user, a.group = user, groups
	a.mu.Unlock()
}

func startLoginApp(t *testing.T) *loginApp {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &loginApp{URL: "http://" + l.Addr().String()}
	accept := func(w http.ResponseWriter, kind, challenge string, body any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPut, a.admin+"/admin/oauth2/auth/requests/"+kind+"/accept?"+kind+"_challenge="+url.QueryEscape(challenge), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var out struct {
			RedirectTo string `json:"redirect_to"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(raw, &out) != nil || out.RedirectTo == "" {
			http.Error(w, "hydra: "+string(raw), http.StatusBadGateway)
			return
		}
		http.Redirect(w, &http.Request{}, out.RedirectTo, http.StatusFound)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		user := a.user
		a.mu.Unlock()
		accept(w, "login", r.URL.Query().Get("login_challenge"), map[string]any{"subject": user})
	})
	mux.HandleFunc("/consent", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("consent_challenge")
		resp, err := http.Get(a.admin + "/admin/oauth2/auth/requests/consent?consent_challenge=" + url.QueryEscape(ch))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var cr struct {
			Scope    []string `json:"requested_scope"`
			Audience []string `json:"requested_access_token_audience"`
		}
		json.NewDecoder(resp.Body).Decode(&cr)
		resp.Body.Close()
		a.mu.Lock()
		user, groups := a.user, a.group
		a.mu.Unlock()
		accept(w, "consent", ch, map[string]any{
			"grant_scope": cr.Scope, "grant_access_token_audience": cr.Audience,
			"session": map[string]any{"access_token": map[string]any{"email": user, "groups": groups}},
		})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return a
}

// createCodeClient registers an authorization-code client (PKCE is always
// allowed by Hydra) with one redirect URI.
func (h *hydra) createCodeClient(t *testing.T, id, secret, redirect string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_id": id, "client_secret": secret, "client_name": id,
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
		"redirect_uris": []string{redirect}, "scope": "openid email profile",
		"audience": []string{"pgwarden"}, "token_endpoint_auth_method": "client_secret_basic",
	})
	resp, err := http.Post(h.admin+"/admin/clients", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create client %s: %d %s", id, resp.StatusCode, b)
	}
}

// codeFlowToken runs the authorization code flow without a browser (the
// login app signs user in) and returns the access token: the requester's
// psql password in these tests.
func (h *hydra) codeFlowToken(t *testing.T, app *loginApp, clientID, secret, redirect, user string, groups ...string) string {
	t.Helper()
	app.next(user, groups...)
	jar, _ := cookiejar.New(nil)
	var code string
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redirect) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"openid email"}, "state": {"state-" + randomSecret(t)}, "audience": {"pgwarden"}}
	resp, err := c.Get(h.public + "/oauth2/auth?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code == "" {
		t.Fatalf("no code from the flow (last status %d)", resp.StatusCode)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	req, _ := http.NewRequest(http.MethodPost, h.public+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	tr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(tr.Body)
	if json.Unmarshal(b, &out) != nil || out.AccessToken == "" {
		t.Fatalf("token: %d %s", tr.StatusCode, b)
	}
	return out.AccessToken
}

// TestBrowserLoginHydra: an approver signs in to /ui/ through a real
// OpenID Provider (authorization code + PKCE) in headless Chromium — no
// token pasting — approves a held DELETE from the page and signs out; the
// API takes the session cookie only with the CSRF token, and not at all
// after sign-out.
func TestBrowserLoginHydra(t *testing.T) {
	chrome := chromiumPath(t)
	app := startLoginApp(t)
	h := startHydraWith(t, app.URL)
	app.admin = h.admin
	uiSecret, cliSecret := randomSecret(t), randomSecret(t)
	w := startGateway(t, func(c *config.Config) {
		c.Auth.OIDC.Issuer = h.Issuer
		c.Auth.OIDC.Audience = "pgwarden"
		c.Auth.OIDC.ClientID = "pgwarden-ui"
		c.Auth.OIDC.ClientSecret = uiSecret
	})
	h.createCodeClient(t, "pgwarden-ui", uiSecret, w.AdminURL+"/ui/callback")
	const cliRedirect = "http://127.0.0.1:1/callback" // never served: the code is taken from the redirect
	h.createCodeClient(t, "psql-user", cliSecret, cliRedirect)

	// The requester connects with a token from the same IdP and is held.
	const table, n = "ap_weblogin", 7
	approvalTable(t, table, n)
	reqTok := h.codeFlowToken(t, app, "psql-user", cliSecret, cliRedirect, requester, "dba")
	cc := dbaConnConfig(t, w, requester, pgx.QueryExecModeSimpleProtocol)
	cc.Password = reqTok
	notices := make(chan string, 8)
	conn := w.connectWith(t, withNotices(cc, notices))
	id, res := startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)

	ctx, cancel := newBrowser(t, chrome, 90*time.Second)
	defer cancel()
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }

	app.next(approver, "dba")
	var who, state string
	err := chromedp.Run(ctx,
		chromedp.Navigate(w.AdminURL+"/ui/"),
		chromedp.WaitVisible(sel("signin-link"), chromedp.ByQuery),
		chromedp.Click(sel("signin-link"), chromedp.ByQuery),
		chromedp.WaitVisible(sel("whoami"), chromedp.ByQuery),
		chromedp.Text(sel("whoami"), &who, chromedp.ByQuery),
		chromedp.WaitVisible(sel("approval-"+id), chromedp.ByQuery),
		chromedp.Text(sel("state-"+id), &state, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sign in through the IdP: %v", err)
	}
	if who != approver || state != "pending" {
		t.Fatalf("signed in as %q, request %s", who, state)
	}
	// The cookie is HttpOnly: the page's script cannot read it.
	var jsCookies string
	if err := chromedp.Run(ctx, chromedp.Evaluate(`document.cookie`, &jsCookies)); err != nil || strings.Contains(jsCookies, "pgwarden_session") {
		t.Fatalf("document.cookie shows %q (%v)", jsCookies, err)
	}
	notDone(t, res)
	err = chromedp.Run(ctx,
		chromedp.SendKeys(sel("comment-"+id), "approved after SSO", chromedp.ByQuery),
		chromedp.Click(sel("approve-"+id), chromedp.ByQuery),
		chromedp.WaitNotPresent(sel("approval-"+id), chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("approve in the browser: %v", err)
	}
	if r := await(t, res, 30*time.Second); r.err != nil || r.tag.RowsAffected() != n {
		t.Fatalf("the DELETE approved after SSO: %v, %v", r.tag, r.err)
	}
	ac := &approvals.Client{BaseURL: w.AdminURL, Token: reqTok, HTTP: &http.Client{Timeout: 10 * time.Second}}
	if a, err := ac.Get(context.Background(), id); err != nil || a.State != approvals.Executed || a.DecidedBy != approver {
		t.Fatalf("after the approval: %+v %v", a, err)
	}

	// A second held statement, denied from the page with a reason: the
	// client gets 57014 and nothing runs.
	id2, res2 := startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)
	err = chromedp.Run(ctx,
		chromedp.WaitVisible(sel("deny-"+id2), chromedp.ByQuery),
		chromedp.SendKeys(sel("comment-"+id2), "not during business hours", chromedp.ByQuery),
		chromedp.Click(sel("deny-"+id2), chromedp.ByQuery),
		chromedp.WaitNotPresent(sel("approval-"+id2), chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("deny in the browser: %v", err)
	}
	if r := await(t, res2, 30*time.Second); sqlstate(r.err) != "57014" {
		t.Fatalf("the denied DELETE: %v", r.err)
	}
	if a, err := ac.Get(context.Background(), id2); err != nil || a.State != approvals.Denied || a.DecidedBy != approver || a.Comment != "not during business hours" {
		t.Fatalf("after the deny: %+v %v", a, err)
	}

	// The same cookie outside the page: GET works, a POST without the CSRF
	// token is refused, and after sign-out the cookie is worth nothing.
	var cookie string
	err = chromedp.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		cs, err := chromedpCookies(ctx)
		for _, c := range cs {
			if c.name == "pgwarden_session" {
				cookie = c.value
				if !c.httpOnly || c.sameSite != "Strict" {
					return errors.New("session cookie is not HttpOnly, SameSite=Strict")
				}
			}
		}
		return err
	}))
	if err != nil || cookie == "" {
		t.Fatalf("session cookie: %q %v", cookie, err)
	}
	call := func(method, path, csrf string) int {
		req, _ := http.NewRequest(method, w.AdminURL+path, strings.NewReader(`{"comment":"x"}`))
		req.AddCookie(&http.Cookie{Name: "pgwarden_session", Value: cookie})
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := call("GET", "/api/v1/approvals", ""); c != 200 {
		t.Fatalf("GET with the session cookie: %d", c)
	}
	if c := call("POST", "/api/v1/approvals/"+id+"/approve", ""); c != 403 {
		t.Fatalf("POST without the CSRF token: %d, want 403", c)
	}
	if c := call("POST", "/api/v1/approvals/"+id+"/approve", "wrong"); c != 403 {
		t.Fatalf("POST with a wrong CSRF token: %d, want 403", c)
	}
	var signedOut bool
	err = chromedp.Run(ctx,
		chromedp.Click(sel("signout"), chromedp.ByQuery),
		chromedp.WaitVisible(sel("signin-link"), chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('[data-testid="signed-in"]').hidden`, &signedOut),
	)
	if err != nil || !signedOut {
		t.Fatalf("sign out: %v %v", signedOut, err)
	}
	if c := call("GET", "/api/v1/approvals", ""); c != 401 {
		t.Fatalf("GET with the cookie after sign-out: %d, want 401", c)
	}
	usable(t, conn)
}

// withNotices sends cc's NoticeResponses to ch.
func withNotices(cc *pgx.ConnConfig, ch chan string) *pgx.ConnConfig {
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		select {
		case ch <- n.Message:
		default:
		}
	}
	return cc
}

type browserCookie struct {
	name, value, sameSite string
	httpOnly              bool
}

// chromedpCookies lists the browser's cookies (all origins).
func chromedpCookies(ctx context.Context) ([]browserCookie, error) {
	cs, err := storage.GetCookies().Do(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]browserCookie, 0, len(cs))
	for _, c := range cs {
		out = append(out, browserCookie{name: c.Name, value: c.Value, sameSite: c.SameSite.String(), httpOnly: c.HTTPOnly})
	}
	return out, nil
}

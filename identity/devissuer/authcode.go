package devissuer

import (
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636) of the
// development issuer, for the admin page's browser sign-in (admin/weblogin.go):
// zitadel's OpenID Provider serves the authorization endpoint, its callback
// and the token endpoint (authorization_code grant); this file supplies the
// in-memory auth request store, the built-in public client "pgwarden-ui" and
// the development sign-in page, which trusts whatever user and groups are
// typed into it.

const (
	// UIClientID is the built-in public client of the admin page (/ui/):
	// no secret, PKCE S256 required, redirect URIs
	// http://127.0.0.1:PORT/ui/callback and http://localhost:PORT/ui/callback.
	UIClientID = "pgwarden-ui"
	// AuthorizationPath is zitadel's default authorization endpoint path
	// relative to the issuer URL (advertised by discovery);
	// AuthorizationPath + "/callback" is where the sign-in page sends the
	// browser back to once it completed an auth request.
	AuthorizationPath = "/authorize"
	// LoginPath is the development sign-in page's path relative to the
	// issuer URL.
	LoginPath = "/login"

	// authRequestTTL bounds the time from the authorization request to the
	// sign-in; authCodeTTL the time from the sign-in to the code exchange.
	authRequestTTL = 10 * time.Minute
	authCodeTTL    = time.Minute

	uiCallbackPath = "/ui/callback"
	signinCookie   = "pgwarden_dev_signin"
)

// authRequest is one authorization request of the code flow. The store
// hands zitadel copies (snapshot), never the entry it mutates.
type authRequest struct {
	id            string
	clientID      string
	redirectURI   string
	state         string
	nonce         string
	scopes        []string
	responseType  oidc.ResponseType
	responseMode  oidc.ResponseMode
	codeChallenge *oidc.CodeChallenge
	expires       time.Time
	code          string // the authorization code issued for it, if any

	done     bool
	subject  string
	groups   []string
	authTime time.Time
}

func (a *authRequest) snapshot() *authRequest {
	c := *a
	c.scopes, c.groups = slices.Clone(a.scopes), slices.Clone(a.groups)
	if a.codeChallenge != nil {
		cc := *a.codeChallenge
		c.codeChallenge = &cc
	}
	return &c
}

func (a *authRequest) GetID() string  { return a.id }
func (a *authRequest) GetACR() string { return "" }
func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}
func (a *authRequest) GetAudience() []string                 { return []string{Audience, a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.codeChallenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// uiRedirectURI reports whether uri is exactly http://127.0.0.1:PORT/ui/callback
// or http://localhost:PORT/ui/callback: no user info, query or fragment,
// a numeric port. zitadel's glob match ("*" stops only at "/") would also
// let http://127.0.0.1:1@evil.example/ui/callback through.
func uiRedirectURI(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return false
	}
	host, port := u.Hostname(), u.Port()
	if host != "127.0.0.1" && host != "localhost" {
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return false
	}
	return uri == "http://"+host+":"+port+uiCallbackPath
}

// --- op.AuthStorage ---

func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if req.ClientID != UIClientID || !uiRedirectURI(req.RedirectURI) {
		// Redirect-disabled: the error is shown, never sent to that URI.
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri must be http://127.0.0.1:PORT/ui/callback or http://localhost:PORT/ui/callback")
	}
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method S256 is required")
	}
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}
	a := &authRequest{
		id:            newID(),
		clientID:      req.ClientID,
		redirectURI:   req.RedirectURI,
		state:         req.State,
		nonce:         req.Nonce,
		scopes:        slices.Clone(req.Scopes),
		responseType:  req.ResponseType,
		responseMode:  req.ResponseMode,
		codeChallenge: &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod},
		expires:       time.Now().Add(authRequestTTL),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(time.Now())
	if len(s.authReqs) >= maxPending {
		return nil, oidc.ErrServerError().WithDescription("too many sign-ins in progress")
	}
	s.authReqs[a.id] = a
	return a.snapshot(), nil
}

// liveAuthRequest returns the unexpired auth request id. Called with mu held.
func (s *storage) liveAuthRequest(id string) (*authRequest, bool) {
	a, ok := s.authReqs[id]
	if !ok {
		return nil, false
	}
	if time.Now().After(a.expires) {
		delete(s.authReqs, id)
		delete(s.codes, a.code)
		return nil, false
	}
	return a, true
}

func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok {
		return nil, errors.New("devissuer: unknown or expired auth request")
	}
	return a.snapshot(), nil
}

// AuthRequestByCode redeems code: a code is looked up once only, so it
// cannot be exchanged twice, not even by two concurrent token requests
// (a failed exchange, e.g. with a wrong code_verifier, burns it too).
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, errors.New("devissuer: unknown, expired or already used code")
	}
	delete(s.codes, code)
	a, ok := s.liveAuthRequest(id)
	if !ok || !a.done || a.code != code {
		return nil, errors.New("devissuer: unknown, expired or already used code")
	}
	a.code = ""
	c := a.snapshot()
	// Nothing else is served from this request: the exchange is its end.
	delete(s.authReqs, id)
	return c, nil
}

func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok || !a.done {
		return errors.New("devissuer: unknown, expired or unfinished auth request")
	}
	if a.code != "" {
		delete(s.codes, a.code) // the callback was loaded again: only the latest code counts
	}
	a.code = code
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.authReqs[id]; ok {
		delete(s.codes, a.code)
		delete(s.authReqs, id)
	}
	return nil
}

// signIn completes auth request id as subject with groups.
func (s *storage) signIn(id, subject string, groups []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok {
		return errors.New("this sign-in expired or is unknown; start again from the page that sent you here")
	}
	if a.done {
		return errors.New("this sign-in was already completed")
	}
	now := time.Now()
	a.done, a.subject, a.groups, a.authTime = true, subject, slices.Clone(groups), now.Truncate(time.Second)
	a.expires = now.Add(authCodeTTL)
	return nil
}

// cancel drops auth request id and returns where to send the browser
// (the client's redirect URI with error=access_denied).
func (s *storage) cancel(id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok || a.done {
		return "", errors.New("this sign-in expired or is unknown")
	}
	delete(s.authReqs, id)
	q := url.Values{"error": {"access_denied"}}
	if a.state != "" {
		q.Set("state", a.state)
	}
	return a.redirectURI + "?" + q.Encode(), nil
}

// pendingAuthRequest describes auth request id for the sign-in page.
func (s *storage) pendingAuthRequest(id string) (clientID, redirectURI string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.liveAuthRequest(id)
	if !ok {
		return "", "", errors.New("this sign-in expired or is unknown; start again from the page that sent you here")
	}
	if a.done {
		return "", "", errors.New("this sign-in was already completed")
	}
	return a.clientID, a.redirectURI, nil
}

// uiClient is the public client "pgwarden-ui": the authorization_code
// grant with PKCE, JWT access tokens, loopback http redirect URIs.
type uiClient struct{ loginURL string }

func (uiClient) GetID() string                       { return UIClientID }
func (uiClient) RedirectURIs() []string              { return nil }
func (uiClient) PostLogoutRedirectURIs() []string    { return nil }
func (uiClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (uiClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (uiClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (uiClient) GrantTypes() []oidc.GrantType { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c uiClient) LoginURL(id string) string {
	return c.loginURL + "?authRequestID=" + url.QueryEscape(id)
}
func (uiClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (uiClient) IDTokenLifetime() time.Duration       { return time.Hour }
func (uiClient) DevMode() bool                        { return true } // http redirect URIs; uiRedirectURI narrows them
func (uiClient) IsScopeAllowed(string) bool           { return false }
func (uiClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (uiClient) ClockSkew() time.Duration             { return 0 }
func (uiClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (uiClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// RedirectURIGlobs lets zitadel accept any port; CreateAuthRequest then
// checks the URI exactly (uiRedirectURI).
func (uiClient) RedirectURIGlobs() []string {
	return []string{"http://127.0.0.1:*" + uiCallbackPath, "http://localhost:*" + uiCallbackPath}
}
func (uiClient) PostLogoutRedirectURIGlobs() []string { return nil }

// serveSignIn is the development sign-in page of the code flow: it asks
// for a user and groups, no password, and completes the auth request.
// Whoever can reach it can sign in as anyone — acceptable only because the
// development issuer exists for a local `pgwarden dev` stack. The page binds
// the auth request to the browser that loaded it (a cookie the POST must
// present) and refuses cross-origin posts.
func (is *Issuer) serveSignIn(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	action := is.path + LoginPath
	render := func(code int, d signinData) {
		d.Action = action
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		signinTmpl.Execute(w, d)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		id := r.URL.Query().Get("authRequestID")
		client, redirect, err := is.store.pendingAuthRequest(id)
		if err != nil {
			render(http.StatusBadRequest, signinData{Fatal: err.Error()})
			return
		}
		http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: id, Path: action, MaxAge: int(authRequestTTL / time.Second),
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(is.issuer, "https://")})
		render(http.StatusOK, signinData{ID: id, Client: client, Redirect: redirect})
	case http.MethodPost:
		if !is.readForm(w, r) {
			return
		}
		id, user := r.PostForm.Get("id"), strings.TrimSpace(r.PostForm.Get("user"))
		c, err := r.Cookie(signinCookie)
		if id == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(id)) != 1 {
			render(http.StatusBadRequest, signinData{Fatal: "this sign-in was not started in this browser; start again from the page that sent you here"})
			return
		}
		if r.PostForm.Get("action") == "cancel" {
			to, err := is.store.cancel(id)
			if err != nil {
				render(http.StatusBadRequest, signinData{Fatal: err.Error()})
				return
			}
			clearSigninCookie(w, action)
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		groups := formGroups(r)
		if !validUser(user) {
			client, redirect, err := is.store.pendingAuthRequest(id)
			if err != nil {
				render(http.StatusBadRequest, signinData{Fatal: err.Error()})
				return
			}
			render(http.StatusBadRequest, signinData{ID: id, Client: client, Redirect: redirect, User: user,
				Groups: strings.Join(groups, ","), Error: "a user is required"})
			return
		}
		if err := is.store.signIn(id, user, groups); err != nil {
			render(http.StatusBadRequest, signinData{Fatal: err.Error()})
			return
		}
		clearSigninCookie(w, action)
		// zitadel's callback issues the code and redirects to the client.
		http.Redirect(w, r, is.issuer+AuthorizationPath+"/callback?id="+url.QueryEscape(id), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func clearSigninCookie(w http.ResponseWriter, path string) {
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Path: path, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

type signinData struct {
	Action, ID, Client, Redirect, User, Groups, Error, Fatal string
}

var signinTmpl = template.Must(template.New("signin").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>pgwarden development sign-in (DEVELOPMENT ONLY)</title>
<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}label{display:block;margin:.6em 0}.dev{background:#fee;border:2px solid #a00;padding:.6em}</style></head>
<body><h1>pgwarden development sign-in</h1>
<p class="dev"><strong>DEVELOPMENT ONLY:</strong> this issuer belongs to <code>pgwarden dev</code>; there is no password,
it signs you in as whatever user and groups you type. Never use it in front of real data.</p>
{{if .Fatal}}<p style="color:#a00">{{.Fatal}}</p>{{else}}
<p>Signing in to <code>{{.Client}}</code>, which will receive the token at <code>{{.Redirect}}</code>.</p>
{{if .Error}}<p style="color:#a00">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="id" value="{{.ID}}">
<label>User (email) <input name="user" value="{{.User}}" placeholder="bob@example.com" autofocus></label>
<label>Groups <input name="groups" value="{{.Groups}}" placeholder="dba"> (comma-separated)</label>
<button name="action" value="signin">Sign in</button> <button name="action" value="cancel">Cancel</button>
</form>{{end}}
</body></html>
`))

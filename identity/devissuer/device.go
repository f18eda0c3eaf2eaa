package devissuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The device authorization grant (RFC 8628) of the development issuer is
// served by zitadel's OpenID Provider library (pkg/op): discovery, JWKS, the
// device authorization endpoint and the token endpoint (device_code and
// refresh_token grants) are the library's; this file only supplies its
// storage (in memory), the one built-in public client and the development
// verification page.

const (
	// CLIClientID is the built-in public client of `pgwarden login`.
	CLIClientID = "pgwarden-cli"
	// Audience is the "aud" of device-flow access tokens (besides the
	// client id zitadel adds), the same audience `pgwarden token` uses.
	Audience = "pgwarden"
	// DevicePath is the verification page's path relative to the issuer URL.
	DevicePath = "/device"
	// TokenPath and DeviceAuthorizationPath are zitadel's default endpoint
	// paths relative to the issuer URL (advertised by discovery).
	TokenPath               = "/oauth/token"
	DeviceAuthorizationPath = "/device_authorization"

	maxPending   = 1000 // bound on device codes and refresh tokens kept in memory
	maxFormBytes = 4096
)

// DeviceOptions tune the device grant. Zero fields take the defaults.
type DeviceOptions struct {
	AccessTTL    time.Duration // access token lifetime; default 1h, at most MaxTTL
	RefreshTTL   time.Duration // refresh token lifetime; default 24h
	CodeTTL      time.Duration // device/user code lifetime; default 10m
	PollInterval time.Duration // polling interval told to clients; default 5s, at least 1s
}

func (o DeviceOptions) withDefaults() DeviceOptions {
	if o.AccessTTL <= 0 || o.AccessTTL > MaxTTL {
		o.AccessTTL = time.Hour
	}
	if o.RefreshTTL <= 0 {
		o.RefreshTTL = 24 * time.Hour
	}
	if o.CodeTTL <= 0 {
		o.CodeTTL = 10 * time.Minute
	}
	if o.PollInterval < time.Second {
		o.PollInterval = 5 * time.Second
	}
	o.PollInterval = o.PollInterval.Truncate(time.Second)
	return o
}

// SetDeviceOptions changes the device grant's lifetimes and poll interval.
// Call it before Handler.
func (is *Issuer) SetDeviceOptions(o DeviceOptions) {
	is.devOpts = o.withDefaults()
}

// deviceAuth is one pending device authorization.
type deviceAuth struct {
	clientID string
	userCode string
	scopes   []string
	expires  time.Time
	lastPoll time.Time
	done     bool
	denied   bool
	subject  string
	groups   []string
	authTime time.Time
}

// refreshGrant is what a refresh token stands for. It implements
// op.RefreshTokenRequest.
type refreshGrant struct {
	clientID string
	subject  string
	groups   []string
	scopes   []string
	authTime time.Time
	expires  time.Time
}

func (g *refreshGrant) GetAMR() []string            { return []string{"pwd"} }
func (g *refreshGrant) GetAudience() []string       { return []string{Audience, g.clientID} }
func (g *refreshGrant) GetAuthTime() time.Time      { return g.authTime }
func (g *refreshGrant) GetClientID() string         { return g.clientID }
func (g *refreshGrant) GetScopes() []string         { return g.scopes }
func (g *refreshGrant) GetSubject() string          { return g.subject }
func (g *refreshGrant) SetCurrentScopes(s []string) { g.scopes = s }

// storage is the in-memory op.Storage + op.DeviceAuthorizationStorage.
type storage struct {
	is *Issuer

	mu      sync.Mutex
	devices map[string]*deviceAuth   // by device code
	byUser  map[string]string        // user code -> device code
	refresh map[string]*refreshGrant // by sha256 of the refresh token
	granted map[string][]string      // subject -> groups of its latest approval

	authReqs map[string]*authRequest // authorization code flow, by auth request id
	codes    map[string]string       // authorization code -> auth request id
}

func newStorage(is *Issuer) *storage {
	return &storage{
		is:      is,
		devices: map[string]*deviceAuth{},
		byUser:  map[string]string{},
		refresh: map[string]*refreshGrant{},
		granted: map[string][]string{},

		authReqs: map[string]*authRequest{},
		codes:    map[string]string{},
	}
}

var errNotSupported = errors.New("devissuer: only the device_code, authorization_code and refresh_token grants are served")

// purge drops expired entries. Called with mu held.
func (s *storage) purge(now time.Time) {
	for dc, d := range s.devices {
		if now.After(d.expires.Add(time.Minute)) {
			delete(s.devices, dc)
			delete(s.byUser, d.userCode)
		}
	}
	for k, g := range s.refresh {
		if now.After(g.expires) {
			delete(s.refresh, k)
		}
	}
	for id, a := range s.authReqs {
		if now.After(a.expires) {
			delete(s.authReqs, id)
			delete(s.codes, a.code)
		}
	}
}

// --- op.DeviceAuthorizationStorage ---

func (s *storage) StoreDeviceAuthorization(ctx context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(time.Now())
	if len(s.devices) >= maxPending {
		return errors.New("devissuer: too many pending device authorizations")
	}
	if _, dup := s.byUser[userCode]; dup {
		return op.ErrDuplicateUserCode
	}
	s.devices[deviceCode] = &deviceAuth{clientID: clientID, userCode: userCode, scopes: slices.Clone(scopes), expires: expires}
	s.byUser[userCode] = deviceCode
	return nil
}

// errSlowDown makes zitadel answer "slow_down" (it maps a deadline error of
// this method to it).
var errSlowDown = fmt.Errorf("devissuer: polling faster than the interval: %w", context.DeadlineExceeded)

func (s *storage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceCode]
	if !ok || d.clientID != clientID {
		return nil, errors.New("devissuer: unknown device code")
	}
	now := time.Now()
	// RFC 8628 §3.5: a client polling faster than the interval gets
	// slow_down. 80% of the interval tolerates timer jitter.
	if !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < s.is.devOpts.PollInterval*8/10 {
		d.lastPoll = now
		return nil, errSlowDown
	}
	d.lastPoll = now
	st := &op.DeviceAuthorizationState{
		ClientID: d.clientID,
		Audience: []string{Audience},
		Scopes:   slices.Clone(d.scopes),
		Expires:  d.expires,
		Done:     d.done,
		Denied:   d.denied,
	}
	if d.done {
		st.Subject, st.AMR, st.AuthTime = d.subject, []string{"pwd"}, d.authTime
		// A device code is good for one token response.
		delete(s.devices, deviceCode)
		delete(s.byUser, d.userCode)
	}
	return st, nil
}

// decide approves (groups != nil or empty) or denies the pending
// authorization of userCode.
func (s *storage) decide(userCode, subject string, groups []string, approve bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc, ok := s.byUser[normalizeUserCode(userCode)]
	if !ok {
		return errors.New("unknown or already used code")
	}
	d := s.devices[dc]
	if time.Now().After(d.expires) {
		return errors.New("the code has expired; start `pgwarden login` again")
	}
	if d.done || d.denied {
		return errors.New("the code was already used")
	}
	if !approve {
		d.denied = true
		return nil
	}
	d.done, d.subject, d.groups, d.authTime = true, subject, slices.Clone(groups), time.Now().Truncate(time.Second)
	s.granted[subject] = slices.Clone(groups)
	return nil
}

func normalizeUserCode(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	c = strings.ReplaceAll(c, " ", "")
	if len(c) == 8 && !strings.Contains(c, "-") {
		c = c[:4] + "-" + c[4:]
	}
	return c
}

// --- op.AuthStorage: the authorization code flow is in authcode.go ---

func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	return newID(), time.Now().Add(s.is.devOpts.AccessTTL), nil
}

func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	g := &refreshGrant{subject: req.GetSubject(), scopes: slices.Clone(req.GetScopes())}
	switch r := req.(type) {
	case *refreshGrant:
		g.clientID, g.groups, g.authTime = r.clientID, r.groups, r.authTime
	case *op.DeviceAuthorizationState:
		g.clientID, g.authTime = r.ClientID, r.AuthTime
		s.mu.Lock()
		g.groups = slices.Clone(s.granted[r.Subject])
		s.mu.Unlock()
	default:
		return "", "", time.Time{}, errNotSupported
	}
	now := time.Now()
	g.expires = now.Add(s.is.devOpts.RefreshTTL)
	tok := newID() + newID()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	if len(s.refresh) >= maxPending {
		return "", "", time.Time{}, errors.New("devissuer: too many refresh tokens")
	}
	if currentRefreshToken != "" {
		delete(s.refresh, hashToken(currentRefreshToken)) // rotation: a refresh token is used once
	}
	s.refresh[hashToken(tok)] = g
	return newID(), tok, now.Add(s.is.devOpts.AccessTTL), nil
}

func (s *storage) TokenRequestByRefreshToken(ctx context.Context, refreshToken string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.refresh[hashToken(refreshToken)]
	if !ok || time.Now().After(g.expires) {
		return nil, op.ErrInvalidRefreshToken
	}
	c := *g
	c.scopes = slices.Clone(g.scopes)
	return &c, nil
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(ctx context.Context, token, userID, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refresh, hashToken(token))
	return nil
}

func (s *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.refresh[hashToken(token)]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return g.subject, hashToken(token), nil
}

type sigKey struct{ is *Issuer }

func (k sigKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k sigKey) Key() any                                    { return k.is.key }
func (k sigKey) ID() string                                  { return k.is.kid }

type pubKey struct{ is *Issuer }

func (k pubKey) ID() string                         { return k.is.kid }
func (k pubKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k pubKey) Use() string                        { return "sig" }
func (k pubKey) Key() any                           { return &k.is.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return sigKey{s.is}, nil }
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}
func (s *storage) KeySet(context.Context) ([]op.Key, error) { return []op.Key{pubKey{s.is}}, nil }

// --- op.OPStorage ---

func (s *storage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	switch clientID {
	case CLIClientID:
		return cliClient{}, nil
	case UIClientID:
		return uiClient{loginURL: s.is.path + LoginPath}, nil
	}
	return nil, errors.New("devissuer: unknown client")
}

func (s *storage) AuthorizeClientIDSecret(context.Context, string, string) error {
	return errors.New("devissuer: no confidential clients")
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token (scope openid) with the same
// identity claims as the access token.
func (s *storage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	ui.Subject = req.GetSubject()
	ui.Email = req.GetSubject()
	ui.PreferredUsername = req.GetSubject()
	return nil
}

func (s *storage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errNotSupported
}
func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errNotSupported
}

func (s *storage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	s.mu.Lock()
	groups := slices.Clone(s.granted[userID])
	s.mu.Unlock()
	return identityClaims(userID, groups), nil
}

// GetPrivateClaimsFromRequest gives device-flow access tokens the claims
// Mint puts into `pgwarden token` tokens (email, preferred_username, groups).
func (s *storage) GetPrivateClaimsFromRequest(ctx context.Context, req op.TokenRequest, scopes []string) (map[string]any, error) {
	switch r := req.(type) {
	case *refreshGrant:
		return identityClaims(r.subject, r.groups), nil
	case *authRequest:
		return identityClaims(r.subject, r.groups), nil
	}
	return s.GetPrivateClaimsFromScopes(ctx, req.GetSubject(), "", scopes)
}

func identityClaims(user string, groups []string) map[string]any {
	if groups == nil {
		groups = []string{}
	}
	return map[string]any{"email": user, "preferred_username": user, "groups": groups}
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNotSupported
}
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNotSupported
}
func (s *storage) Health(context.Context) error { return nil }

// cliClient is the public client "pgwarden-cli": device_code and
// refresh_token grants, JWT access tokens.
type cliClient struct{}

func (cliClient) GetID() string                       { return CLIClientID }
func (cliClient) RedirectURIs() []string              { return nil }
func (cliClient) PostLogoutRedirectURIs() []string    { return nil }
func (cliClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (cliClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodNone }
func (cliClient) ResponseTypes() []oidc.ResponseType  { return nil }
func (cliClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
}
func (cliClient) LoginURL(string) string               { return "" }
func (cliClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (cliClient) IDTokenLifetime() time.Duration       { return time.Hour }
func (cliClient) DevMode() bool                        { return true }
func (cliClient) IsScopeAllowed(string) bool           { return false }
func (cliClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (cliClient) ClockSkew() time.Duration             { return 0 }
func (cliClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (cliClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// newProvider builds the zitadel OpenID Provider for this issuer.
func (is *Issuer) newProvider() (*op.Provider, error) {
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, err
	}
	cfg := &op.Config{
		CryptoKey:             cryptoKey,
		CodeMethodS256:        true,
		GrantTypeRefreshToken: true,
		SupportedClaims:       []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "email", "groups", "preferred_username"},
		SupportedScopes:       []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, oidc.ScopeEmail, oidc.ScopeProfile},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     is.devOpts.CodeTTL,
			PollInterval: is.devOpts.PollInterval,
			UserFormPath: is.path + DevicePath,
			UserCode:     op.UserCodeBase20,
		},
	}
	opts := []op.Option{op.WithLogger(slog.New(slog.DiscardHandler))}
	if strings.HasPrefix(is.issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	return op.NewProvider(cfg, is.store, op.StaticIssuer(is.issuer), opts...)
}

// servePage is the development verification page: a form asking for the
// user code, a user name and groups. Whoever can reach it can approve any
// pending code as anyone — acceptable only because the development issuer
// exists for a local `pgwarden dev` stack.
func (is *Issuer) servePage(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		pageTmpl.Execute(w, pageData{Action: is.path + DevicePath, UserCode: r.URL.Query().Get("user_code")})
	case http.MethodPost:
		if !is.readForm(w, r) {
			return
		}
		code, user := r.PostForm.Get("user_code"), strings.TrimSpace(r.PostForm.Get("user"))
		approve := r.PostForm.Get("action") != "deny"
		groups := formGroups(r)
		var err error
		if approve && !validUser(user) {
			err = errors.New("a user name is required")
		} else {
			err = is.store.decide(code, user, groups, approve)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			pageTmpl.Execute(w, pageData{Action: is.path + DevicePath, UserCode: code, User: user, Error: err.Error()})
			return
		}
		msg := "Approved. Return to your terminal."
		if !approve {
			msg = "Denied."
		}
		pageTmpl.Execute(w, pageData{Done: msg})
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// pageHeaders are the headers of the development sign-in and device pages.
func pageHeaders(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
}

// readForm parses a page's POST form (bounded by maxFormBytes), refusing a
// cross-origin post: a cross-site form must not sign in or approve codes
// in a developer's browser. false: the answer is written.
func (is *Issuer) readForm(w http.ResponseWriter, r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !sameOrigin(o, is.issuer) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return false
	}
	return true
}

// formGroups reads the comma-separated groups field.
func formGroups(r *http.Request) []string {
	var groups []string
	for _, g := range strings.Split(r.PostForm.Get("groups"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	return groups
}

// validUser reports whether user is a non-empty name without control characters.
func validUser(user string) bool {
	return user != "" && !strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func sameOrigin(origin, issuer string) bool {
	o, err1 := url.Parse(origin)
	i, err2 := url.Parse(issuer)
	return err1 == nil && err2 == nil && o.Scheme == i.Scheme && o.Host == i.Host
}

type pageData struct {
	Action, UserCode, User, Error, Done string
}

var pageTmpl = template.Must(template.New("device").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>pgwarden development login</title>
<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}label{display:block;margin:.6em 0}</style></head>
<body><h1>pgwarden development login</h1>
<p><strong>Development only:</strong> this issuer belongs to <code>pgwarden dev</code>; it trusts whatever
user and groups you type. Never use it in front of real data.</p>
{{if .Done}}<p>{{.Done}}</p>{{else}}
{{if .Error}}<p style="color:#a00">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<label>Code <input name="user_code" value="{{.UserCode}}" required autocomplete="off"></label>
<label>User <input name="user" value="{{.User}}" placeholder="alice@example.com"></label>
<label>Groups <input name="groups" placeholder="analyst"> (comma-separated)</label>
<button name="action" value="approve">Approve</button> <button name="action" value="deny">Deny</button>
</form>{{end}}
</body></html>
`))

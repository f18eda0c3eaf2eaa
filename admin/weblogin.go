package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/httpjson"
)

// WebLogin configures browser sign-in to /ui/ with the OIDC authorization
// code flow and PKCE (S256). After the code exchange the access token is
// verified like an API bearer token (same issuer, audience, username and
// groups claims); the browser then holds only an opaque session cookie.
type WebLogin struct {
	Issuer       string // auth.oidc.issuer
	ClientID     string
	ClientSecret string       // "" for a public client (PKCE alone)
	Audience     string       // sent as the audience parameter (Hydra, Auth0 need it for the access token's aud)
	PublicURL    string       // admin.public_url: the callback is PublicURL + "/ui/callback"
	HTTPClient   *http.Client // talks to the issuer (auth.oidc.ca_file)
	// MaxSession caps a browser session below the token's own expiry
	// (default 8h): the session never outlives the IdP's token.
	MaxSession time.Duration
}

// Cookie names. The session cookie is SameSite=Strict; the login cookie
// must survive the IdP's cross-site redirect back to the callback, so it
// is Lax, lives 10 minutes and binds the flow to this browser.
const (
	sessionCookie = "pgwarden_session"
	loginCookie   = "pgwarden_login"
	csrfHeader    = "X-CSRF-Token"
	loginTTL      = 10 * time.Minute
	maxPending    = 10000 // login flows in progress; more are refused (503)
	maxSessions   = 100000
	// defaultMaxSession caps a browser session (WebLogin.MaxSession, SAML).
	defaultMaxSession = 8 * time.Hour
)

// webSession is a signed-in browser: who, until when, and its CSRF token.
type webSession struct {
	principal identity.Principal
	expires   time.Time
	csrf      string
}

type pendingLogin struct {
	verifier string // PKCE
	expires  time.Time
}

func (p pendingLogin) expiry() time.Time { return p.expires }

// expiring is a sign-in in progress (OIDC or SAML), kept until its expiry.
type expiring interface{ expiry() time.Time }

// putPending stores v under key in m (guarded by mu), first dropping the
// expired entries; false when maxPending sign-ins are already in progress.
func putPending[V expiring](mu *sync.Mutex, m map[string]V, key string, v V) bool {
	now := time.Now()
	mu.Lock()
	defer mu.Unlock()
	for k, e := range m {
		if now.After(e.expiry()) {
			delete(m, k)
		}
	}
	if len(m) >= maxPending {
		return false
	}
	m[key] = v
	return true
}

// takePending removes the entry under key (one use) and returns it if it
// has not expired.
func takePending[V expiring](mu *sync.Mutex, m map[string]V, key string) (V, bool) {
	mu.Lock()
	v, ok := m[key]
	delete(m, key)
	mu.Unlock()
	if !ok || time.Now().After(v.expiry()) {
		var zero V
		return zero, false
	}
	return v, true
}

type webAuth struct {
	cfg    WebLogin
	secure bool // public_url is https: cookies get Secure
	log    func(msg string, err error)

	once     sync.Mutex
	oauth    *oauth2.Config // nil until discovery succeeded
	verifier identity.Verifier

	logins []string // sign-in routes, preferred first (/ui/login, /saml/login); guarded by mu

	mu       sync.Mutex
	pending  map[string]pendingLogin // state -> flow
	sessions map[string]*webSession  // cookie value -> session
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("admin: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// EnableWebLogin mounts /ui/login, /ui/callback, /ui/session and
// /ui/logout, and makes the API accept the session cookie (with the CSRF
// header on every request that is not GET or HEAD) besides bearer tokens.
func (s *Server) EnableWebLogin(cfg WebLogin) error {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.PublicURL == "" {
		return errors.New("admin: web login needs the issuer, a client id and the public URL")
	}
	if cfg.MaxSession <= 0 {
		cfg.MaxSession = defaultMaxSession
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	wa, err := s.webSessions(cfg.PublicURL)
	if err != nil {
		return err
	}
	wa.cfg = cfg
	wa.verifier = s.opts.Verifier
	s.mux.HandleFunc("GET /ui/login", wa.login)
	s.mux.HandleFunc("GET /ui/callback", wa.callback)
	wa.addLogin("/ui/login")
	return nil
}

// webSessions returns the server's browser session store, creating it and
// mounting /ui/session and /ui/logout on first use. Both sign-ins (OIDC
// and SAML) share it: a session is a session, whichever IdP vouched.
func (s *Server) webSessions(publicURL string) (*webAuth, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("admin: public URL must be an absolute http(s) URL")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.web != nil {
		return s.web, nil
	}
	wa := &webAuth{
		cfg: WebLogin{PublicURL: publicURL, MaxSession: defaultMaxSession}, secure: u.Scheme == "https",
		pending: map[string]pendingLogin{}, sessions: map[string]*webSession{},
		log: func(msg string, err error) { s.log.Warn().Err(err).Msg(msg) },
	}
	s.web = wa
	s.mux.HandleFunc("GET /ui/session", wa.session)
	s.mux.HandleFunc("POST /ui/logout", wa.logout)
	return wa, nil
}

// oauthConfig discovers the issuer's endpoints once (retried on the next
// request while it fails).
func (wa *webAuth) oauthConfig(ctx context.Context) (*oauth2.Config, error) {
	wa.once.Lock()
	defer wa.once.Unlock()
	if wa.oauth != nil {
		return wa.oauth, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, wa.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, wa.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	wa.oauth = &oauth2.Config{
		ClientID: wa.cfg.ClientID, ClientSecret: wa.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: strings.TrimRight(wa.cfg.PublicURL, "/") + "/ui/callback",
		Scopes:      []string{oidc.ScopeOpenID, "email", "profile"},
	}
	if wa.cfg.ClientSecret == "" {
		wa.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	return wa.oauth, nil
}

func (wa *webAuth) cookie(name, value string, maxAge time.Duration, same http.SameSite) *http.Cookie {
	path := "/" // the session cookie goes to /api/v1 too
	switch name {
	case loginCookie:
		path = "/ui/"
	case samlCookie:
		path = "/saml/"
	}
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: wa.secure, SameSite: same}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else {
		c.MaxAge = -1
	}
	return c
}

// login starts the code flow: state and PKCE verifier kept server-side,
// the state also in a short-lived cookie that the callback must present.
func (wa *webAuth) login(w http.ResponseWriter, r *http.Request) {
	oc, err := wa.oauthConfig(r.Context())
	if err != nil {
		wa.log("web login: OIDC discovery failed", err)
		http.Error(w, "the identity provider cannot be reached; try again shortly", http.StatusServiceUnavailable)
		return
	}
	state, verifier := randomToken(), oauth2.GenerateVerifier()
	if !putPending(&wa.mu, wa.pending, state, pendingLogin{verifier: verifier, expires: time.Now().Add(loginTTL)}) {
		http.Error(w, "too many sign-ins in progress; try again shortly", http.StatusServiceUnavailable)
		return
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if wa.cfg.Audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", wa.cfg.Audience))
	}
	http.SetCookie(w, wa.cookie(loginCookie, state, loginTTL, http.SameSiteLaxMode))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, oc.AuthCodeURL(state, opts...), http.StatusFound)
}

var landing = template.Must(template.New("landing").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pgwarden: {{.}}</title>
<meta http-equiv="refresh" content="0;url=/ui/"></head>
<body><p>{{.}} <a href="/ui/">Continue to pgwarden</a></p></body></html>
`))

// callback finishes the code flow. It answers with a page that moves on
// to /ui/ itself: a SameSite=Strict cookie set here is not sent on a
// redirect that is still part of the IdP's cross-site navigation.
func (wa *webAuth) callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fail := func(code int, msg string) {
		http.SetCookie(w, wa.cookie(loginCookie, "", 0, http.SameSiteLaxMode))
		http.Error(w, "sign-in failed: "+msg, code)
	}
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(loginCookie)
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		fail(http.StatusBadRequest, "this sign-in was not started from this browser (start again at /ui/login)")
		return
	}
	p, ok := takePending(&wa.mu, wa.pending, state)
	if !ok {
		fail(http.StatusBadRequest, "the sign-in expired or was already used (start again at /ui/login)")
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusForbidden, "the identity provider refused: "+sanitizeParam(e))
		return
	}
	code := q.Get("code")
	if code == "" {
		fail(http.StatusBadRequest, "no authorization code")
		return
	}
	oc, err := wa.oauthConfig(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, "the identity provider cannot be reached")
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), wa.cfg.HTTPClient), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		wa.log("web login: code exchange failed", err)
		fail(http.StatusBadGateway, "the code could not be exchanged")
		return
	}
	pr, err := wa.verifier.Verify(r.Context(), tok.AccessToken, "")
	if err != nil {
		msg := "the token was refused"
		if ref, ok := identity.AsRefusal(err); ok {
			msg = ref.Short()
		}
		wa.log("web login: token refused", err)
		fail(http.StatusForbidden, msg)
		return
	}
	expires := time.Now().Add(wa.cfg.MaxSession)
	if !pr.Expiry.IsZero() && pr.Expiry.Before(expires) {
		expires = pr.Expiry // never outlive the IdP's token
	}
	if err := wa.startSession(w, pr, expires); err != nil {
		fail(http.StatusServiceUnavailable, err.Error())
		return
	}
	http.SetCookie(w, wa.cookie(loginCookie, "", 0, http.SameSiteLaxMode))
	wa.writeLanding(w, "Signed in as "+pr.User+".")
}

var errTooManySessions = errors.New("too many browser sessions")

// startSession creates the server-side session of a browser that just
// signed in (OIDC callback or SAML ACS) and sets its cookie.
func (wa *webAuth) startSession(w http.ResponseWriter, p identity.Principal, expires time.Time) error {
	id := randomToken()
	wa.mu.Lock()
	wa.sweepLocked()
	if len(wa.sessions) >= maxSessions {
		wa.mu.Unlock()
		return errTooManySessions
	}
	wa.sessions[id] = &webSession{principal: p, expires: expires, csrf: randomToken()}
	wa.mu.Unlock()
	http.SetCookie(w, wa.cookie(sessionCookie, id, time.Until(expires), http.SameSiteStrictMode))
	return nil
}

// writeLanding answers with the page that moves on to /ui/ (see callback).
func (wa *webAuth) writeLanding(w http.ResponseWriter, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = landing.Execute(w, msg)
}

func (wa *webAuth) sweepLocked() {
	now := time.Now()
	for k, s := range wa.sessions {
		if now.After(s.expires) {
			delete(wa.sessions, k)
		}
	}
}

// lookup returns the live session of the request's cookie.
func (wa *webAuth) lookup(r *http.Request) (string, *webSession) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	wa.mu.Lock()
	defer wa.mu.Unlock()
	s := wa.sessions[c.Value]
	if s == nil {
		return "", nil
	}
	if time.Now().After(s.expires) {
		delete(wa.sessions, c.Value)
		return "", nil
	}
	return c.Value, s
}

// checkCSRF reports whether a state-changing request carries the
// session's CSRF token.
func checkCSRF(r *http.Request, s *webSession) bool {
	got := r.Header.Get(csrfHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// session tells the page who is signed in, and the CSRF token it must
// send with every POST.
func (wa *webAuth) session(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	_, s := wa.lookup(r)
	if s == nil {
		wa.mu.Lock()
		logins := append([]string(nil), wa.logins...)
		wa.mu.Unlock()
		body := map[string]any{"error": "not signed in", "logins": logins}
		if len(logins) > 0 {
			body["login"] = logins[0]
		}
		httpjson.Compact(w, http.StatusUnauthorized, body)
		return
	}
	httpjson.Compact(w, http.StatusOK, map[string]any{
		"user": s.principal.User, "groups": s.principal.Groups,
		"expires_at": s.expires.UTC().Format(time.RFC3339), "csrf": s.csrf,
	})
}

// logout ends the server-side session: the cookie is worthless afterwards,
// even if a copy of it survives somewhere.
func (wa *webAuth) logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	id, s := wa.lookup(r)
	if s == nil {
		http.SetCookie(w, wa.cookie(sessionCookie, "", 0, http.SameSiteStrictMode))
		httpjson.Compact(w, http.StatusOK, map[string]string{"status": "signed out"})
		return
	}
	if !checkCSRF(r, s) {
		writeError(w, http.StatusForbidden, "missing or wrong CSRF token ("+csrfHeader+")")
		return
	}
	wa.mu.Lock()
	delete(wa.sessions, id)
	wa.mu.Unlock()
	http.SetCookie(w, wa.cookie(sessionCookie, "", 0, http.SameSiteStrictMode))
	httpjson.Compact(w, http.StatusOK, map[string]string{"status": "signed out"})
}

// sanitizeParam keeps an IdP error code printable and short.
func sanitizeParam(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// addLogin offers a sign-in route on the page (OIDC first when both are on).
func (wa *webAuth) addLogin(route string) {
	wa.mu.Lock()
	defer wa.mu.Unlock()
	if route == "/ui/login" {
		wa.logins = append([]string{route}, wa.logins...)
		return
	}
	wa.logins = append(wa.logins, route)
}

package admin

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/pgwarden/pgwarden/identity"
)

// TokenIssuer mints pgwarden's own short-lived tokens (ES256, published at
// /.well-known/jwks.json) for a principal a SAML IdP vouched for; the
// Postgres listener and the API accept them like an OIDC token.
type TokenIssuer interface {
	Issue(identity.Principal) (token string, expires time.Time, err error)
}

// SAMLOptions configures pgwarden as a SAML 2.0 service provider
// (auth.saml). PublicURL is admin.public_url: the ACS is
// PublicURL/saml/acs and the SP metadata PublicURL/saml/metadata.
type SAMLOptions struct {
	EntityID     string // the SP's entity id: the assertions' audience
	MetadataURL  string // the IdP's metadata, fetched (exactly one of these two)
	MetadataFile string
	UsernameAttr string // default "email"
	GroupsAttr   string // default "groups"
	CertFile     string // the SP's signing key pair ("" both: requests unsigned, no key in the metadata)
	KeyFile      string
	PublicURL    string
	HTTPClient   *http.Client // fetches MetadataURL
	Tokens       TokenIssuer  // for `pgwarden login --saml` (cli_port); nil: no CLI logins
}

const (
	samlCookie       = "pgwarden_saml"
	samlMetadataTTL  = time.Hour // a fetched IdP metadata is refreshed after this (the old one kept if that fails)
	maxSAMLFormBytes = 512 << 10
)

type samlPending struct {
	requestID string
	cliPort   int    // 0: a browser sign-in
	cliState  string // echoed to the CLI's callback
	expires   time.Time
}

func (p samlPending) expiry() time.Time { return p.expires }

type samlSP struct {
	o      SAMLOptions
	wa     *webAuth
	log    func(msg string, err error)
	key    crypto.Signer
	cert   *x509.Certificate
	acs    url.URL
	md     url.URL
	replay *replayCache

	mdMu      sync.Mutex
	idp       *saml.EntityDescriptor
	idpLoaded time.Time

	mu      sync.Mutex
	pending map[string]samlPending // RelayState -> request
}

// EnableSAML mounts GET /saml/metadata, GET /saml/login and POST
// /saml/acs. A good assertion opens a browser session like the OIDC
// sign-in does (the session store is created here if EnableWebLogin was
// not called). Responses must be signed (the Response or the assertion),
// answer a request this server made from this browser (no IdP-initiated
// sign-in), name this SP as audience and the ACS as recipient, be within
// their validity window, and not have been seen before.
func (s *Server) EnableSAML(o SAMLOptions) error {
	_, err := s.enableSAML(o)
	return err
}

func (s *Server) enableSAML(o SAMLOptions) (*samlSP, error) {
	if o.EntityID == "" || o.PublicURL == "" {
		return nil, errors.New("admin: SAML needs the entity id and the public URL")
	}
	if (o.MetadataURL == "") == (o.MetadataFile == "") {
		return nil, errors.New("admin: SAML needs exactly one of the IdP metadata URL and file")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("admin: SAML cert_file and key_file go together")
	}
	if o.UsernameAttr == "" {
		o.UsernameAttr = "email"
	}
	if o.GroupsAttr == "" {
		o.GroupsAttr = "groups"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	base := strings.TrimRight(o.PublicURL, "/")
	acs, err := url.Parse(base + "/saml/acs")
	if err != nil {
		return nil, errors.New("admin: public URL must be an absolute http(s) URL")
	}
	md, _ := url.Parse(base + "/saml/metadata")
	wa, err := s.webSessions(o.PublicURL)
	if err != nil {
		return nil, err
	}
	wa.addLogin("/saml/login")
	sp := &samlSP{
		o: o, wa: wa, acs: *acs, md: *md, replay: newReplayCache(),
		pending: map[string]samlPending{},
		log:     func(msg string, err error) { s.log.Warn().Err(err).Msg(msg) },
	}
	if o.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, errors.New("admin: SAML key pair: " + err.Error())
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, errors.New("admin: SAML key is not a signing key")
		}
		sp.key, sp.cert = signer, pair.Leaf
		if sp.cert == nil {
			if sp.cert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, errors.New("admin: SAML certificate: " + err.Error())
			}
		}
	}
	if o.MetadataFile != "" {
		data, err := os.ReadFile(o.MetadataFile)
		if err != nil {
			return nil, errors.New("admin: SAML IdP metadata: " + err.Error())
		}
		idp, err := parseIDPMetadata(data)
		if err != nil {
			return nil, errors.New("admin: SAML IdP metadata " + o.MetadataFile + ": " + err.Error())
		}
		sp.idp, sp.idpLoaded = idp, time.Now()
	} else if u, err := url.Parse(o.MetadataURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("admin: SAML IdP metadata URL must be an absolute http(s) URL")
	}
	s.mux.HandleFunc("GET /saml/metadata", sp.metadata)
	s.mux.HandleFunc("GET /saml/login", sp.login)
	s.mux.HandleFunc("POST /saml/acs", sp.acsHandler)
	return sp, nil
}

// idpMetadata returns the IdP's metadata, fetching it on first use and
// again after samlMetadataTTL (keeping the one it has while that fails).
func (sp *samlSP) idpMetadata(ctx context.Context) (*saml.EntityDescriptor, error) {
	sp.mdMu.Lock()
	defer sp.mdMu.Unlock()
	if sp.idp != nil && (sp.o.MetadataURL == "" || time.Since(sp.idpLoaded) < samlMetadataTTL) {
		return sp.idp, nil
	}
	idp, err := fetchIDPMetadata(ctx, sp.o.HTTPClient, sp.o.MetadataURL)
	if err != nil {
		if sp.idp != nil {
			sp.log("SAML: refreshing the IdP metadata failed; keeping the previous one", err)
			sp.idpLoaded = time.Now().Add(-samlMetadataTTL + time.Minute) // retry in a minute
			return sp.idp, nil
		}
		return nil, err
	}
	sp.idp, sp.idpLoaded = idp, time.Now()
	return idp, nil
}

const maxMetadataBytes = 4 << 20

func fetchIDPMetadata(ctx context.Context, c *http.Client, u string) (*saml.EntityDescriptor, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("IdP metadata: HTTP " + resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMetadataBytes {
		return nil, errors.New("IdP metadata: larger than 4 MiB")
	}
	return parseIDPMetadata(data)
}

// parseIDPMetadata reads an EntityDescriptor, or the one IdP of an
// EntitiesDescriptor.
func parseIDPMetadata(data []byte) (*saml.EntityDescriptor, error) {
	var ed saml.EntityDescriptor
	errOne := xml.Unmarshal(data, &ed)
	if errOne == nil && len(ed.IDPSSODescriptors) > 0 {
		return &ed, nil
	}
	var all saml.EntitiesDescriptor
	if err := xml.Unmarshal(data, &all); err == nil {
		var found *saml.EntityDescriptor
		for i := range all.EntityDescriptors {
			if len(all.EntityDescriptors[i].IDPSSODescriptors) > 0 {
				if found != nil {
					return nil, errors.New("IdP metadata: more than one IdP")
				}
				found = &all.EntityDescriptors[i]
			}
		}
		if found != nil {
			return found, nil
		}
	}
	if errOne != nil {
		return nil, errors.New("IdP metadata: " + errOne.Error())
	}
	return nil, errors.New("IdP metadata: no IDPSSODescriptor")
}

// provider is a crewjam ServiceProvider for one request (the IdP metadata
// may change between requests; the struct itself is not shared).
func (sp *samlSP) provider(idp *saml.EntityDescriptor) *saml.ServiceProvider {
	p := &saml.ServiceProvider{
		EntityID:          sp.o.EntityID,
		Key:               sp.key,
		Certificate:       sp.cert,
		MetadataURL:       sp.md,
		AcsURL:            sp.acs,
		IDPMetadata:       idp,
		AuthnNameIDFormat: saml.UnspecifiedNameIDFormat,
		// No IdP-initiated sign-in: every response must answer a request
		// this server made (InResponseTo), for this browser (RelayState +
		// cookie, checked before).
		AllowIDPInitiated: false,
		// HTTP-POST only: no artifact resolution back-channel.
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		RejectUnknownConditions:          true,
		ReplayCache:                      sp.replay,
	}
	if rk, ok := sp.key.(*rsa.PrivateKey); ok {
		p.SignatureMethod = dsig.RSASHA256SignatureMethod
		p.EncryptionKey = rk
	} else if sp.key != nil {
		p.SignatureMethod = dsig.ECDSASHA256SignatureMethod
	}
	return p
}

func (sp *samlSP) metadata(w http.ResponseWriter, r *http.Request) {
	// The SP's own metadata needs no IdP metadata.
	buf, err := xml.MarshalIndent(sp.provider(nil).Metadata(), "", "  ")
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(xml.Header))
	w.Write(buf)
}

// samlCookieFor binds a sign-in to the browser. The IdP answers with a
// cross-site POST, on which a Lax cookie is not sent: over https the
// cookie is SameSite=None (Secure); over plain http (a loopback
// development setup, where None needs Secure) it is Lax, which a
// same-site IdP still gets. It is worth nothing without the RelayState of
// the same sign-in, and lives 10 minutes on /saml/ only.
func (sp *samlSP) samlCookieFor(value string, maxAge time.Duration) *http.Cookie {
	same := http.SameSiteLaxMode
	if sp.wa.secure {
		same = http.SameSiteNoneMode
	}
	return sp.wa.cookie(samlCookie, value, maxAge, same)
}

// cliPort parses the cli_port parameter: a loopback port of the pgwarden
// CLI, 1024-65535.
func cliPort(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1024 || n > 65535 || strconv.Itoa(n) != v {
		return 0, false
	}
	return n, true
}

// login sends the browser to the IdP with an AuthnRequest (redirect
// binding). The request ID is kept server-side under a random RelayState
// that the browser also holds in a cookie.
//
// /saml/login?cli_port=N[&state=S] is the sign-in of `pgwarden login
// --saml`: after the assertion the browser is sent to
// http://127.0.0.1:N/callback?token=...&state=S with a gateway token.
// Trade-off: the token travels in a URL to a loopback listener — it never
// leaves the machine and the CLI takes it at once, but any process of any
// user on that machine that listens on port N could receive it, and the
// URL stays in the browser's history (the token is short-lived: auth.
// gateway_tokens.ttl). The CLI should pick a random port and check that
// state is the one it sent. Only loopback 127.0.0.1 is ever the target, so
// the redirect cannot send a token off the machine.
func (sp *samlSP) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	var pend samlPending
	if v := q.Get("cli_port"); v != "" {
		n, ok := cliPort(v)
		if !ok || len(q["cli_port"]) != 1 || len(q["state"]) > 1 {
			http.Error(w, "cli_port must be a port number between 1024 and 65535", http.StatusBadRequest)
			return
		}
		if sp.o.Tokens == nil {
			http.Error(w, "CLI sign-in is not enabled here", http.StatusNotFound)
			return
		}
		pend.cliPort = n
		pend.cliState = q.Get("state")
		if sanitizeParam(pend.cliState) != pend.cliState { // also caps it at 64
			http.Error(w, "state must be at most 64 letters, digits, '-' or '_'", http.StatusBadRequest)
			return
		}
	}
	idp, err := sp.idpMetadata(r.Context())
	if err != nil {
		sp.log("SAML: the IdP metadata cannot be loaded", err)
		http.Error(w, "the identity provider cannot be reached; try again shortly", http.StatusServiceUnavailable)
		return
	}
	p := sp.provider(idp)
	dest := p.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	if dest == "" {
		http.Error(w, "the identity provider has no redirect sign-in endpoint", http.StatusServiceUnavailable)
		return
	}
	req, err := p.MakeAuthenticationRequest(dest, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		sp.log("SAML: making the AuthnRequest failed", err)
		http.Error(w, "the sign-in cannot be started", http.StatusInternalServerError)
		return
	}
	relay := randomToken()
	redirect, err := req.Redirect(relay, p)
	if err != nil {
		sp.log("SAML: making the AuthnRequest failed", err)
		http.Error(w, "the sign-in cannot be started", http.StatusInternalServerError)
		return
	}
	pend.requestID, pend.expires = req.ID, time.Now().Add(loginTTL)
	if !putPending(&sp.mu, sp.pending, relay, pend) {
		http.Error(w, "too many sign-ins in progress; try again shortly", http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, sp.samlCookieFor(relay, loginTTL))
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// acsHandler receives the IdP's Response (HTTP-POST binding). Errors are
// short and never echo the response; the detail goes to the log.
func (sp *samlSP) acsHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fail := func(code int, msg string, err error) {
		if err != nil {
			sp.log("SAML sign-in refused: "+msg, err)
		}
		http.SetCookie(w, sp.samlCookieFor("", 0))
		http.Error(w, "sign-in failed: "+msg, code)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSAMLFormBytes)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "the form cannot be read", nil)
		return
	}
	if r.PostForm.Get("SAMLart") != "" || r.PostForm.Get("SAMLResponse") == "" {
		fail(http.StatusBadRequest, "no SAML response (HTTP-POST binding only)", nil)
		return
	}
	relay := r.PostForm.Get("RelayState")
	c, err := r.Cookie(samlCookie)
	if relay == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(relay)) != 1 {
		// IdP-initiated (unsolicited) responses land here too: refused.
		fail(http.StatusBadRequest, "this sign-in was not started from this browser (start again at /saml/login)", nil)
		return
	}
	pend, ok := takePending(&sp.mu, sp.pending, relay)
	if !ok {
		fail(http.StatusBadRequest, "the sign-in expired or was already used (start again at /saml/login)", nil)
		return
	}
	idp, err := sp.idpMetadata(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, "the identity provider's metadata cannot be loaded", err)
		return
	}
	assertion, err := sp.provider(idp).ParseResponse(r, []string{pend.requestID})
	if err != nil {
		var detail error = err
		var ire *saml.InvalidResponseError
		if errors.As(err, &ire) && ire.PrivateErr != nil {
			detail = ire.PrivateErr
		}
		fail(http.StatusForbidden, samlRefusal(err), detail)
		return
	}
	p, err := sp.principal(assertion)
	if err != nil {
		fail(http.StatusForbidden, err.Error(), err)
		return
	}
	if err := sp.wa.startSession(w, p, p.Expiry); err != nil {
		fail(http.StatusServiceUnavailable, err.Error(), nil)
		return
	}
	http.SetCookie(w, sp.samlCookieFor("", 0))
	if pend.cliPort != 0 {
		tok, _, err := sp.o.Tokens.Issue(p)
		if err != nil {
			sp.log("SAML: issuing the gateway token failed", err)
			http.Error(w, "signed in, but no token could be issued for the CLI", http.StatusInternalServerError)
			return
		}
		v := url.Values{"token": {tok}}
		if pend.cliState != "" {
			v.Set("state", pend.cliState)
		}
		target := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(pend.cliPort)), Path: "/callback", RawQuery: v.Encode()}
		http.Redirect(w, r, target.String(), http.StatusSeeOther)
		return
	}
	sp.wa.writeLanding(w, "Signed in as "+p.User+".")
}

// samlRefusal is the short reason the browser is shown.
func samlRefusal(err error) string {
	switch {
	case errors.Is(err, saml.ErrAssertionReplayed):
		return "this response was already used"
	case errors.Is(err, saml.ErrExpired), errors.Is(err, saml.ErrNotYetValid):
		return "the response is expired or not yet valid (check the clocks)"
	case errors.Is(err, saml.ErrAudienceMismatch):
		return "the response is for another service provider"
	case errors.Is(err, saml.ErrDestinationMismatch):
		return "the response is for another address"
	case errors.Is(err, saml.ErrRequestIDMismatch):
		return "the response does not answer this sign-in"
	case errors.Is(err, saml.ErrInvalidSignature), errors.Is(err, saml.ErrUntrustedCertificate), errors.Is(err, saml.ErrCertificateNotValidNow):
		return "the response is not signed by the identity provider"
	case errors.As(err, new(saml.ErrBadStatus)):
		return "the identity provider refused the sign-in"
	}
	return "the response was refused"
}

// principal maps an accepted assertion to who signed in.
func (sp *samlSP) principal(a *saml.Assertion) (identity.Principal, error) {
	p := identity.Principal{Issuer: a.Issuer.Value}
	if a.Subject != nil && a.Subject.NameID != nil {
		p.Subject = a.Subject.NameID.Value
	}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			if at.Name != sp.o.UsernameAttr && at.FriendlyName != sp.o.UsernameAttr &&
				at.Name != sp.o.GroupsAttr && at.FriendlyName != sp.o.GroupsAttr {
				continue
			}
			var vals []string
			for _, v := range at.Values {
				if s := strings.TrimSpace(v.Value); s != "" {
					vals = append(vals, s)
				}
			}
			if (at.Name == sp.o.UsernameAttr || at.FriendlyName == sp.o.UsernameAttr) && p.User == "" && len(vals) > 0 {
				p.User = vals[0]
			}
			if at.Name == sp.o.GroupsAttr || at.FriendlyName == sp.o.GroupsAttr {
				p.Groups = append(p.Groups, vals...)
			}
		}
	}
	if p.User == "" {
		return p, errors.New("the assertion has no " + sanitizeParam(sp.o.UsernameAttr) + " attribute")
	}
	p.Expiry = time.Now().Add(defaultMaxSession)
	for _, st := range a.AuthnStatements {
		if st.SessionNotOnOrAfter != nil && st.SessionNotOnOrAfter.Before(p.Expiry) {
			p.Expiry = *st.SessionNotOnOrAfter // never outlive the IdP's session
		}
	}
	if !p.Expiry.After(time.Now()) {
		return p, errors.New("the identity provider's session has ended")
	}
	return p, nil
}

// replayCache is the SP's memory of accepted assertion IDs, each kept
// until the assertion could no longer be accepted anyway. It is
// crewjam's ReplayCache hook, so the check and the record are one step.
type replayCache struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

const maxReplayEntries = 200000

func newReplayCache() *replayCache { return &replayCache{seen: map[string]time.Time{}} }

func (c *replayCache) Consume(id string, until time.Time) error {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[id]; ok && now.Before(exp) {
		return saml.ErrAssertionReplayed
	}
	if len(c.seen) >= maxReplayEntries {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= maxReplayEntries {
			return errors.New("too many assertions in flight")
		}
	}
	// Keep it at least a few minutes past now: skew allowances in the
	// library could accept an assertion a little after its deadline.
	if min := now.Add(saml.MaxClockSkew); until.Before(min) {
		until = min
	}
	c.seen[id] = until
	return nil
}

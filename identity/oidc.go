package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
)

// Limits on untrusted input and on the issuer's responses.
const (
	// MaxTokenBytes bounds the token accepted by Verify (large Azure/Keycloak
	// tokens with many groups stay well below it).
	MaxTokenBytes = 32 << 10
	// maxResponseBytes bounds a discovery document or JWKS response.
	maxResponseBytes = 1 << 20
	// firstDiscoveryTimeout bounds NewOIDC's synchronous discovery attempt.
	firstDiscoveryTimeout = 3 * time.Second
)

// acceptedAlgs are the signature algorithms a token may use: asymmetric
// only. "none" and the HMAC family (key-confusion attacks) are never
// accepted, whatever the discovery document advertises.
var acceptedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// Option adjusts an OIDC verifier.
type Option func(*OIDC)

// WithNow sets the clock used for exp/nbf/iat checks (tests).
func WithNow(now func() time.Time) Option { return func(o *OIDC) { o.now = now } }

// WithLogger sets the logger for discovery and key-set events (never tokens).
func WithLogger(l zerolog.Logger) Option { return func(o *OIDC) { o.log = l } }

// WithHTTPClient replaces the HTTP client used for discovery and JWKS.
// ca_file is then ignored; the response-size and JWKS refetch limits still apply.
func WithHTTPClient(c *http.Client) Option { return func(o *OIDC) { o.base = c } }

// WithDiscoveryRetry sets the minimum and maximum wait between discovery
// attempts while the issuer is unreachable (default 1s doubling up to 30s).
func WithDiscoveryRetry(min, max time.Duration) Option {
	return func(o *OIDC) { o.retryMin, o.retryMax = min, max }
}

// WithJWKSRefetchInterval sets the minimum time between two JWKS fetches
// caused by tokens whose key is not in the cache (default 5s). It bounds how
// often junk tokens with random key ids can make pgwarden call the issuer.
func WithJWKSRefetchInterval(d time.Duration) Option {
	return func(o *OIDC) { o.refetchEvery = d }
}

// OIDC verifies tokens against one OpenID Connect issuer. It is safe for
// concurrent use. Discovery is lazy: NewOIDC succeeds while the issuer is
// down, Verify then refuses with ReasonUnavailable and Check reports the
// error, until a retry succeeds.
type OIDC struct {
	cfg   config.OIDC
	log   zerolog.Logger
	now   func() time.Time
	base  *http.Client
	http  *http.Client // base wrapped in limitTransport
	limit *limitTransport

	usernamePath []string
	groupsPath   []string

	retryMin, retryMax time.Duration
	refetchEvery       time.Duration

	mu        sync.Mutex
	keys      *oidc.RemoteKeySet // nil until discovery succeeded
	jwksURL   string
	lastErr   error
	nextTry   time.Time
	backoff   time.Duration
	checkedAt time.Time // last JWKS reachability probe (Check)
	checkErr  error
}

var _ Verifier = (*OIDC)(nil)

// NewOIDC returns a verifier for cfg. It fails only on configuration errors
// (e.g. an unreadable ca_file); an unreachable issuer is retried lazily. ctx
// bounds the first discovery attempt only (at most 3s; a cancelled ctx skips
// it without a warning, for an issuer served by a listener that is not up
// yet: the first Verify or Check then discovers it).
func NewOIDC(ctx context.Context, cfg config.OIDC, opts ...Option) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, &config.Error{Path: "auth.oidc.issuer", Msg: "required"}
	}
	if cfg.Audience == "" {
		return nil, &config.Error{Path: "auth.oidc.audience", Msg: "required"}
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "email"
	}
	o := &OIDC{
		cfg:          cfg,
		log:          zerolog.Nop(),
		now:          time.Now,
		retryMin:     time.Second,
		retryMax:     30 * time.Second,
		refetchEvery: 5 * time.Second,
		usernamePath: strings.Split(cfg.UsernameClaim, "."),
	}
	if cfg.GroupsClaim != "" {
		o.groupsPath = strings.Split(cfg.GroupsClaim, ".")
	}
	for _, opt := range opts {
		opt(o)
	}
	if o.base == nil {
		c, err := httpClient(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		o.base = c
	}
	rt := o.base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	o.limit = &limitTransport{next: rt, every: o.refetchEvery}
	hc := *o.base
	hc.Transport = o.limit
	o.http = &hc

	if ctx == nil {
		ctx = context.Background()
	}
	// Bounded so that start-up never stalls on an issuer that accepts
	// connections but does not answer; later attempts happen on demand.
	if ctx.Err() != nil {
		// The caller says the issuer cannot answer yet (pgwarden dev serves
		// it from a listener that starts after this): no attempt, and no
		// warning about a failure that is only the start order. The first
		// Verify or Check discovers it.
		o.log.Debug().Str("issuer", cfg.Issuer).Msg("OIDC discovery deferred to first use")
		return o, nil
	}
	ctx, cancel := context.WithTimeout(ctx, firstDiscoveryTimeout)
	defer cancel()
	if _, err := o.discover(ctx, true); err != nil {
		o.log.Warn().Str("issuer", cfg.Issuer).Err(err).Msg("OIDC discovery failed; will retry on demand")
	}
	return o, nil
}

func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &config.Error{Path: "auth.oidc.ca_file", Msg: err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &config.Error{Path: "auth.oidc.ca_file", Msg: "no PEM certificate found in " + caFile}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	// RootCAs nil: the system roots, which honour SSL_CERT_FILE / SSL_CERT_DIR.
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, nil
}

// Close releases idle connections to the issuer.
func (o *OIDC) Close() { o.http.CloseIdleConnections() }

// discover returns the key set, running discovery if it has not succeeded
// yet and the retry backoff allows an attempt (force ignores the backoff).
func (o *OIDC) discover(ctx context.Context, force bool) (*oidc.RemoteKeySet, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys != nil {
		return o.keys, nil
	}
	if !force && time.Now().Before(o.nextTry) && o.lastErr != nil {
		return nil, o.lastErr
	}
	cctx := oidc.ClientContext(ctx, o.http)
	p, err := oidc.NewProvider(cctx, o.cfg.Issuer)
	if err == nil {
		var meta struct {
			JWKSURL string `json:"jwks_uri"`
		}
		if err = p.Claims(&meta); err == nil && meta.JWKSURL == "" {
			err = errors.New("discovery document has no jwks_uri")
		}
		if err == nil {
			o.jwksURL = meta.JWKSURL
			o.limit.setJWKS(meta.JWKSURL)
			// The key set's context only carries the HTTP client; go-oidc
			// ignores its cancellation.
			o.keys = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), o.http), meta.JWKSURL)
			o.lastErr = nil
			o.log.Info().Str("issuer", o.cfg.Issuer).Str("jwks_uri", meta.JWKSURL).Msg("OIDC discovery done")
			return o.keys, nil
		}
	}
	err = fmt.Errorf("discovery of %s: %w", o.cfg.Issuer, err)
	if ctx.Err() != nil {
		// The caller gave up (or NewOIDC was told not to wait): that says
		// nothing about the issuer, so no backoff for the next caller.
		return nil, err
	}
	o.lastErr = err
	switch {
	case o.backoff == 0:
		o.backoff = o.retryMin
	case o.backoff < o.retryMax:
		o.backoff *= 2
	}
	o.backoff = min(o.backoff, o.retryMax)
	o.nextTry = time.Now().Add(o.backoff)
	return nil, o.lastErr
}

// Check reports whether discovery has succeeded and the JWKS endpoint
// answers (probed at most every 15s; results in between are cached).
func (o *OIDC) Check(ctx context.Context) error {
	if _, err := o.discover(ctx, false); err != nil {
		return err
	}
	o.mu.Lock()
	if time.Since(o.checkedAt) < 15*time.Second {
		err := o.checkErr
		o.mu.Unlock()
		return err
	}
	url := o.jwksURL
	o.mu.Unlock()

	err := o.probeJWKS(ctx, url)
	o.mu.Lock()
	o.checkedAt, o.checkErr = time.Now(), err
	o.mu.Unlock()
	return err
}

func (o *OIDC) probeJWKS(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := o.base.Do(req) // not the refetch limiter: this is not a key lookup
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks: %s", resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("jwks: no keys")
	}
	return nil
}

func refuse(r Reason, format string, args ...any) *RefusalError {
	return &RefusalError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Verify checks token and returns its principal, or a *RefusalError.
// user is the startup user ("" skips the user-match check).
func (o *OIDC) Verify(ctx context.Context, token, user string) (Principal, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return Principal{}, refuse(ReasonMissing, "empty token")
	}
	if len(token) > MaxTokenBytes {
		return Principal{}, refuse(ReasonMalformed, "token of %d bytes exceeds %d", len(token), MaxTokenBytes)
	}
	if strings.Count(token, ".") != 2 {
		return Principal{}, refuse(ReasonMalformed, "not a compact JWS (want three dot-separated parts)")
	}
	jws, err := jose.ParseSignedCompact(token, acceptedAlgs)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return Principal{}, refuse(ReasonSignature, "signature algorithm %q not accepted", sanitize(string(alg.Got)))
		}
		return Principal{}, refuse(ReasonMalformed, "unparsable JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return Principal{}, refuse(ReasonMalformed, "want exactly one signature, got %d", len(jws.Signatures))
	}
	keys, err := o.discover(ctx, false)
	if err != nil {
		return Principal{}, refuse(ReasonUnavailable, "%v", err)
	}
	payload, err := keys.VerifySignature(ctx, token)
	// A key-set fetch that finished moments ago may not be visible yet:
	// go-oidc hands a caller arriving just after a fetch that fetch's
	// (older) result, and a caller that missed the cache just before the
	// fetch landed is refetch-limited. Look again, a bounded few times.
	for i := 0; i < 2 && err != nil && (errors.Is(err, errRefetchLimited) || o.limit.fetchedWithin(250*time.Millisecond)); i++ {
		time.Sleep(2 * time.Millisecond)
		payload, err = keys.VerifySignature(ctx, token)
	}
	if err != nil {
		kid := sanitize(jws.Signatures[0].Header.KeyID)
		switch {
		case errors.Is(err, errRefetchLimited):
			return Principal{}, refuse(ReasonSignature, "no key %q in the issuer's key set", kid)
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return Principal{}, refuse(ReasonUnavailable, "key set fetch interrupted: %v", err)
		case strings.HasPrefix(err.Error(), "fetching keys"):
			return Principal{}, refuse(ReasonUnavailable, "key %q: %v", kid, err)
		default:
			return Principal{}, refuse(ReasonSignature, "key %q: %v", kid, err)
		}
	}
	return o.principal(payload, user)
}

// principal checks the verified claims and maps them to a Principal.
func (o *OIDC) principal(payload []byte, user string) (Principal, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return Principal{}, refuse(ReasonMalformed, "claims are not a JSON object")
	}
	iss, _ := claims["iss"].(string)
	if iss != o.cfg.Issuer {
		return Principal{}, refuse(ReasonIssuer, "iss %q, want %q", sanitize(iss), o.cfg.Issuer)
	}
	if !hasAudience(claims["aud"], o.cfg.Audience) {
		return Principal{}, refuse(ReasonAudience, "aud does not contain %q", o.cfg.Audience)
	}
	exp, err := CheckValidity(claims, o.now(), o.cfg.ClockSkew)
	if err != nil {
		return Principal{}, err
	}
	name, err := CheckUsername(lookup(claims, o.cfg.UsernameClaim, o.usernamePath), o.cfg.UsernameClaim)
	if err != nil {
		return Principal{}, err
	}
	groups, err := o.groupsOf(claims)
	if err != nil {
		return Principal{}, refuse(ReasonClaims, "groups claim %q: %v", o.cfg.GroupsClaim, err)
	}
	if user != "" && user != name {
		return Principal{}, refuse(ReasonUserMismatch, "startup user %q is not the token's %s %q", sanitize(user), o.cfg.UsernameClaim, sanitize(name))
	}
	sub, _ := claims["sub"].(string)
	return WithActor(Principal{User: name, Subject: sub, Groups: groups, Expiry: exp, Issuer: iss}, claims, o.groupsOf)
}

// groupsOf reads groups_claim from obj (the token's claims or an act
// object): the same name or path, in the same forms.
func (o *OIDC) groupsOf(obj map[string]any) ([]string, error) {
	if o.groupsPath == nil {
		return nil, nil
	}
	return toGroups(lookup(obj, o.cfg.GroupsClaim, o.groupsPath))
}

// lookup returns the claim named name: the literal key first (namespaced
// claims such as "https://example.com/roles" contain dots), else the dotted
// path through nested objects (e.g. "realm_access.roles").
func lookup(claims map[string]any, name string, path []string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	if len(path) < 2 {
		return nil
	}
	var cur any = claims
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[p]; !ok {
			return nil
		}
	}
	return cur
}

// toGroups normalizes a groups claim: a JSON array of strings, or one
// string holding one or more names separated by spaces or commas (the
// OAuth "scope"/"scp" form). Absent or null means no groups.
func toGroups(v any) ([]string, error) {
	switch g := v.(type) {
	case nil:
		return nil, nil
	case string:
		return strings.FieldsFunc(g, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }), nil
	case []any:
		out := make([]string, 0, len(g))
		for i, x := range g {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("element %d is not a string", i)
			}
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("is a %T, want a list of strings or a string", v)
	}
}

func hasAudience(v any, want string) bool {
	switch a := v.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// numericDate reads a JWT NumericDate (seconds since the epoch, possibly
// fractional). ok is false when the claim is absent.
func numericDate(claims map[string]any, name string) (t time.Time, ok bool, err error) {
	v, present := claims[name]
	if !present || v == nil {
		return time.Time{}, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, false, fmt.Errorf("%s is not a number", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false, fmt.Errorf("%s is not a valid time", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}

// sanitize bounds and cleans a token-supplied string for log details.
func sanitize(s string) string {
	if len(s) > 128 {
		s = s[:128] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// errRefetchLimited is returned by limitTransport for a JWKS fetch that
// comes too soon after the previous one.
var errRefetchLimited = errors.New("jwks refetch rate-limited")

// limitTransport bounds response sizes and rate-limits JWKS fetches: a
// token with an unknown key id makes go-oidc refetch the key set, and
// without a limit every junk token would cost a request to the issuer.
type limitTransport struct {
	next  http.RoundTripper
	every time.Duration

	mu       sync.Mutex
	jwks     string
	last     time.Time // start of the last JWKS fetch
	lastDone time.Time // end of the last JWKS fetch
	lastErr  error
}

// fetchedWithin reports whether a JWKS fetch ended less than d ago.
func (t *limitTransport) fetchedWithin(d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.lastDone.IsZero() && time.Since(t.lastDone) < d
}

func (t *limitTransport) setJWKS(u string) {
	t.mu.Lock()
	t.jwks = u
	t.mu.Unlock()
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	isJWKS := t.jwks != "" && req.URL.String() == t.jwks
	if isJWKS {
		if !t.last.IsZero() && time.Since(t.last) < t.every {
			err := t.lastErr
			t.mu.Unlock()
			if err != nil { // the issuer was failing: report that, not "unknown key"
				return nil, err
			}
			return nil, errRefetchLimited
		}
		t.last = time.Now()
	}
	t.mu.Unlock()

	resp, err := t.next.RoundTrip(req)
	if isJWKS {
		ferr := err
		if err == nil && resp.StatusCode != http.StatusOK {
			ferr = fmt.Errorf("jwks: %s", resp.Status)
		}
		t.mu.Lock()
		t.lastErr, t.lastDone = ferr, time.Now()
		t.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, n: maxResponseBytes}
	return resp, nil
}

// limitedBody fails a read past n bytes instead of silently truncating.
type limitedBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, errors.New("issuer response too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.rc.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// NewHTTPClient is the HTTP client pgwarden talks to the issuer with
// (auth.oidc.ca_file trusted when set, else the system roots; 10 s timeout).
func NewHTTPClient(caFile string) (*http.Client, error) { return httpClient(caFile) }

// Package login is the client side of `pgwarden login` and `pgwarden psql`:
// it gets a person an access token from an OpenID Provider with the OAuth 2.0
// device authorization grant (RFC 8628), caches it with its refresh token,
// refreshes it silently, and builds psql's environment from a small client
// configuration file.
//
// What it owns: endpoint discovery ({issuer}/.well-known/openid-configuration),
// the device flow and refresh through golang.org/x/oauth2 (which polls at the
// server's interval and backs off by 5s on slow_down), the token cache
// (os.UserCacheDir()/pgwarden/token-<hash of issuer and client id>.json, mode
// 0600 in a 0700 directory, written atomically), and the client config
// (os.UserConfigDir()/pgwarden/client.yaml).
//
// Lifecycle: one Client per command invocation; nothing runs in the
// background.
//
// What it must never do: print a token anywhere but the stdout of
// `login --print` (the prompt on stderr carries only the verification URL and
// the user code), put a token or refresh token in an error, use a cache file
// that others can read, or verify tokens — the gateway does that. Claims read
// here from an unverified token only pick a default user name for psql.
package login

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// DefaultClientID is the public client of the development issuer.
const DefaultClientID = "pgwarden-cli"

// DefaultScopes ask for an ID token and a refresh token.
var DefaultScopes = []string{"openid", "offline_access"}

// expiryMargin: a cached token expiring sooner than this is refreshed first,
// so a connection made right after never carries an expired token.
const expiryMargin = 30 * time.Second

const maxDiscoveryBytes = 1 << 20

// Options configure a Client.
type Options struct {
	Issuer     string
	ClientID   string   // default DefaultClientID
	Scopes     []string // default DefaultScopes
	CacheDir   string   // default os.UserCacheDir()/pgwarden
	HTTPClient *http.Client
	Prompt     io.Writer // verification URL and user code (stderr); nil: io.Discard
	Now        func() time.Time
}

// Token is what the cache file holds.
type Token struct {
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"client_id"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry"`
}

// Client gets tokens for one issuer and client id.
type Client struct {
	o     Options
	path  string
	oauth *oauth2.Config // after discovery
}

// New checks the options and finds the cache file; it does no I/O.
func New(o Options) (*Client, error) {
	o.Issuer = strings.TrimSuffix(strings.TrimSpace(o.Issuer), "/")
	if o.Issuer == "" {
		return nil, errors.New("login: no issuer (use --issuer or issuer: in the client config)")
	}
	if !strings.HasPrefix(o.Issuer, "https://") && !strings.HasPrefix(o.Issuer, "http://") {
		return nil, fmt.Errorf("login: issuer %q must be an http(s) URL", o.Issuer)
	}
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if len(o.Scopes) == 0 {
		o.Scopes = DefaultScopes
	}
	if o.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("login: no cache directory: %w", err)
		}
		o.CacheDir = filepath.Join(d, "pgwarden")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Prompt == nil {
		o.Prompt = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := sha256.Sum256([]byte(o.Issuer + "\x00" + o.ClientID))
	return &Client{o: o, path: filepath.Join(o.CacheDir, "token-"+hex.EncodeToString(h[:8])+".json")}, nil
}

// CachePath is the token cache file of this issuer and client.
func (c *Client) CachePath() string { return c.path }

// Valid reports whether t can still be used for a connection.
func (c *Client) Valid(t *Token) bool {
	return t != nil && t.AccessToken != "" && !t.Expiry.IsZero() && c.o.Now().Add(expiryMargin).Before(t.Expiry)
}

// Token returns a usable access token: the cached one if still valid, else
// a refreshed one (silently), else it runs the device flow (prompting).
func (c *Client) Token(ctx context.Context) (*Token, error) {
	if t, err := c.Silent(ctx); err == nil {
		return t, nil
	}
	// Nothing cached, or an expired or revoked refresh token: log in again.
	return c.Login(ctx)
}

// ErrNoLogin is Silent's error when neither the cache nor a refresh gives
// a usable token.
var ErrNoLogin = errors.New("no valid token in the login cache: run pgwarden login")

// Silent returns a usable access token without prompting: the cached one
// if still valid, else a refreshed one; ErrNoLogin otherwise (for
// processes with nobody to prompt, such as `pgwarden mcp` under an agent).
func (c *Client) Silent(ctx context.Context) (*Token, error) {
	cached, _ := c.Cached()
	if c.Valid(cached) {
		return cached, nil
	}
	if cached != nil && cached.RefreshToken != "" {
		if t, err := c.Refresh(ctx, cached); err == nil {
			return t, nil
		}
	}
	return nil, ErrNoLogin
}

// Cached reads the cache file. A file others can read is not used.
func (c *Client) Cached() (*Token, error) {
	st, err := os.Stat(c.path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("login: %s is readable by others (mode %v); ignoring it", c.path, st.Mode().Perm())
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return nil, err
	}
	t, err := DecodeCache(b)
	if err != nil {
		return nil, fmt.Errorf("login: %s: %w", c.path, err)
	}
	if t.Issuer != c.o.Issuer || t.ClientID != c.o.ClientID {
		return nil, fmt.Errorf("login: %s belongs to another issuer or client", c.path)
	}
	return t, nil
}

// DecodeCache parses a cache file's bytes.
func DecodeCache(b []byte) (*Token, error) {
	var t Token
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, errors.New("corrupt token cache")
	}
	if t.AccessToken == "" && t.RefreshToken == "" {
		return nil, errors.New("token cache holds no token")
	}
	return &t, nil
}

// Forget removes the cached token.
func (c *Client) Forget() error {
	err := os.Remove(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

type discovery struct {
	Issuer             string `json:"issuer"`
	TokenEndpoint      string `json:"token_endpoint"`
	DeviceAuthEndpoint string `json:"device_authorization_endpoint"`
}

// discover finds the token and device authorization endpoints.
func (c *Client) discover(ctx context.Context) (*oauth2.Config, error) {
	if c.oauth != nil {
		return c.oauth, nil
	}
	u := c.o.Issuer + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("login: discovery at %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("login: discovery at %s: HTTP %d", u, resp.StatusCode)
	}
	var d discovery
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDiscoveryBytes)).Decode(&d); err != nil {
		return nil, fmt.Errorf("login: discovery at %s: bad JSON: %v", u, err)
	}
	if strings.TrimSuffix(d.Issuer, "/") != c.o.Issuer {
		return nil, fmt.Errorf("login: discovery at %s names issuer %q", u, d.Issuer)
	}
	if d.TokenEndpoint == "" {
		return nil, fmt.Errorf("login: issuer %s has no token endpoint", c.o.Issuer)
	}
	c.oauth = &oauth2.Config{
		ClientID: c.o.ClientID,
		Scopes:   c.o.Scopes,
		Endpoint: oauth2.Endpoint{
			TokenURL:      d.TokenEndpoint,
			DeviceAuthURL: d.DeviceAuthEndpoint,
			AuthStyle:     oauth2.AuthStyleInParams, // a public client: client_id in the form
		},
	}
	return c.oauth, nil
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.o.HTTPClient)
}

// Login runs the device authorization grant: it asks the issuer for a
// device and user code, shows the verification URL and code on Prompt,
// polls the token endpoint until the user approves (or denies, or the code
// expires), and caches the token.
func (c *Client) Login(ctx context.Context) (*Token, error) {
	cfg, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint.DeviceAuthURL == "" {
		return nil, fmt.Errorf("login: issuer %s does not support the device authorization grant", c.o.Issuer)
	}
	octx := c.ctx(ctx)
	da, err := cfg.DeviceAuth(octx)
	if err != nil {
		return nil, fmt.Errorf("login: device authorization: %s", oauthErr(err))
	}
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(c.o.Prompt, "To log in, open %s\n  (or open %s and enter the code %s)\n", da.VerificationURIComplete, da.VerificationURI, da.UserCode)
	} else {
		fmt.Fprintf(c.o.Prompt, "To log in, open %s and enter the code %s\n", da.VerificationURI, da.UserCode)
	}
	fmt.Fprintln(c.o.Prompt, "Waiting for approval...")
	ot, err := cfg.DeviceAccessToken(octx, da)
	if err != nil {
		return nil, fmt.Errorf("login: %s", oauthErr(err))
	}
	return c.store(ot, "")
}

// Refresh exchanges t's refresh token for a new token (refresh_token grant)
// and caches it.
func (c *Client) Refresh(ctx context.Context, t *Token) (*Token, error) {
	if t == nil || t.RefreshToken == "" {
		return nil, errors.New("login: no refresh token")
	}
	cfg, err := c.discover(ctx)
	if err != nil {
		return nil, err
	}
	ot, err := cfg.TokenSource(c.ctx(ctx), &oauth2.Token{RefreshToken: t.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, fmt.Errorf("login: refresh: %s", oauthErr(err))
	}
	return c.store(ot, t.RefreshToken)
}

func (c *Client) store(ot *oauth2.Token, oldRefresh string) (*Token, error) {
	if ot.AccessToken == "" {
		return nil, errors.New("login: the issuer returned no access token")
	}
	t := &Token{
		Issuer: c.o.Issuer, ClientID: c.o.ClientID,
		AccessToken: ot.AccessToken, RefreshToken: ot.RefreshToken, TokenType: ot.TokenType, Expiry: ot.Expiry,
	}
	if t.RefreshToken == "" {
		t.RefreshToken = oldRefresh
	}
	if t.Expiry.IsZero() {
		// No expires_in: fall back on the JWT's exp (not verified: only
		// decides when to refresh).
		if exp, ok := claimsOf(t.AccessToken)["exp"].(float64); ok {
			t.Expiry = time.Unix(int64(exp), 0)
		}
	}
	if err := c.save(t); err != nil {
		return nil, err
	}
	return t, nil
}

// save writes the cache atomically with mode 0600 in a 0700 directory.
func (c *Client) save(t *Token) error {
	if err := os.MkdirAll(c.o.CacheDir, 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := os.Chmod(c.o.CacheDir, 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	b, _ := json.MarshalIndent(t, "", "  ")
	tmp, err := os.CreateTemp(c.o.CacheDir, ".token-*")
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	werr := tmp.Chmod(0o600)
	if werr == nil {
		_, werr = tmp.Write(b)
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), c.path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("login: writing the token cache: %w", werr)
	}
	return nil
}

// oauthErr describes an OAuth error by its RFC code and description only
// (oauth2.RetrieveError's text includes the response body).
func oauthErr(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			msg := re.ErrorCode
			switch re.ErrorCode {
			case "access_denied":
				msg += " (the login was denied)"
			case "expired_token":
				msg += " (the code expired before it was approved; run the command again)"
			}
			if re.ErrorDescription != "" {
				msg += ": " + re.ErrorDescription
			}
			return msg
		}
		if re.Response != nil {
			return fmt.Sprintf("HTTP %d from the token endpoint", re.Response.StatusCode)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out waiting for approval"
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	return err.Error()
}

// claimsOf decodes a JWT's payload WITHOUT verifying it (nil if not a JWT).
func claimsOf(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(tok) > 64<<10 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// UserFromToken is the user name a token names (email, else
// preferred_username, else sub), read without verification: only a default
// for PGUSER. "" if none.
func UserFromToken(tok string) string {
	m := claimsOf(tok)
	for _, k := range []string{"email", "preferred_username", "sub"} {
		if s, ok := m[k].(string); ok && s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return s
		}
	}
	return ""
}

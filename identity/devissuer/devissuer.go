// Package devissuer is the development OpenID Connect issuer of
// `pgwarden dev` and `pgwarden token`.
//
// It owns one ECDSA P-256 signing key kept in DATA/issuer/ (created once
// with mode 0600 and reused across restarts, so tokens minted before a
// restart keep verifying) and the issuer URL it was opened with. Handler
// serves the discovery document and the JWKS so that the gateway verifies
// dev tokens through exactly the same discovery + JWKS path as a real IdP's.
//
// The same Handler serves the OAuth 2.0 device authorization grant
// (RFC 8628) for `pgwarden login`, through zitadel's OpenID Provider library
// (see device.go): a built-in public client "pgwarden-cli", JWT access
// tokens carrying the same claims as Mint's (iss, sub, aud "pgwarden", exp,
// iat, nbf, email, preferred_username, groups) signed with the same key,
// rotating refresh tokens, and a verification page (DevicePath) that asks
// for a user name and groups and approves: development only. Device codes
// and refresh tokens live in memory and are lost on restart.
//
// It also serves the authorization code flow with PKCE S256 (authcode.go)
// for the admin page's browser sign-in: a built-in public client
// "pgwarden-ui" whose redirect URIs are http://127.0.0.1:PORT/ui/callback
// and http://localhost:PORT/ui/callback, and a development sign-in page
// (LoginPath) that asks for a user and groups, no password. Its access
// tokens carry the same claims as the device flow's. Auth requests live in
// memory (bounded, 10 minutes to sign in, 1 minute to redeem the code, a
// code redeemed once).
//
// Lifecycle: `pgwarden dev` calls Open (creates the key on first run) and
// mounts Handler on the admin listener; `pgwarden token` calls OpenExisting
// on the same data dir and Mint (MintDelegated with --actor: a token whose
// RFC 8693 act claim names an agent acting for the user). OpenExisting refuses a data dir where no
// dev issuer was created, so tokens can only be minted for a `pgwarden dev`
// stack, never for a gateway trusting a real IdP.
//
// It must never be used in production, never serve anything but public
// key material, and never write the private key outside DATA/issuer/.
package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Files under DATA/issuer/.
const (
	dirName  = "issuer"
	keyFile  = "signing-key.pem"
	metaFile = "issuer.json"

	// MaxTTL bounds the lifetime of a minted token.
	MaxTTL = 24 * time.Hour
)

// JWKSPath is the key set's path relative to the issuer URL.
const JWKSPath = "/keys"

// Issuer signs development tokens and serves its public keys.
type Issuer struct {
	dir    string
	issuer string
	path   string // issuer URL path without trailing slash, e.g. "/dev-issuer"
	key    *ecdsa.PrivateKey
	kid    string
	signer jose.Signer
	now    func() time.Time

	// The device grant (device.go), served by zitadel's OpenID Provider.
	devOpts  DeviceOptions
	store    *storage
	provOnce sync.Once
	prov     http.Handler
	provErr  error
}

type meta struct {
	Issuer string `json:"issuer"`
}

// Open opens (or on first use creates) the development issuer kept in
// dataDir/issuer/, to be served at issuerURL. The issuer URL is recorded so
// that `pgwarden token` mints tokens for the same issuer.
func Open(dataDir, issuerURL string) (*Issuer, error) {
	u, err := url.Parse(issuerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("devissuer: issuer URL %q must be an absolute http(s) URL without query", issuerURL)
	}
	issuerURL = strings.TrimSuffix(issuerURL, "/")
	dir := filepath.Join(dataDir, dirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	key, err := loadKey(dir)
	if errors.Is(err, os.ErrNotExist) {
		key, err = createKey(dir)
	}
	if err != nil {
		return nil, err
	}
	mb, _ := json.Marshal(meta{Issuer: issuerURL})
	if err := writeFile(filepath.Join(dir, metaFile), mb); err != nil {
		return nil, err
	}
	return newIssuer(dir, issuerURL, key)
}

// OpenExisting opens the issuer a `pgwarden dev` created in dataDir and
// fails if there is none: `pgwarden token` never creates keys.
func OpenExisting(dataDir string) (*Issuer, error) {
	dir := filepath.Join(dataDir, dirName)
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("devissuer: no development issuer in %s (start `pgwarden dev --data %s` first; tokens are only minted for a pgwarden dev stack)", dataDir, dataDir)
		}
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	var m meta
	if err := json.Unmarshal(mb, &m); err != nil || m.Issuer == "" {
		return nil, fmt.Errorf("devissuer: %s is corrupt", filepath.Join(dir, metaFile))
	}
	key, err := loadKey(dir)
	if err != nil {
		return nil, err
	}
	return newIssuer(dir, m.Issuer, key)
}

func newIssuer(dir, issuerURL string, key *ecdsa.PrivateKey) (*Issuer, error) {
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), pub.KeyID))
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	u, _ := url.Parse(issuerURL)
	is := &Issuer{dir: dir, issuer: issuerURL, path: strings.TrimSuffix(u.Path, "/"), key: key, kid: pub.KeyID, signer: signer, now: time.Now}
	is.devOpts = DeviceOptions{}.withDefaults()
	is.store = newStorage(is)
	return is, nil
}

func loadKey(dir string) (*ecdsa.PrivateKey, error) {
	p := filepath.Join(dir, keyFile)
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("devissuer: %s is readable by others (mode %v); chmod 600 it", p, st.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("devissuer: %s holds no PKCS#8 private key", p)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %s: %w", p, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("devissuer: %s is not an ECDSA P-256 key", p)
	}
	return ek, nil
}

func createKey(dir string) (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	p := filepath.Join(dir, keyFile)
	// O_EXCL: two processes racing on first start never overwrite each other.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadKey(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(p)
		return nil, fmt.Errorf("devissuer: %w", werr)
	}
	return k, nil
}

// writeFile writes b atomically with mode 0600.
func writeFile(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("devissuer: %w", err)
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o600)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), p)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("devissuer: %w", werr)
	}
	return nil
}

// URL is the issuer URL tokens carry in "iss".
func (is *Issuer) URL() string { return is.issuer }

// KeyID is the "kid" of the signing key (its RFC 7638 thumbprint).
func (is *Issuer) KeyID() string { return is.kid }

// Handler serves the development issuer under its URL path:
//
//	GET  /.well-known/openid-configuration   discovery
//	GET  /keys                               JWKS (public key only)
//	POST /device_authorization               RFC 8628 device authorization
//	GET|POST /authorize                      authorization code flow (client pgwarden-ui, PKCE S256)
//	GET  /authorize/callback                 back from the sign-in page: the code to the client
//	POST /oauth/token                        device_code, authorization_code and refresh_token grants
//	GET|POST /device                         the development verification page
//	GET|POST /login                          the development sign-in page
//
// Everything but the two pages is zitadel's OpenID Provider; other
// paths are 404. Mount it at the issuer URL's path plus "/" (for issuer
// http://127.0.0.1:6480/dev-issuer: mux.Handle("/dev-issuer/", h)), with or
// without http.StripPrefix.
func (is *Issuer) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if is.path != "" && strings.HasPrefix(p, is.path+"/") {
			p = strings.TrimPrefix(p, is.path)
		}
		var methods string
		switch p {
		case "/.well-known/openid-configuration", JWKSPath:
			methods = "GET, HEAD"
		case TokenPath, DeviceAuthorizationPath:
			methods = "POST"
		case AuthorizationPath:
			methods = "GET, HEAD, POST"
		case AuthorizationPath + "/callback":
			methods = "GET, HEAD"
		case DevicePath:
			is.servePage(w, r)
			return
		case LoginPath:
			is.serveSignIn(w, r)
			return
		default:
			http.NotFound(w, r)
			return
		}
		if !strings.Contains(methods, r.Method) {
			w.Header().Set("Allow", methods)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		is.provOnce.Do(func() {
			prov, err := is.newProvider()
			is.prov, is.provErr = prov, err
		})
		if is.provErr != nil {
			http.Error(w, "development issuer unavailable", http.StatusInternalServerError)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = p, ""
		if r.Method == http.MethodPost {
			r2.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		is.prov.ServeHTTP(w, r2)
	})
}

// Mint signs a token for user (email, preferred_username and sub) with the
// given groups, lifetime and audience.
func (is *Issuer) Mint(user string, groups []string, ttl time.Duration, audience string) (string, error) {
	return is.MintDelegated(user, groups, nil, ttl, audience)
}

// Actor is the acting party of a delegated token: the RFC 8693 "act"
// claim {"sub": Sub, "groups": Groups}. Groups nil leaves the act object
// without a groups claim (the gateway then grants the session no groups).
type Actor struct {
	Sub    string
	Groups []string
}

// MintDelegated is Mint for a token in which act acts for user (an agent
// acting for a person): it carries an "act" claim when act is not nil.
func (is *Issuer) MintDelegated(user string, groups []string, act *Actor, ttl time.Duration, audience string) (string, error) {
	if !validUser(user) {
		return "", errors.New("devissuer: user must be a non-empty name without control characters")
	}
	if audience == "" {
		return "", errors.New("devissuer: audience is required")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", fmt.Errorf("devissuer: ttl %s must be in (0, %s]", ttl, MaxTTL)
	}
	if groups == nil {
		groups = []string{}
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("devissuer: %w", err)
	}
	now := is.now().Truncate(time.Second)
	claims := map[string]any{
		"iss":                is.issuer,
		"sub":                user,
		"aud":                audience,
		"exp":                now.Add(ttl).Unix(),
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"jti":                base64.RawURLEncoding.EncodeToString(jti[:]),
		"email":              user,
		"preferred_username": user,
		"groups":             groups,
	}
	if act != nil {
		if !validUser(act.Sub) {
			return "", errors.New("devissuer: actor must be a non-empty name without control characters")
		}
		a := map[string]any{"sub": act.Sub}
		if act.Groups != nil {
			a["groups"] = act.Groups
		}
		claims["act"] = a
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devissuer: %w", err)
	}
	jws, err := is.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devissuer: %w", err)
	}
	return jws.CompactSerialize()
}

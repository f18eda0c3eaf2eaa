// Package devissuer is the development OpenID Connect issuer of
// `pgwarden dev` and `pgwarden token`.
//
// It owns one ECDSA P-256 signing key kept in DATA/issuer/ (created once
// with mode 0600 and reused across restarts, so tokens minted before a
// restart keep verifying) and the issuer URL it was opened with. Handler
// serves the discovery document and the JWKS so that the gateway verifies
// dev tokens through exactly the same discovery + JWKS path as a real IdP's.
//
// Lifecycle: `pgwarden dev` calls Open (creates the key on first run) and
// mounts Handler on the admin listener; `pgwarden token` calls OpenExisting
// on the same data dir and Mint. OpenExisting refuses a data dir where no
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
	disc   []byte
	jwks   []byte
	now    func() time.Time
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
	is.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	is.disc, _ = json.Marshal(map[string]any{
		"issuer":                                issuerURL,
		"jwks_uri":                              issuerURL + JWKSPath,
		"id_token_signing_alg_values_supported": []string{string(jose.ES256)},
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "nbf", "email", "groups", "preferred_username"},
	})
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

// Handler serves GET {issuer path}/.well-known/openid-configuration and
// GET {issuer path}/keys. Mount it at the issuer URL's path plus "/" (for
// issuer http://127.0.0.1:6480/dev-issuer: mux.Handle("/dev-issuer/", h)),
// with or without http.StripPrefix.
func (is *Issuer) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		if is.path != "" && strings.HasPrefix(p, is.path+"/") {
			p = strings.TrimPrefix(p, is.path)
		}
		var body []byte
		switch p {
		case "/.well-known/openid-configuration":
			body = is.disc
		case JWKSPath:
			body = is.jwks
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(body)
	})
}

// Mint signs a token for user (email, preferred_username and sub) with the
// given groups, lifetime and audience.
func (is *Issuer) Mint(user string, groups []string, ttl time.Duration, audience string) (string, error) {
	if user == "" || strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
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

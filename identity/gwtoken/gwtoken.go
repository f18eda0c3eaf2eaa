package gwtoken

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
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgwarden/pgwarden/identity"
)

const (
	// DefaultTTL is a gateway token's lifetime when Options.TTL is zero.
	DefaultTTL = time.Hour
	// MaxTTL is the longest lifetime Open accepts.
	MaxTTL = 12 * time.Hour
	// MaxTokenBytes bounds the token the verifier parses.
	MaxTokenBytes = 16 << 10
	// ClockSkew is the tolerance on exp, nbf and iat.
	ClockSkew = 30 * time.Second

	defaultUsernameClaim = "email" // as identity.NewOIDC
)

// Options configure an Issuer.
type Options struct {
	Issuer        string        // admin.public_url: the iss of every token, compared exactly
	Audience      string        // auth.oidc.audience
	UsernameClaim string        // auth.oidc.username_claim (default "email")
	GroupsClaim   string        // auth.oidc.groups_claim ("" = no groups claim)
	TTL           time.Duration // auth.gateway_tokens.ttl (0 = DefaultTTL; at most MaxTTL)
	// KeyFile is the PEM file holding the EC P-256 signing key, e.g.
	// store.dir/gateway-token.key. It is created (mode 0600) if missing;
	// its directory must exist.
	KeyFile string
	Now     func() time.Time // clock (tests); default time.Now
}

// reserved are the registered claims a token's username or groups claim
// must not overwrite ("sub" may name the username: sub then is the user).
var reserved = map[string]bool{"iss": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true, "act": true}

// Issuer signs gateway tokens and verifies its own. Safe for concurrent use.
type Issuer struct {
	o      Options
	key    *ecdsa.PrivateKey
	kid    string
	signer jose.Signer
	jwks   []byte // the public key set, served by JWKSHandler
}

// Open validates o and loads (or creates) the signing key.
func Open(o Options) (*Issuer, error) {
	if o.Issuer == "" {
		return nil, errors.New("gateway tokens: issuer (admin.public_url) is required")
	}
	if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("gateway tokens: issuer %q is not an http(s) URL", o.Issuer)
	}
	if o.Audience == "" {
		return nil, errors.New("gateway tokens: audience (auth.oidc.audience) is required")
	}
	if o.UsernameClaim == "" {
		o.UsernameClaim = defaultUsernameClaim
	}
	if reserved[o.UsernameClaim] {
		return nil, fmt.Errorf("gateway tokens: username claim %q is a registered JWT claim", o.UsernameClaim)
	}
	if o.GroupsClaim != "" && (reserved[o.GroupsClaim] || o.GroupsClaim == "sub" || o.GroupsClaim == o.UsernameClaim) {
		return nil, fmt.Errorf("gateway tokens: groups claim %q collides with another claim", o.GroupsClaim)
	}
	switch {
	case o.TTL == 0:
		o.TTL = DefaultTTL
	case o.TTL < 0 || o.TTL > MaxTTL:
		return nil, fmt.Errorf("gateway tokens: ttl %s out of range (want more than 0, at most %s)", o.TTL, MaxTTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.KeyFile == "" {
		return nil, errors.New("gateway tokens: key file is required")
	}
	key, err := loadOrCreateKey(o.KeyFile)
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("gateway tokens: key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	pub.KeyID = kid
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, fmt.Errorf("gateway tokens: jwks: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("gateway tokens: signer: %w", err)
	}
	return &Issuer{o: o, key: key, kid: kid, signer: signer, jwks: jwks}, nil
}

// IssuerURL is the iss of the tokens (admin.public_url), for identity.Multi.
func (i *Issuer) IssuerURL() string { return i.o.Issuer }

// KeyID is the signing key's RFC 7638 thumbprint, the kid of every token.
func (i *Issuer) KeyID() string { return i.kid }

// Issue signs a token for p. It expires after the TTL, or at p.Expiry when
// that is set and earlier (rounded down to the second).
func (i *Issuer) Issue(p identity.Principal) (token string, expires time.Time, err error) {
	if p.User == "" {
		return "", time.Time{}, errors.New("gateway tokens: principal has no user")
	}
	now := i.o.Now()
	exp := now.Add(i.o.TTL)
	if !p.Expiry.IsZero() && p.Expiry.Before(exp) {
		exp = p.Expiry
	}
	exp = time.Unix(exp.Unix(), 0).UTC() // NumericDate: whole seconds, never later
	if !exp.After(now) {
		return "", time.Time{}, errors.New("gateway tokens: principal already expired")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("gateway tokens: jti: %w", err)
	}
	sub := p.Subject
	if sub == "" {
		sub = p.User
	}
	claims := map[string]any{
		"iss": i.o.Issuer,
		"aud": i.o.Audience,
		"sub": sub,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": exp.Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti[:]),
	}
	claims[i.o.UsernameClaim] = p.User // after sub: username_claim "sub" means sub is the user
	groups := p.Groups
	if groups == nil {
		groups = []string{}
	}
	if i.o.GroupsClaim != "" {
		claims[i.o.GroupsClaim] = groups
	}
	if p.Actor != "" {
		// A delegated principal stays delegated: the same actor, holding
		// the effective groups, so verifying the token yields p again.
		act := map[string]any{"sub": p.Actor}
		if i.o.GroupsClaim != "" {
			act[i.o.GroupsClaim] = groups
		}
		claims["act"] = act
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("gateway tokens: claims: %w", err)
	}
	jws, err := i.signer.Sign(payload)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("gateway tokens: sign: %w", err)
	}
	token, err = jws.CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("gateway tokens: serialize: %w", err)
	}
	if len(token) > MaxTokenBytes {
		return "", time.Time{}, fmt.Errorf("gateway tokens: token of %d bytes exceeds %d (too many groups)", len(token), MaxTokenBytes)
	}
	return token, exp, nil
}

// JWKSHandler serves the public key set (GET only; cacheable for 5 minutes).
func (i *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(i.jwks)
	})
}

// loadOrCreateKey reads the EC P-256 key in path, creating it when missing.
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("gateway token key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("gateway token key: encode: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// Written to a temporary file, then linked into place: a crash never
	// leaves a half-written key, and of two processes starting at once
	// the second reads the first one's key instead of replacing it.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gateway-token-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("gateway token key: create: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("gateway token key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("gateway token key: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("gateway token key: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("gateway token key: write: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path)
		}
		return nil, fmt.Errorf("gateway token key: %w", err)
	}
	return key, nil
}

// readKey loads path, refusing a file group or others may read and any key
// but an EC P-256 private key.
func readKey(path string) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("gateway token key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("gateway token key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gateway token key %s: not a regular file", path)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("gateway token key %s: mode %04o lets group or others read it; want 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	if st.Size() > 64<<10 {
		return nil, fmt.Errorf("gateway token key %s: %d bytes, too large for a key", path, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("gateway token key %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("gateway token key %s: no PEM block", path)
	}
	var parsed any
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("gateway token key %s: PEM block %q; want an EC P-256 private key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway token key %s: %w", path, err)
	}
	k, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("gateway token key %s: a %T; want an EC P-256 private key", path, parsed)
	}
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("gateway token key %s: curve %s; want P-256", path, k.Curve.Params().Name)
	}
	return k, nil
}

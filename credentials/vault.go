package credentials

// The vault provider: each session's database credential is a dynamic secret
// of HashiCorp Vault's database secrets engine (<mount>/creds/<role>).
//
// Lifecycle. NewVault builds one API client and, for auth token and approle,
// starts one background goroutine that keeps pgwarden's own Vault token alive
// (renew-self; approle logs in again when the token cannot be renewed). Close
// stops that goroutine and waits for it. Each Mint reads one credential and
// returns a Lease that renews (sys/leases/renew, never beyond the role's
// max_ttl) and revokes (sys/leases/revoke) exactly that Vault lease. With auth
// jwt there is no pgwarden token at all: every Mint logs in to Vault with the
// user's own OIDC token on a per-session client, reads the credential with the
// resulting token and revokes that token together with the lease at the end.
//
// Lifetime. Vault's revocation drops the role but does not end backends that
// are already connected, so pgwarden ends them itself: Renew returns
// ErrNotRenewable once the lease cannot be extended (max_ttl reached, lease
// revoked, token gone) and the relay terminates the session at Expiry with
// FATAL 57P01. Revoke is called after the client has gone.
//
// Never: log or return a Vault token, an AppRole secret id, the user's OIDC
// token or a database password; follow a role name that could escape the
// mount's creds/ path; keep serving a lease after Revoke.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
)

// vaultRequestTimeout bounds every single Vault request.
const vaultRequestTimeout = 10 * time.Second

// Vault is the credentials.Provider backed by Vault's database secrets engine.
type Vault struct {
	cfg    config.Vault
	log    zerolog.Logger
	client *vaultapi.Client // base client; holds pgwarden's token (token/approle), none for jwt

	mu          sync.Mutex // guards tokenTTL, tokenExpiry, loginErr
	tokenTTL    time.Duration
	tokenExpiry time.Time // zero: does not expire
	loginErr    error     // last failure to obtain/renew pgwarden's own token
	loginMu     sync.Mutex

	cancel context.CancelFunc
	wg     sync.WaitGroup
	now    func() time.Time
}

var _ Provider = (*Vault)(nil)

// NewVault returns the vault provider for cfg. For auth token the token is
// VAULT_TOKEN; for approle cfg.RoleID/cfg.SecretID; for jwt no token is held.
// A Vault that is unreachable or sealed at start is not an error (Check
// reports it and the token goroutine retries); a token or AppRole login that
// Vault refuses is.
func NewVault(ctx context.Context, cfg config.Vault, log zerolog.Logger) (*Vault, error) {
	if cfg.Mount == "" {
		cfg.Mount = "database"
	}
	if cfg.JWTMount == "" {
		cfg.JWTMount = "jwt"
	}
	cfg.Mount = strings.Trim(cfg.Mount, "/")
	cfg.JWTMount = strings.Trim(cfg.JWTMount, "/")
	vc := vaultapi.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault: client config: %w", vc.Error)
	}
	vc.Address = cfg.Address
	vc.Timeout = vaultRequestTimeout
	vc.MaxRetries = 0 // fail fast: a session waits for the answer
	if cfg.CAFile != "" {
		if err := vc.ConfigureTLS(&vaultapi.TLSConfig{CACert: cfg.CAFile}); err != nil {
			return nil, fmt.Errorf("vault: credentials.vault.ca_file: %w", err)
		}
	}
	client, err := vaultapi.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault: client: %w", err)
	}
	client.SetToken("") // NewClient reads VAULT_TOKEN; only auth token uses it
	v := &Vault{cfg: cfg, log: log.With().Str("component", "credentials.vault").Logger(), client: client, now: time.Now}

	switch cfg.Auth {
	case "token":
		tok := os.Getenv(vaultapi.EnvVaultToken)
		if tok == "" {
			return nil, errors.New("vault: credentials.vault.auth is token but VAULT_TOKEN is not set")
		}
		client.SetToken(tok)
		if err := v.lookupSelf(ctx); err != nil && isDefinitive(err) {
			return nil, fmt.Errorf("vault: VAULT_TOKEN refused: %w", sanitize(err))
		} else if err != nil {
			v.log.Warn().Err(sanitize(err)).Msg("vault not reachable at start; will retry")
		}
	case "approle":
		if cfg.RoleID == "" || cfg.SecretID == "" {
			return nil, errors.New("vault: credentials.vault.role_id and secret_id are required for auth approle")
		}
		if err := v.login(ctx); err != nil && isDefinitive(err) {
			return nil, fmt.Errorf("vault: approle login refused: %w", sanitize(err))
		} else if err != nil {
			v.log.Warn().Err(sanitize(err)).Msg("vault approle login failed at start; will retry")
		}
	case "jwt":
		if cfg.JWTRole == "" {
			return nil, errors.New("vault: credentials.vault.jwt_role is required for auth jwt")
		}
	default:
		return nil, fmt.Errorf("vault: credentials.vault.auth %q is not one of token, jwt, approle", cfg.Auth)
	}
	if cfg.Auth != "jwt" {
		lctx, cancel := context.WithCancel(context.Background())
		v.cancel = cancel
		v.wg.Add(1)
		go v.tokenLoop(lctx)
	}
	return v, nil
}

// Name implements Provider.
func (v *Vault) Name() string { return "vault" }

// Close stops the token goroutine. Leases already handed out stay valid
// until they are revoked or expire.
func (v *Vault) Close() error {
	if v.cancel != nil {
		v.cancel()
	}
	v.wg.Wait()
	return nil
}

// Check reports whether Vault can mint: reachable, initialised, unsealed,
// and (token/approle) pgwarden holds a working token.
func (v *Vault) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, vaultRequestTimeout)
	defer cancel()
	h, err := v.client.Sys().HealthWithContext(ctx)
	if err != nil {
		return errors.New(classify(err, "").Public)
	}
	switch {
	case !h.Initialized:
		return errors.New("vault is not initialized")
	case h.Sealed:
		return errors.New("vault is sealed")
	}
	if v.cfg.Auth != "jwt" {
		v.mu.Lock()
		lerr := v.loginErr
		v.mu.Unlock()
		if lerr != nil {
			return fmt.Errorf("vault login: %s", classify(lerr, "").Public)
		}
	}
	return nil
}

var vaultRoleName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// PickVaultRole chooses the one Vault database role for a session from the
// db_role names of the principal's groups: the first entry of order that the
// principal has, else the first of roles in sorted order. It returns "" when
// roles is empty.
func PickVaultRole(roles, order []string) string {
	for _, o := range order {
		if slices.Contains(roles, o) {
			return o
		}
	}
	best := ""
	for _, r := range roles {
		if r != "" && (best == "" || r < best) {
			best = r
		}
	}
	return best
}

// Mint implements Provider: it reads <mount>/creds/<role> for the session.
func (v *Vault) Mint(ctx context.Context, req Request) (Lease, error) {
	role := PickVaultRole(req.DBRoles, v.cfg.RoleOrder)
	if role == "" {
		return nil, &MintError{Public: "vault: no database role for your groups"}
	}
	if !vaultRoleName.MatchString(role) || strings.Contains(role, "..") {
		return nil, &MintError{Public: fmt.Sprintf("vault: invalid database role name %q", role)}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*vaultRequestTimeout)
	defer cancel()

	client := v.client
	var tokenExpiry time.Time
	if v.cfg.Auth == "jwt" {
		c, exp, err := v.jwtLogin(ctx, req.Token)
		if err != nil {
			return nil, err
		}
		client, tokenExpiry = c, exp
	} else if err := v.ensureToken(ctx); err != nil {
		return nil, classify(err, role)
	}

	path := v.cfg.Mount + "/creds/" + role
	start := v.now()
	sec, err := client.Logical().ReadWithContext(ctx, path)
	if err != nil && v.cfg.Auth == "approle" && statusOf(err) == http.StatusForbidden {
		// pgwarden's token may have just expired: log in again once.
		if lerr := v.login(ctx); lerr == nil {
			start = v.now()
			sec, err = client.Logical().ReadWithContext(ctx, path)
		}
	}
	if err != nil {
		if client != v.client {
			revokeSelf(client)
		}
		me := classify(err, role)
		v.log.Warn().Str("role", role).Str("session", req.SessionID).Err(me.Cause).Msg("vault mint failed")
		return nil, me
	}
	l, perr := leaseFromSecret(sec, start)
	if perr != nil {
		if client != v.client {
			revokeSelf(client)
		}
		if sec != nil && sec.LeaseID != "" {
			_ = v.client.Sys().RevokeWithContext(ctx, sec.LeaseID)
		}
		return nil, &MintError{Public: fmt.Sprintf("vault database role %s not found", role), Cause: perr}
	}
	l.v, l.client, l.role = v, client, role
	l.perSession = client != v.client
	if l.perSession && !tokenExpiry.IsZero() && tokenExpiry.Before(l.expiry) {
		l.expiry = tokenExpiry // the lease dies with the login token
	}
	v.log.Debug().Str("role", role).Str("session", req.SessionID).Str("backend_user", l.username).
		Time("expiry", l.expiry).Msg("vault credential minted")
	return l, nil
}

// jwtLogin logs in to auth/<jwt_mount>/login with the user's own OIDC token
// on a fresh client and returns that client holding the resulting token.
func (v *Vault) jwtLogin(ctx context.Context, jwt string) (*vaultapi.Client, time.Time, error) {
	if jwt == "" {
		return nil, time.Time{}, &MintError{Public: "vault: jwt auth needs the session's OIDC token"}
	}
	c, err := v.client.Clone()
	if err != nil {
		return nil, time.Time{}, &MintError{Public: "vault client error", Cause: err}
	}
	c.SetToken("") // Clone re-reads VAULT_TOKEN; jwt mode holds no power of its own
	start := v.now()
	sec, err := c.Logical().WriteWithContext(ctx, "auth/"+v.cfg.JWTMount+"/login", map[string]any{
		"role": v.cfg.JWTRole,
		"jwt":  jwt,
	})
	if err != nil {
		me := classify(err, "")
		switch statusOf(err) {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusUnauthorized:
			me.Public = "vault jwt login refused"
		}
		v.log.Warn().Err(me.Cause).Msg("vault jwt login failed")
		return nil, time.Time{}, me
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, time.Time{}, &MintError{Public: "vault jwt login returned no token"}
	}
	c.SetToken(sec.Auth.ClientToken)
	var exp time.Time
	if sec.Auth.LeaseDuration > 0 {
		exp = start.Add(time.Duration(sec.Auth.LeaseDuration) * time.Second)
	}
	return c, exp, nil
}

func revokeSelf(c *vaultapi.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), vaultRequestTimeout)
	defer cancel()
	_ = c.Auth().Token().RevokeSelfWithContext(ctx, "")
	c.ClearToken()
}

// leaseFromSecret extracts the credential from a creds read. start is when
// the request was sent (the lease's TTL counts from then).
func leaseFromSecret(sec *vaultapi.Secret, start time.Time) (*vaultLease, error) {
	if sec == nil {
		return nil, errors.New("vault returned no secret (mount or role missing)")
	}
	user, _ := sec.Data["username"].(string)
	pass, _ := sec.Data["password"].(string)
	if user == "" || pass == "" {
		return nil, errors.New("vault secret has no username/password")
	}
	if sec.LeaseID == "" || sec.LeaseDuration <= 0 {
		return nil, errors.New("vault secret has no lease")
	}
	ttl := time.Duration(sec.LeaseDuration) * time.Second
	return &vaultLease{
		leaseID: sec.LeaseID, username: user, password: pass,
		expiry: start.Add(ttl), increment: sec.LeaseDuration, renewable: sec.Renewable,
	}, nil
}

// vaultLease is one session's Vault database credential.
type vaultLease struct {
	v          *Vault
	client     *vaultapi.Client // the token that read the secret (per session for jwt)
	perSession bool
	role       string
	leaseID    string
	username   string
	increment  int // seconds: the lease's initial TTL, asked for on every renewal

	mu        sync.Mutex
	password  string
	expiry    time.Time
	renewable bool
	final     bool // max TTL reached or refused: no further renewals
	revoked   bool
}

func (l *vaultLease) Username() string { return l.username }

func (l *vaultLease) Password() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.password
}

func (l *vaultLease) Expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiry
}

// LeaseID is Vault's lease id (not a secret: it grants nothing by itself).
func (l *vaultLease) LeaseID() string { return l.leaseID }

// Renew extends the lease by its initial TTL. When Vault caps the TTL (the
// role's max_ttl, or with jwt the login token's max TTL, is reached) or
// refuses, it returns ErrNotRenewable and Expiry is then the final expiry.
// Transport failures (Vault unreachable or sealed) return another error: the
// lease keeps its current expiry and the caller may try again.
func (l *vaultLease) Renew(ctx context.Context) (time.Time, error) {
	l.mu.Lock()
	if l.revoked || l.final || !l.renewable {
		exp := l.expiry
		l.mu.Unlock()
		return exp, ErrNotRenewable
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, vaultRequestTimeout)
	defer cancel()

	capped := false
	var tokenExp time.Time
	if l.perSession {
		start := l.v.now()
		sec, err := l.client.Auth().Token().RenewSelfWithContext(ctx, l.increment)
		if err != nil {
			return l.renewFailed(err)
		}
		if sec == nil || sec.Auth == nil {
			return l.renewFailed(errors.New("vault renew-self returned no auth"))
		}
		if sec.Auth.LeaseDuration > 0 {
			tokenExp = start.Add(time.Duration(sec.Auth.LeaseDuration) * time.Second)
			capped = sec.Auth.LeaseDuration < l.increment || !sec.Auth.Renewable
		}
	}
	start := l.v.now()
	sec, err := l.client.Sys().RenewWithContext(ctx, l.leaseID, l.increment)
	if err != nil {
		return l.renewFailed(err)
	}
	if sec == nil || sec.LeaseDuration <= 0 {
		return l.renewFailed(errors.New("vault renewed the lease with no TTL"))
	}
	exp := start.Add(time.Duration(sec.LeaseDuration) * time.Second)
	if sec.LeaseDuration < l.increment || !sec.Renewable {
		capped = true
	}
	if !tokenExp.IsZero() && tokenExp.Before(exp) {
		exp = tokenExp
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.revoked {
		return l.expiry, ErrNotRenewable
	}
	l.expiry = exp
	if capped {
		l.final = true
		return exp, ErrNotRenewable
	}
	return exp, nil
}

func (l *vaultLease) renewFailed(err error) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if isDefinitive(err) {
		// Vault refused (lease or token gone, max TTL passed, permission):
		// this credential will not be extended again.
		l.final = true
		return l.expiry, fmt.Errorf("%w: %v", ErrNotRenewable, sanitize(err))
	}
	return l.expiry, fmt.Errorf("vault lease renewal: %s: %w", classify(err, l.role).Public, sanitize(err))
}

// Revoke revokes the lease (Vault's revocation statements drop the role)
// and, with auth jwt, the session's login token. Safe to call more than once.
func (l *vaultLease) Revoke(ctx context.Context) error {
	l.mu.Lock()
	if l.revoked {
		l.mu.Unlock()
		return nil
	}
	l.revoked = true
	l.password = ""
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, vaultRequestTimeout)
	defer cancel()

	err := l.client.Sys().RevokeWithContext(ctx, l.leaseID)
	if l.perSession {
		// Revoking the login token also revokes every lease it created
		// (asynchronously), so a policy without sys/leases/revoke still
		// ends the credential.
		terr := l.client.Auth().Token().RevokeSelfWithContext(ctx, "")
		l.client.ClearToken()
		if err != nil && terr == nil && statusOf(err) == http.StatusForbidden {
			err = nil
		} else if err == nil {
			err = terr
		}
	}
	if err != nil {
		l.v.log.Warn().Str("role", l.role).Str("backend_user", l.username).Err(sanitize(err)).Msg("vault lease revocation failed")
		return fmt.Errorf("vault: revoke lease of %s: %s: %w", l.username, classify(err, l.role).Public, sanitize(err))
	}
	return nil
}

// --- pgwarden's own token (auth token and approle) ---

func (v *Vault) lookupSelf(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, vaultRequestTimeout)
	defer cancel()
	sec, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		v.setToken(0, err)
		return err
	}
	ttl, _ := sec.TokenTTL()
	v.setToken(ttl, nil)
	return nil
}

// login performs an AppRole login and installs the token on the base client.
func (v *Vault) login(ctx context.Context) error {
	v.loginMu.Lock()
	defer v.loginMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, vaultRequestTimeout)
	defer cancel()
	c, err := v.client.Clone()
	if err != nil {
		return err
	}
	c.SetToken("")
	start := v.now()
	sec, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": v.cfg.RoleID, "secret_id": v.cfg.SecretID,
	})
	if err == nil && (sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "") {
		err = errors.New("vault approle login returned no token")
	}
	if err != nil {
		v.setToken(0, err)
		return err
	}
	v.client.SetToken(sec.Auth.ClientToken)
	v.mu.Lock()
	v.tokenTTL = time.Duration(sec.Auth.LeaseDuration) * time.Second
	v.tokenExpiry = time.Time{}
	if v.tokenTTL > 0 {
		v.tokenExpiry = start.Add(v.tokenTTL)
	}
	v.loginErr = nil
	v.mu.Unlock()
	v.log.Info().Dur("token_ttl", v.tokenTTL).Msg("vault approle login")
	return nil
}

func (v *Vault) setToken(ttl time.Duration, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.loginErr = err
	if err == nil {
		v.tokenTTL = ttl
		v.tokenExpiry = time.Time{}
		if ttl > 0 {
			v.tokenExpiry = v.now().Add(ttl)
		}
	}
}

// ensureToken makes sure pgwarden holds a token that has not expired
// (approle: logs in again when needed).
func (v *Vault) ensureToken(ctx context.Context) error {
	v.mu.Lock()
	exp, lerr := v.tokenExpiry, v.loginErr
	v.mu.Unlock()
	if v.cfg.Auth != "approle" {
		return nil // token: a refused token shows as permission denied
	}
	if lerr == nil && (exp.IsZero() || v.now().Before(exp.Add(-time.Second))) {
		return nil
	}
	return v.login(ctx)
}

// refresh renews pgwarden's token, or (approle) logs in again when it
// cannot be renewed far enough.
func (v *Vault) refresh(ctx context.Context) {
	v.mu.Lock()
	ttl, lerr := v.tokenTTL, v.loginErr
	v.mu.Unlock()
	if v.cfg.Auth == "approle" && lerr != nil {
		_ = v.login(ctx)
		return
	}
	if v.cfg.Auth == "token" && (lerr != nil || ttl == 0) {
		_ = v.lookupSelf(ctx) // non-expiring token: only re-check it
		return
	}
	rctx, cancel := context.WithTimeout(ctx, vaultRequestTimeout)
	defer cancel()
	start := v.now()
	sec, err := v.client.Auth().Token().RenewSelfWithContext(rctx, int(ttl/time.Second))
	if err == nil && (sec == nil || sec.Auth == nil) {
		err = errors.New("vault renew-self returned no auth")
	}
	if err != nil {
		v.log.Warn().Err(sanitize(err)).Msg("vault token renewal failed")
		if v.cfg.Auth == "approle" {
			_ = v.login(ctx)
		} else if isDefinitive(err) {
			v.setToken(0, err)
		}
		return
	}
	got := time.Duration(sec.Auth.LeaseDuration) * time.Second
	if v.cfg.Auth == "approle" && got < ttl {
		_ = v.login(ctx) // near the token's max TTL: start over
		return
	}
	v.mu.Lock()
	v.tokenTTL, v.tokenExpiry, v.loginErr = got, start.Add(got), nil
	v.mu.Unlock()
}

func (v *Vault) tokenLoop(ctx context.Context) {
	defer v.wg.Done()
	t := time.NewTimer(v.nextRefresh())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v.refresh(ctx)
		t.Reset(v.nextRefresh())
	}
}

// nextRefresh: at two thirds of the token's TTL; every 5s while failing;
// every minute for a token that does not expire.
func (v *Vault) nextRefresh() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.loginErr != nil:
		return 5 * time.Second
	case v.tokenTTL == 0:
		return time.Minute
	}
	d := time.Until(v.tokenExpiry) * 2 / 3
	return max(d, 250*time.Millisecond)
}

// --- errors ---

func statusOf(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// isDefinitive: Vault answered and refused (4xx), as opposed to being
// unreachable, sealed or failing internally.
func isDefinitive(err error) bool {
	s := statusOf(err)
	return s >= 400 && s < 500
}

// vaultError is a Vault failure without request URLs or bodies.
type vaultError struct {
	status int
	msgs   []string
}

func (e *vaultError) Error() string {
	return fmt.Sprintf("vault status %d: %s", e.status, strings.Join(e.msgs, "; "))
}

// sanitize replaces a Vault ResponseError with its status and Vault's
// error strings (Vault never echoes tokens in them). Other errors (transport)
// carry no secret either.
func sanitize(err error) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		msgs := make([]string, 0, len(re.Errors))
		for _, m := range re.Errors {
			msgs = append(msgs, strings.Join(strings.Fields(m), " "))
		}
		if re.RawError {
			msgs = []string{"(unparsable response)"}
		}
		return &vaultError{status: re.StatusCode, msgs: msgs}
	}
	return err
}

// classify maps a Vault failure to a client-safe MintError naming the cause.
func classify(err error, role string) *MintError {
	cause := sanitize(err)
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) {
			return &MintError{Public: "vault request cancelled", Cause: cause}
		}
		return &MintError{Public: "vault unreachable", Cause: cause}
	}
	all := strings.ToLower(strings.Join(re.Errors, " "))
	subject := "database role " + role
	if role == "" {
		subject = "request"
	}
	switch {
	case strings.Contains(all, "sealed"):
		return &MintError{Public: "vault is sealed", Cause: cause}
	case re.StatusCode == http.StatusForbidden || strings.Contains(all, "permission denied"):
		return &MintError{Public: "vault permission denied for " + subject, Cause: cause}
	case re.StatusCode == http.StatusNotFound || strings.Contains(all, "unknown role") || strings.Contains(all, "no handler for route"):
		if role == "" {
			return &MintError{Public: "vault path not found", Cause: cause}
		}
		return &MintError{Public: "vault database role " + role + " not found", Cause: cause}
	case re.StatusCode == http.StatusTooManyRequests:
		return &MintError{Public: "vault rate limited the request", Cause: cause}
	case re.StatusCode >= 500:
		return &MintError{Public: fmt.Sprintf("vault error (status %d)", re.StatusCode), Cause: cause}
	default:
		return &MintError{Public: fmt.Sprintf("vault refused the %s (status %d)", subject, re.StatusCode), Cause: cause}
	}
}

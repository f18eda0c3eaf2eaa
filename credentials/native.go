package credentials

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
)

// MaxRoleNameLen is PostgreSQL's identifier limit (NAMEDATALEN-1 bytes).
const MaxRoleNameLen = 63

// DefaultMaxLifetime bounds how far Renew extends a native lease past its
// mint time.
const DefaultMaxLifetime = 24 * time.Hour

const (
	suffixLen      = 10 // base32 characters of crypto/rand (50 bits)
	passwordBytes  = 32
	revokeTimeout  = 15 * time.Second
	terminateWait  = 5 * time.Second
	dropRetries    = 5
	adminPoolConns = 4
)

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,15}$`)

// Native mints a PostgreSQL login role per session with the admin DSN (a
// role with CREATEROLE, not a superuser). It is safe for concurrent use.
type Native struct {
	pool        *pgxpool.Pool
	prefix      string
	ttl         time.Duration
	maxLifetime time.Duration
	admin       string // current_user of the admin pool
	log         zerolog.Logger

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ Provider = (*Native)(nil)

// NewNative connects to cfg.AdminDSN, checks that the role may create roles,
// and sweeps roles with cfg.RolePrefix whose VALID UNTIL has passed (left
// behind by a gateway that crashed). A background sweep then repeats every
// ttl until Close.
func NewNative(ctx context.Context, cfg config.Native, ttl time.Duration, log zerolog.Logger) (*Native, error) {
	if !prefixRE.MatchString(cfg.RolePrefix) {
		return nil, &MintError{Public: "native: role_prefix must be 1-16 lowercase letters, digits or _"}
	}
	if ttl <= 0 {
		return nil, &MintError{Public: "native: ttl must be positive"}
	}
	pcfg, err := pgxpool.ParseConfig(cfg.AdminDSN)
	if err != nil {
		// pgconn redacts the password in parse errors.
		return nil, &MintError{Public: "native: invalid admin_dsn", Cause: err}
	}
	pcfg.MaxConns = adminPoolConns
	pcfg.MinConns = 0
	if pcfg.ConnConfig.RuntimeParams == nil {
		pcfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = "pgwarden-credentials"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, &MintError{Public: "native: cannot connect with admin_dsn", Cause: err}
	}
	n := &Native{
		pool: pool, prefix: cfg.RolePrefix, ttl: ttl, maxLifetime: DefaultMaxLifetime,
		log:  log.With().Str("component", "credentials.native").Logger(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	var super, createRole bool
	err = pool.QueryRow(ctx, "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").Scan(&n.admin, &super, &createRole)
	if err != nil {
		pool.Close()
		return nil, &MintError{Public: "native: cannot connect with admin_dsn", Cause: err}
	}
	if !createRole && !super {
		pool.Close()
		return nil, &MintError{Public: fmt.Sprintf("native: admin role %q lacks CREATEROLE", n.admin)}
	}
	if super {
		n.log.Warn().Str("admin_role", n.admin).Msg("admin_dsn connects as a superuser; a role with only CREATEROLE is enough and safer")
	}
	if _, err := n.Sweep(ctx); err != nil {
		n.log.Warn().Err(err).Msg("startup sweep of expired session roles failed")
	}
	go n.sweeper()
	return n, nil
}

// SetMaxLifetime changes how far past its mint time a lease may be renewed
// (default DefaultMaxLifetime). Call it before minting.
func (n *Native) SetMaxLifetime(d time.Duration) {
	if d > 0 {
		n.maxLifetime = d
	}
}

// Name implements Provider.
func (n *Native) Name() string { return "native" }

// Check pings the admin pool.
func (n *Native) Check(ctx context.Context) error {
	if err := n.pool.Ping(ctx); err != nil {
		return &MintError{Public: "native: admin connection unavailable", Cause: err}
	}
	return nil
}

// Close stops the background sweep and closes the admin pool. Leases still
// open are not revoked (the glue revokes them first); their roles expire and
// the next sweep removes them.
func (n *Native) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		<-n.done
		n.pool.Close()
	})
	return nil
}

func (n *Native) sweeper() {
	defer close(n.done)
	t := time.NewTicker(n.ttl)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := n.Sweep(ctx); err != nil {
				n.log.Warn().Err(err).Msg("sweep of expired session roles failed")
			}
			cancel()
		}
	}
}

// Sweep drops every role whose name starts with the prefix, whose VALID
// UNTIL has passed and which this admin role is a member of (so roles of the
// same prefix created by someone else are never touched). It returns how
// many roles it dropped.
func (n *Native) Sweep(ctx context.Context) (int, error) {
	rows, err := n.pool.Query(ctx, `SELECT rolname FROM pg_roles
		WHERE starts_with(rolname, $1) AND rolvaliduntil IS NOT NULL AND rolvaliduntil < now()
		  AND rolname <> current_user AND pg_has_role(current_user, oid, 'MEMBER')
		ORDER BY rolname`, n.prefix)
	if err != nil {
		return 0, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	var errs []error
	swept := 0
	for _, name := range names {
		if err := n.dropRole(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		swept++
		n.log.Info().Str("role", name).Msg("swept expired session role")
	}
	if swept > 0 || len(errs) > 0 {
		n.log.Info().Int("swept", swept).Int("failed", len(errs)).Msg("sweep of expired session roles")
	}
	return swept, errors.Join(errs...)
}

// SweepRoles drops the named session roles now, before their VALID UNTIL
// (the sessions of a gateway found dead: nobody will revoke them). Only
// roles with the prefix that this admin role is a member of are touched;
// it returns how many it dropped.
func (n *Native) SweepRoles(ctx context.Context, names []string) (int, error) {
	var errs []error
	swept := 0
	for _, name := range names {
		var ours bool
		err := n.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND starts_with(rolname, $2)
			AND rolname <> current_user AND pg_has_role(current_user, oid, 'MEMBER'))`, name, n.prefix).Scan(&ours)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ours {
			continue
		}
		if err := n.dropRole(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		swept++
		n.log.Info().Str("role", name).Msg("swept the session role of a lost gateway")
	}
	return swept, errors.Join(errs...)
}

// Mint creates the session's login role: INHERIT, member of each of
// req.DBRoles, with a SCRAM-SHA-256 verifier of a fresh random password and
// VALID UNTIL now()+ttl. The admin role is made a member of it so that it
// can later terminate its backends and reassign what it owns.
func (n *Native) Mint(ctx context.Context, req Request) (Lease, error) {
	raw := make([]byte, passwordBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, &MintError{Public: "native: could not create session role", Cause: err}
	}
	pw := make([]byte, base64.RawURLEncoding.EncodedLen(len(raw)))
	base64.RawURLEncoding.Encode(pw, raw)
	clear(raw)
	verifier, err := mintedVerifier(string(pw))
	if err != nil {
		clear(pw)
		return nil, &MintError{Public: "native: could not create session role", Cause: err}
	}
	var (
		name          string
		minted, until time.Time
	)
	for attempt := 0; ; attempt++ {
		name, err = RoleName(n.prefix, req.Principal.User)
		if err != nil {
			break
		}
		minted, until, err = n.createRole(ctx, name, verifier, req.DBRoles)
		if err == nil || attempt >= 2 || pgCode(err) != "42710" { // duplicate_object: draw another suffix
			break
		}
	}
	if err != nil {
		clear(pw)
		public := "native: could not create session role"
		if pgCode(err) == "42704" {
			public = "native: could not create session role (a configured db_role does not exist)"
		}
		return nil, &MintError{Public: public, Cause: err}
	}
	n.log.Debug().Str("role", name).Str("user", req.Principal.User).Strs("db_roles", req.DBRoles).
		Str("session", req.SessionID).Time("valid_until", until).Msg("minted session role")
	return &nativeLease{n: n, name: name, password: pw, minted: minted, expiry: until}, nil
}

func (n *Native) createRole(ctx context.Context, name, verifier string, dbRoles []string) (minted, until time.Time, err error) {
	// The server's clock decides the expiry; Go only formats it. CREATE ROLE
	// is atomic on its own, so no transaction (two round trips in all).
	if err = n.pool.QueryRow(ctx, "SELECT now(), now() + make_interval(secs => $1)", n.ttl.Seconds()).Scan(&minted, &until); err != nil {
		return
	}
	var b strings.Builder
	b.Grow(256 + 32*len(dbRoles))
	b.WriteString("CREATE ROLE ")
	b.WriteString(quoteIdent(name))
	b.WriteString(" WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD ")
	b.WriteString(quoteLiteral(verifier))
	b.WriteString(" VALID UNTIL ")
	b.WriteString(quoteLiteral(timestampLiteral(until)))
	if len(dbRoles) > 0 {
		b.WriteString(" IN ROLE ")
		for i, r := range dbRoles {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteIdent(r))
		}
	}
	b.WriteString(" ROLE ")
	b.WriteString(quoteIdent(n.admin))
	_, err = n.pool.Exec(ctx, b.String())
	return
}

// dropRole removes a session role: no new logins, its backends terminated,
// whatever it owns reassigned (to one of its database roles the admin may
// act as, else to the admin) and its remaining privileges dropped, in every
// database where it has them, then the role itself. A role that does not
// exist counts as dropped.
func (n *Native) dropRole(ctx context.Context, name string) error {
	id := quoteIdent(name)
	if _, err := n.pool.Exec(ctx, "ALTER ROLE "+id+" NOLOGIN"); err != nil {
		if pgCode(err) == "42704" {
			return nil
		}
		return err
	}
	if err := n.terminate(ctx, name); err != nil {
		return err
	}
	var last error
	for attempt := 0; attempt < dropRetries; attempt++ {
		_, err := n.pool.Exec(ctx, "DROP ROLE IF EXISTS "+id)
		if err == nil {
			return nil
		}
		last = err
		if pgCode(err) != "2BP01" { // dependent_objects_still_exist
			return err
		}
		if err := n.releaseOwned(ctx, name); err != nil {
			return err
		}
	}
	return last
}

// terminate ends the role's backends and waits (bounded) until none is left.
func (n *Native) terminate(ctx context.Context, name string) error {
	deadline := time.Now().Add(terminateWait)
	for {
		var left int
		err := n.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid, 1000))
			FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`, name).Scan(&left)
		if err != nil {
			return err
		}
		if err := n.pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", name).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d backend(s) of the role still running", left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// releaseOwned runs REASSIGN OWNED + DROP OWNED in each database where the
// role owns objects or holds privileges (found in pg_shdepend).
func (n *Native) releaseOwned(ctx context.Context, name string) error {
	rows, err := n.pool.Query(ctx, `SELECT DISTINCT d.datname FROM pg_shdepend s
		JOIN pg_database d ON d.oid = s.dbid
		WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)
		ORDER BY 1`, name)
	if err != nil {
		return err
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var target string
	err = n.pool.QueryRow(ctx, `SELECT coalesce((SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
		WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $1) AND pg_has_role(current_user, r.oid, 'USAGE')
		ORDER BY r.rolname LIMIT 1), current_user)`, name).Scan(&target)
	if err != nil {
		return err
	}
	own := n.pool.Config().ConnConfig.Database
	for _, db := range dbs {
		stmts := []string{
			"REASSIGN OWNED BY " + quoteIdent(name) + " TO " + quoteIdent(target),
			"DROP OWNED BY " + quoteIdent(name),
		}
		if db == own {
			if _, err := n.pool.Exec(ctx, stmts[0]+"; "+stmts[1]); err != nil {
				return err
			}
		} else if err := n.execIn(ctx, db, stmts...); err != nil {
			return err
		}
		n.log.Info().Str("role", name).Str("database", db).Str("new_owner", target).Msg("reassigned objects of session role")
	}
	return nil
}

func (n *Native) execIn(ctx context.Context, db string, stmts ...string) error {
	cfg := n.pool.Config().ConnConfig.Copy()
	cfg.Database = db
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// nativeLease is one minted role.
type nativeLease struct {
	n    *Native
	name string

	mu       sync.Mutex
	password []byte // zeroed on Revoke
	minted   time.Time
	expiry   time.Time
	revoked  bool
}

func (l *nativeLease) Username() string { return l.name }

func (l *nativeLease) Password() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.password)
}

func (l *nativeLease) Expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiry
}

// Renew moves VALID UNTIL to now()+ttl, but never past mint time plus the
// maximum lifetime; ErrNotRenewable once that is reached or after Revoke.
func (l *nativeLease) Renew(ctx context.Context) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.revoked || l.password == nil {
		return time.Time{}, ErrNotRenewable
	}
	var now time.Time
	if err := l.n.pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return time.Time{}, &MintError{Public: "native: could not renew session role", Cause: err}
	}
	until := now.Add(l.n.ttl)
	if limit := l.minted.Add(l.n.maxLifetime); until.After(limit) {
		until = limit
	}
	if !until.After(l.expiry) {
		return l.expiry, ErrNotRenewable
	}
	if _, err := l.n.pool.Exec(ctx, "ALTER ROLE "+quoteIdent(l.name)+" VALID UNTIL "+quoteLiteral(timestampLiteral(until))); err != nil {
		return time.Time{}, &MintError{Public: "native: could not renew session role", Cause: err}
	}
	l.expiry = until
	return until, nil
}

// Revoke terminates the role's backends and drops it. It is not cut short
// by a cancelled ctx (a session that ends by cancellation must still give
// its role back) but is bounded by its own timeout. Safe to call again after
// a failure; a no-op after success.
func (l *nativeLease) Revoke(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.password)
	l.password = nil
	if l.revoked {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revokeTimeout)
	defer cancel()
	if err := l.n.dropRole(ctx, l.name); err != nil {
		l.n.log.Warn().Err(err).Str("role", l.name).Msg("revoke failed; the role expires and a later sweep drops it")
		return &MintError{Public: "native: could not drop session role", Cause: err}
	}
	l.revoked = true
	l.n.log.Debug().Str("role", l.name).Msg("revoked session role")
	return nil
}

var roleSuffixEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// RoleName builds `<prefix><sanitized user>_<random>`: the user lowercased
// with every run of characters outside [a-z0-9] turned into one "_",
// truncated so the whole name fits PostgreSQL's 63-byte limit, and a
// 10-character base32 suffix from crypto/rand.
func RoleName(prefix, user string) (string, error) {
	var rnd [(suffixLen*5 + 7) / 8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	suffix := roleSuffixEncoding.EncodeToString(rnd[:])[:suffixLen]
	return prefix + sanitizeUser(user, MaxRoleNameLen-len(prefix)-1-suffixLen) + "_" + suffix, nil
}

func sanitizeUser(user string, max int) string {
	if max <= 0 {
		return ""
	}
	b := make([]byte, 0, min(len(user), max))
	sep := true // suppresses a leading "_" and runs of them
	for _, r := range strings.ToLower(user) {
		if len(b) >= max {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b = append(b, byte(r))
			sep = false
		} else if !sep {
			b = append(b, '_')
			sep = true
		}
	}
	for len(b) > 0 && b[len(b)-1] == '_' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "user"[:min(4, max)]
	}
	return string(b)
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// quoteLiteral quotes s as a SQL string literal, valid whatever
// standard_conforming_strings is.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

func timestampLiteral(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

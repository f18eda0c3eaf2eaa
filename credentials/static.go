package credentials

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
)

// staticExpiry is the far expiry of static leases: they never expire.
var staticExpiry = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Static hands every session the same configured user and password. It is
// for development only: there is no per-session credential to revoke, so a
// leaked password outlives the session.
type Static struct {
	user, password string
}

var _ Provider = (*Static)(nil)

// NewStatic returns the static provider and logs a warning that it is for
// development only.
func NewStatic(cfg config.Static, log zerolog.Logger) *Static {
	log.Warn().Str("component", "credentials.static").Str("user", cfg.User).
		Msg("static credentials are for development only: every session shares one database login that is never revoked")
	return &Static{user: cfg.User, password: cfg.Password}
}

func (s *Static) Name() string                    { return "static" }
func (s *Static) Check(ctx context.Context) error { return nil }
func (s *Static) Close() error                    { return nil }

// Mint returns a lease on the configured user and password.
func (s *Static) Mint(ctx context.Context, req Request) (Lease, error) {
	if s.user == "" {
		return nil, &MintError{Public: "static: no user configured"}
	}
	return staticLease{user: s.user, password: s.password}, nil
}

type staticLease struct{ user, password string }

func (l staticLease) Username() string                             { return l.user }
func (l staticLease) Password() string                             { return l.password }
func (l staticLease) Expiry() time.Time                            { return staticExpiry }
func (l staticLease) Renew(ctx context.Context) (time.Time, error) { return staticExpiry, nil }
func (l staticLease) Revoke(ctx context.Context) error             { return nil }

// Package credentials turns a verified Principal into a Lease: a database
// credential that lives for one session only, and takes it back (revoke,
// renew). Providers: native (CREATE ROLE ... VALID UNTIL in PostgreSQL
// itself), vault (HashiCorp Vault's database secrets engine) and static
// (development only). pgwire knows providers only through Provider.
package credentials

import (
	"context"
	"errors"
	"time"

	"github.com/pgwarden/pgwarden/identity"
)

// Request is what a provider needs to mint one session's credential.
type Request struct {
	Principal identity.Principal
	Token     string   // the user's own OIDC token (vault auth: jwt); never logged
	DBRoles   []string // db_role of each of the principal's groups, deduplicated, sorted
	Database  string
	SessionID string
}

// Lease is one session's credential.
type Lease interface {
	// Username and Password to connect upstream with. The password is never logged.
	Username() string
	Password() string
	// Expiry is when the credential stops working.
	Expiry() time.Time
	// Renew extends the credential and returns the new expiry, or
	// ErrNotRenewable when it cannot be extended any further.
	Renew(ctx context.Context) (time.Time, error)
	// Revoke ends the credential: terminates its backends and removes it.
	// It is safe to call more than once.
	Revoke(ctx context.Context) error
}

// Provider mints leases.
type Provider interface {
	// Name is "native", "vault" or "static".
	Name() string
	Mint(ctx context.Context, req Request) (Lease, error)
	// Check reports whether the provider can mint (for /readyz).
	Check(ctx context.Context) error
	Close() error
}

// ErrNotRenewable: the lease cannot be extended (max TTL reached, revoked).
var ErrNotRenewable = errors.New("credential cannot be renewed")

// MintError describes why minting failed in client-safe words (Cause has
// the detail for logs). pgwire turns it into 08001.
type MintError struct {
	Public string // e.g. "vault: permission denied reading database/creds/reader"
	Cause  error
}

func (e *MintError) Error() string {
	if e.Cause != nil {
		return e.Public + ": " + e.Cause.Error()
	}
	return e.Public
}
func (e *MintError) Unwrap() error { return e.Cause }

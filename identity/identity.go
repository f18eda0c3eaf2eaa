package identity

import (
	"context"
	"errors"
	"time"
)

// Principal is a verified identity.
//
// A delegated token (RFC 8693 "act" claim: an agent acting for a person)
// yields a Principal with Actor set: User stays the person the token was
// issued for, Actor is the current actor's sub, and Groups holds only the
// groups both hold (see WithActor). Every decision that reads Groups —
// policy, unmask, approvers — therefore sees the intersection.
type Principal struct {
	User    string // value of username_claim; equals the startup user
	Subject string // sub
	// Actor is the sub of the token's "act" claim: the party acting for
	// User ("" for a token without one).
	Actor string
	// Groups are the effective groups: from groups_claim (normalized to a
	// flat list), narrowed to the actor's when Actor is set.
	Groups []string
	Expiry time.Time // token exp
	Issuer string
}

// HasGroup reports whether the principal is in group g.
func (p Principal) HasGroup(g string) bool {
	for _, x := range p.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// Reason classifies a refusal for metrics and logs (never the full detail to clients).
type Reason string

const (
	ReasonMissing      Reason = "missing"
	ReasonMalformed    Reason = "malformed"
	ReasonExpired      Reason = "expired"
	ReasonNotYetValid  Reason = "not_yet_valid"
	ReasonIssuer       Reason = "issuer"
	ReasonAudience     Reason = "audience"
	ReasonSignature    Reason = "signature"
	ReasonUserMismatch Reason = "user_mismatch"
	ReasonClaims       Reason = "claims"
	ReasonDelegation   Reason = "delegation" // a malformed "act" claim
	ReasonUnavailable  Reason = "issuer_unavailable"
)

// RefusalError is returned by Verify when a token is not accepted.
// Short() is what an unauthenticated client may see; Error() is for logs.
type RefusalError struct {
	Reason Reason
	Detail string // log-only detail; never contains the token
}

func (e *RefusalError) Error() string { return "token refused (" + string(e.Reason) + "): " + e.Detail }

// Short is the client-safe reason phrase.
func (e *RefusalError) Short() string {
	switch e.Reason {
	case ReasonMissing:
		return "no token given as password"
	case ReasonExpired:
		return "token expired"
	case ReasonUserMismatch:
		return "user does not match token"
	case ReasonUnavailable:
		return "identity provider unavailable"
	case ReasonDelegation:
		return "invalid delegation (act claim) in token"
	default:
		return "invalid token"
	}
}

// AsRefusal reports whether err is a *RefusalError.
func AsRefusal(err error) (*RefusalError, bool) {
	var r *RefusalError
	ok := errors.As(err, &r)
	return r, ok
}

// Verifier checks a token. user is the startup user name ("" skips the
// user-match check, e.g. for the admin API's bearer tokens).
type Verifier interface {
	Verify(ctx context.Context, token, user string) (Principal, error)
	// Check reports whether the issuer (discovery + JWKS) is reachable (for /readyz).
	Check(ctx context.Context) error
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p (set by the admin API's bearer middleware).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the bearer middleware verified, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

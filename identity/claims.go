package identity

import "time"

// Claim helpers shared by the verifiers of this module (identity.OIDC and
// identity/gwtoken), so both read a JWT's claims the same way.

// HasAudience reports whether the "aud" value v (a string or a list of
// strings) names want.
func HasAudience(v any, want string) bool { return hasAudience(v, want) }

// NumericDate reads the JWT NumericDate claim name (decoded with
// json.Number); ok is false when it is absent or null.
func NumericDate(claims map[string]any, name string) (t time.Time, ok bool, err error) {
	return numericDate(claims, name)
}

// SanitizeDetail bounds a token-supplied string (128 bytes) and replaces
// control characters, for refusal details and logs.
func SanitizeDetail(s string) string { return sanitize(s) }

package identity

import (
	"fmt"
	"strings"
	"time"
)

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

// MaxActDepth bounds how deeply "act" claims may nest. RFC 8693 §4.1 lets
// an act object carry its own act for the actor before it (a delegation
// chain); a real chain is one or two links, and a deeper one is refused
// rather than walked.
const MaxActDepth = 4

// GroupsOf reads a verifier's groups claim (its configured name or path,
// in the forms that verifier accepts) from one JSON object: the token's
// claims or an act object. Absent or null is (nil, nil).
type GroupsOf func(obj map[string]any) ([]string, error)

// WithActor applies the RFC 8693 "act" claim of claims to p, the principal
// the rest of the token names. Without an act claim p is returned as it is.
// With one, Actor is the sub of the outermost act object (the current
// actor; nested act objects are earlier actors, which §4.1 makes
// informational only: they are checked for shape, not consulted), and
// Groups becomes the groups p and the actor both hold. The actor's groups
// are read from the act object with groupsOf; an act object that names
// none gives the actor none, so the effective groups are empty: an actor
// whose groups are unknown gets no group's rights (fail closed).
//
// A malformed act claim — not an object, a sub missing, empty, not a
// string or with control characters, chains nested deeper than
// MaxActDepth, an actor groups claim of the wrong type — is a
// *RefusalError with ReasonDelegation; its detail never quotes the token.
func WithActor(p Principal, claims map[string]any, groupsOf GroupsOf) (Principal, error) {
	v, ok := claims["act"]
	if !ok {
		return p, nil
	}
	actor, obj, err := readAct(v)
	if err != nil {
		return Principal{}, refuse(ReasonDelegation, "act claim: %v", err)
	}
	var actorGroups []string
	if groupsOf != nil {
		if actorGroups, err = groupsOf(obj); err != nil {
			return Principal{}, refuse(ReasonDelegation, "act claim: the actor's groups: %v", err)
		}
	}
	p.Actor = actor
	p.Groups = intersect(p.Groups, actorGroups)
	return p, nil
}

// readAct checks the act chain starting at v and returns the current
// actor's sub and its act object.
func readAct(v any) (actor string, obj map[string]any, err error) {
	for depth := 1; ; depth++ {
		if depth > MaxActDepth {
			return "", nil, fmt.Errorf("delegation chain nested deeper than %d", MaxActDepth)
		}
		o, ok := v.(map[string]any)
		if !ok {
			return "", nil, fmt.Errorf("act at depth %d is %s, want a JSON object", depth, jsonKind(v))
		}
		sub, ok := o["sub"].(string)
		switch {
		case !ok:
			return "", nil, fmt.Errorf("act at depth %d has no sub string", depth)
		case sub == "":
			return "", nil, fmt.Errorf("act at depth %d has an empty sub", depth)
		case HasControl(sub):
			return "", nil, fmt.Errorf("act at depth %d: sub contains control characters", depth)
		}
		if depth == 1 {
			actor, obj = sub, o
		}
		next, nested := o["act"]
		if !nested {
			return actor, obj, nil
		}
		v = next
	}
}

// jsonKind names the JSON type of a decoded value, for refusal details.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case []any:
		return "an array"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}

// intersect returns the elements of a that are also in b, in a's order,
// each once; nil when there are none. Linear: a token near MaxTokenBytes
// can carry a thousand groups on each side.
func intersect(a, b []string) []string {
	if len(a) == 0 || len(b) == 0 {
		return nil
	}
	in := make(map[string]bool, len(b))
	for _, g := range b {
		in[g] = true
	}
	var out []string
	for _, g := range a {
		if in[g] {
			out = append(out, g)
			delete(in, g) // each once
		}
	}
	return out
}

// HasControl reports whether s holds a control character (C0 or DEL): a
// user name or actor with one is refused, it would forge log lines.
func HasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// CheckValidity checks a token's time claims against now, allowing skew
// either way: exp is required and must not have passed, nbf and iat (when
// present) must not lie in the future. It returns exp, or a *RefusalError.
func CheckValidity(claims map[string]any, now time.Time, skew time.Duration) (time.Time, error) {
	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return time.Time{}, refuse(ReasonClaims, "%v", err)
	}
	if !ok {
		return time.Time{}, refuse(ReasonClaims, "token has no exp")
	}
	if !now.Before(exp.Add(skew)) {
		return time.Time{}, refuse(ReasonExpired, "expired at %s (now %s, skew %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := numericDate(claims, name)
		if err != nil {
			return time.Time{}, refuse(ReasonClaims, "%v", err)
		}
		if ok && t.After(now.Add(skew)) {
			return time.Time{}, refuse(ReasonNotYetValid, "%s %s is in the future (now %s, skew %s)", name, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
		}
	}
	return exp, nil
}

// CheckUsername checks the value v of the username claim (named claim,
// for the refusal): a non-empty string without control characters. It
// returns the name, or a *RefusalError.
func CheckUsername(v any, claim string) (string, error) {
	name, ok := v.(string)
	if !ok || name == "" {
		return "", refuse(ReasonClaims, "username claim %q missing or not a string", claim)
	}
	if HasControl(name) {
		return "", refuse(ReasonClaims, "username claim %q contains control characters", claim)
	}
	return name, nil
}

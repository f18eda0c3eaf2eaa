package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Multi routes a token to the verifier of its (unverified) "iss" claim:
// pgwarden's own gateway tokens to their verifier, the IdP's to OIDC. A
// readable iss no verifier serves goes to fallback, or is refused with
// ReasonIssuer when fallback is nil; a token whose payload cannot be read
// is refused with ReasonMalformed. At most one verifier sees a token, and
// the iss peeked at here only picks it: that verifier checks the
// signature and iss itself. Check runs every verifier's Check (in issuer
// order, then fallback) and returns the first error.
func Multi(byIssuer map[string]Verifier, fallback Verifier) Verifier {
	m := &multi{byIssuer: make(map[string]Verifier, len(byIssuer)), fallback: fallback}
	for iss, v := range byIssuer {
		if v != nil {
			m.byIssuer[iss] = v
			m.order = append(m.order, iss)
		}
	}
	sort.Strings(m.order)
	return m
}

type multi struct {
	byIssuer map[string]Verifier
	order    []string
	fallback Verifier
}

func (m *multi) Verify(ctx context.Context, token, user string) (Principal, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return Principal{}, refuse(ReasonMissing, "empty token")
	}
	iss, err := peekIssuer(token)
	if err != nil {
		return Principal{}, err
	}
	if v, ok := m.byIssuer[iss]; ok && iss != "" {
		return v.Verify(ctx, token, user)
	}
	if m.fallback != nil {
		return m.fallback.Verify(ctx, token, user)
	}
	return Principal{}, refuse(ReasonIssuer, "no verifier for iss %q", sanitize(iss))
}

func (m *multi) Check(ctx context.Context) error {
	var first error
	for _, iss := range m.order {
		if err := m.byIssuer[iss].Check(ctx); err != nil && first == nil {
			first = fmt.Errorf("%s: %w", iss, err)
		}
	}
	if m.fallback != nil {
		if err := m.fallback.Check(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// peekIssuer reads the iss claim of a compact JWS without verifying it:
// the payload segment only, bounded by MaxTokenBytes. For routing only.
func peekIssuer(token string) (string, error) {
	if len(token) > MaxTokenBytes {
		return "", refuse(ReasonMalformed, "token of %d bytes exceeds %d", len(token), MaxTokenBytes)
	}
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first < 0 || first == last || strings.Count(token, ".") != 2 {
		return "", refuse(ReasonMalformed, "not a compact JWS (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(token[first+1:last], "="))
	if err != nil {
		return "", refuse(ReasonMalformed, "payload is not base64url")
	}
	// A map, not a struct: encoding/json matches struct fields
	// case-insensitively, and "ISS" is not "iss".
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return "", refuse(ReasonMalformed, "claims are not a JSON object")
	}
	raw, ok := claims["iss"]
	if !ok {
		return "", nil // no iss: the fallback's to judge, else ReasonIssuer
	}
	var iss string
	if err := json.Unmarshal(raw, &iss); err != nil {
		return "", refuse(ReasonMalformed, "iss is not a string")
	}
	return iss, nil
}

package gwtoken

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgwarden/pgwarden/identity"
)

// onlyES256 is the one algorithm a gateway token may use: "none", HMAC
// (the public key as a shared secret) and every other algorithm are refused
// before any signature check.
var onlyES256 = []jose.SignatureAlgorithm{jose.ES256}

// Verifier returns an identity.Verifier that accepts this Issuer's tokens
// only. Its checks and refusal reasons mirror identity.OIDC's.
func (i *Issuer) Verifier() identity.Verifier { return verifier{i} }

type verifier struct{ i *Issuer }

// Check reports nil: the key is local, there is nothing to reach.
func (verifier) Check(context.Context) error { return nil }

func refuse(r identity.Reason, format string, args ...any) *identity.RefusalError {
	return &identity.RefusalError{Reason: r, Detail: "gateway token: " + fmt.Sprintf(format, args...)}
}

// Verify checks token and returns its principal, or a *identity.RefusalError.
// user is the startup user ("" skips the user-match check).
func (v verifier) Verify(_ context.Context, token, user string) (identity.Principal, error) {
	i := v.i
	token = strings.TrimSpace(token)
	if token == "" {
		return identity.Principal{}, refuse(identity.ReasonMissing, "empty token")
	}
	if len(token) > MaxTokenBytes {
		return identity.Principal{}, refuse(identity.ReasonMalformed, "token of %d bytes exceeds %d", len(token), MaxTokenBytes)
	}
	if strings.Count(token, ".") != 2 {
		return identity.Principal{}, refuse(identity.ReasonMalformed, "not a compact JWS (want three dot-separated parts)")
	}
	jws, err := jose.ParseSignedCompact(token, onlyES256)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return identity.Principal{}, refuse(identity.ReasonSignature, "signature algorithm %q not accepted", identity.SanitizeDetail(string(alg.Got)))
		}
		return identity.Principal{}, refuse(identity.ReasonMalformed, "unparsable JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return identity.Principal{}, refuse(identity.ReasonMalformed, "want exactly one signature, got %d", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	if h.Algorithm != string(jose.ES256) { // ParseSignedCompact checked it; belt and braces
		return identity.Principal{}, refuse(identity.ReasonSignature, "signature algorithm %q not accepted", identity.SanitizeDetail(h.Algorithm))
	}
	if h.KeyID != i.kid {
		return identity.Principal{}, refuse(identity.ReasonSignature, "key %q is not the gateway's key", identity.SanitizeDetail(h.KeyID))
	}
	if h.JSONWebKey != nil {
		return identity.Principal{}, refuse(identity.ReasonSignature, "token embeds a key (jwk header)")
	}
	payload, err := jws.Verify(&i.key.PublicKey)
	if err != nil {
		return identity.Principal{}, refuse(identity.ReasonSignature, "key %q: %v", i.kid, err)
	}
	return i.principal(payload, user)
}

// principal checks the verified claims and maps them to a Principal
// (identity.OIDC's checks, with the gateway's fixed 30s skew).
func (i *Issuer) principal(payload []byte, user string) (identity.Principal, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return identity.Principal{}, refuse(identity.ReasonMalformed, "claims are not a JSON object")
	}
	iss, _ := claims["iss"].(string)
	if iss != i.o.Issuer {
		return identity.Principal{}, refuse(identity.ReasonIssuer, "iss %q, want %q", identity.SanitizeDetail(iss), i.o.Issuer)
	}
	if !identity.HasAudience(claims["aud"], i.o.Audience) {
		return identity.Principal{}, refuse(identity.ReasonAudience, "aud does not contain %q", i.o.Audience)
	}
	exp, err := identity.CheckValidity(claims, i.o.Now(), ClockSkew)
	if err != nil {
		return identity.Principal{}, prefixed(err)
	}
	name, err := identity.CheckUsername(claims[i.o.UsernameClaim], i.o.UsernameClaim)
	if err != nil {
		return identity.Principal{}, prefixed(err)
	}
	groups, err := i.groupsOf(claims)
	if err != nil {
		return identity.Principal{}, refuse(identity.ReasonClaims, "groups claim %q: %v", i.o.GroupsClaim, err)
	}
	if user != "" && user != name {
		return identity.Principal{}, refuse(identity.ReasonUserMismatch, "startup user %q is not the token's %s %q", identity.SanitizeDetail(user), i.o.UsernameClaim, identity.SanitizeDetail(name))
	}
	sub, _ := claims["sub"].(string)
	p, err := identity.WithActor(identity.Principal{User: name, Subject: sub, Groups: groups, Expiry: exp, Issuer: iss}, claims, i.groupsOf)
	return p, prefixed(err)
}

// prefixed marks a refusal from identity's shared claim checks as a
// gateway token's, as refuse does for this package's own.
func prefixed(err error) error {
	if ref, ok := identity.AsRefusal(err); ok {
		ref.Detail = "gateway token: " + ref.Detail
	}
	return err
}

// groupsOf reads the groups claim (a literal top-level key) from obj: the
// token's claims or an act object.
func (i *Issuer) groupsOf(obj map[string]any) ([]string, error) {
	if i.o.GroupsClaim == "" {
		return nil, nil
	}
	return toGroups(obj[i.o.GroupsClaim])
}

// toGroups reads the groups claim: a JSON array of strings (what Issue
// writes); absent or null means no groups.
func toGroups(v any) ([]string, error) {
	switch g := v.(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]string, 0, len(g))
		for n, x := range g {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("element %d is not a string", n)
			}
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("is a %T, want a list of strings", v)
	}
}

package gwtoken

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgwarden/pgwarden/identity"
)

// counting wraps a verifier and counts the calls it sees.
type counting struct {
	identity.Verifier
	verifies, checks int
	checkErr         error
}

func (c *counting) Verify(ctx context.Context, token, user string) (identity.Principal, error) {
	c.verifies++
	return c.Verifier.Verify(ctx, token, user)
}

func (c *counting) Check(context.Context) error { c.checks++; return c.checkErr }

// refuseAll stands in for the OIDC verifier.
type refuseAll struct{}

func (refuseAll) Verify(context.Context, string, string) (identity.Principal, error) {
	return identity.Principal{}, &identity.RefusalError{Reason: identity.ReasonSignature, Detail: "fallback"}
}
func (refuseAll) Check(context.Context) error { return nil }

func TestMulti(t *testing.T) {
	c := &clock{t0}
	oa := testOptions(t.TempDir(), c)
	oa.Issuer = "https://a.example.test"
	ob := testOptions(t.TempDir(), c)
	ob.Issuer = "https://b.example.test"
	a, b := open(t, oa), open(t, ob)
	va, vb := &counting{Verifier: a.Verifier()}, &counting{Verifier: b.Verifier()}
	fb := &counting{Verifier: refuseAll{}}
	ctx := context.Background()
	reset := func() { va.verifies, vb.verifies, fb.verifies = 0, 0, 0 }

	m := identity.Multi(map[string]identity.Verifier{a.IssuerURL(): va, b.IssuerURL(): vb}, nil)
	mf := identity.Multi(map[string]identity.Verifier{a.IssuerURL(): va, b.IssuerURL(): vb}, fb)

	for _, tc := range []struct {
		iss *Issuer
		v   *counting
	}{{a, va}, {b, vb}} {
		reset()
		p, err := m.Verify(ctx, issue(t, tc.iss, alice), alice.User)
		if err != nil {
			t.Fatalf("%s: %v", tc.iss.IssuerURL(), err)
		}
		if p.Issuer != tc.iss.IssuerURL() || tc.v.verifies != 1 || va.verifies+vb.verifies != 1 {
			t.Fatalf("%s: principal %+v, calls a=%d b=%d", tc.iss.IssuerURL(), p, va.verifies, vb.verifies)
		}
	}

	// A token claiming b's iss but signed by a goes to b alone, which refuses it.
	reset()
	forged := sign(t, jose.ES256, a.key, a.kid, []byte(`{"iss":"https://b.example.test","aud":"pgwarden","exp":1e10,"email":"x"}`))
	wantRefusal(t, m, forged, "", identity.ReasonSignature)
	if va.verifies != 0 || vb.verifies != 1 {
		t.Fatalf("forged iss: calls a=%d b=%d", va.verifies, vb.verifies)
	}

	b64 := base64.RawURLEncoding.EncodeToString
	hdr := b64([]byte(`{"alg":"ES256"}`))
	unknown := hdr + "." + b64([]byte(`{"iss":"https://c.example.test"}`)) + ".c2ln"
	noIss := hdr + "." + b64([]byte(`{"sub":"x"}`)) + ".c2ln"
	upperIss := hdr + "." + b64([]byte(`{"ISS":"https://a.example.test"}`)) + ".c2ln"
	emptyIss := hdr + "." + b64([]byte(`{"iss":""}`)) + ".c2ln"

	for name, tok := range map[string]string{"unknown iss": unknown, "no iss": noIss, "ISS is not iss": upperIss, "empty iss": emptyIss} {
		reset()
		wantRefusal(t, m, tok, "", identity.ReasonIssuer)
		wantRefusal(t, mf, tok, "", identity.ReasonSignature) // the fallback's refusal
		if va.verifies+vb.verifies != 0 || fb.verifies != 1 {
			t.Fatalf("%s: calls a=%d b=%d fallback=%d", name, va.verifies, vb.verifies, fb.verifies)
		}
	}

	for name, tok := range map[string]string{
		"garbage":            "garbage",
		"two parts":          hdr + "." + b64([]byte(`{"iss":"https://a.example.test"}`)),
		"four parts":         issue(t, a, alice) + ".x",
		"payload not base64": hdr + ".!!!.c2ln",
		"payload not json":   hdr + "." + b64([]byte(`iss`)) + ".c2ln",
		"payload an array":   hdr + "." + b64([]byte(`["iss"]`)) + ".c2ln",
		"iss a number":       hdr + "." + b64([]byte(`{"iss":7}`)) + ".c2ln",
		"oversized":          hdr + "." + strings.Repeat("A", identity.MaxTokenBytes) + ".c2ln",
	} {
		reset()
		wantRefusal(t, mf, tok, "", identity.ReasonMalformed)
		if va.verifies+vb.verifies+fb.verifies != 0 {
			t.Fatalf("%s reached a verifier", name)
		}
	}
	wantRefusal(t, mf, " ", "", identity.ReasonMissing)

	// Check: every verifier runs, the first error (issuer order) wins.
	if err := mf.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	errA, errFB := errors.New("a down"), errors.New("fallback down")
	va.checkErr, fb.checkErr = errA, errFB
	va.checks, vb.checks, fb.checks = 0, 0, 0
	if err := mf.Check(ctx); !errors.Is(err, errA) {
		t.Fatalf("Check = %v, want a's error", err)
	}
	if va.checks != 1 || vb.checks != 1 || fb.checks != 1 {
		t.Fatalf("Check calls a=%d b=%d fallback=%d", va.checks, vb.checks, fb.checks)
	}
	va.checkErr = nil
	if err := mf.Check(ctx); !errors.Is(err, errFB) {
		t.Fatalf("Check = %v, want the fallback's error", err)
	}
	if err := identity.Multi(nil, nil).Check(ctx); err != nil {
		t.Fatalf("empty Multi Check: %v", err)
	}
}

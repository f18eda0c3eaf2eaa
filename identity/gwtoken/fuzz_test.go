package gwtoken

import (
	"context"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/pgwarden/pgwarden/identity"
)

// FuzzVerify feeds arbitrary strings to the verifier. Two properties:
//   - stale: every token this issuer signed has expired on its clock, so
//     nothing may be accepted at all;
//   - live: the seeds' tokens are valid, so a string may be accepted only
//     as exactly the principal the issuer signed (a mutation can at most
//     re-encode the same signed bytes, never change what they say).
//
// identity.Multi over the stale verifier must not accept either. Every
// refusal must be a *identity.RefusalError with a zero principal.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	c := &clock{t0}
	i := open(f, testOptions(dir, c))
	other := open(f, testOptions(f.TempDir(), c))

	p := alice
	valid := issue(f, i, p)
	want := p
	want.Expiry = t0.Add(time.Hour)
	want.Issuer = testIssuer

	parts := strings.Split(valid, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		valid,
		issue(f, other, p),
		parts[0] + "." + parts[1] + ".",
		b64([]byte(`{"alg":"none","kid":"`+i.kid+`"}`)) + "." + parts[1] + ".",
		b64([]byte(`{"alg":"HS256","kid":"`+i.kid+`"}`)) + "." + parts[1] + "." + parts[2],
		sign(f, jose.ES256, other.key, i.kid, []byte(`{"iss":"`+testIssuer+`","aud":"pgwarden","exp":1e10,"email":"x"}`)),
		"", ".", "..", "a.b.c", "e30.e30.e30", strings.Repeat("A", 100),
	} {
		f.Add(s, "")
		f.Add(s, alice.User)
	}

	live := i.Verifier()
	staleOpts := testOptions(dir, &clock{t0.Add(2 * time.Hour)})
	stale := open(f, staleOpts).Verifier()
	staleMulti := identity.Multi(map[string]identity.Verifier{testIssuer: stale}, stale)

	f.Fuzz(func(t *testing.T, token, user string) {
		ctx := context.Background()
		if pr, err := stale.Verify(ctx, token, user); err == nil {
			t.Fatalf("stale verifier accepted %q as %+v", token, pr)
		} else {
			checkRefusal(t, pr, err)
		}
		if pr, err := staleMulti.Verify(ctx, token, user); err == nil {
			t.Fatalf("Multi over the stale verifier accepted %q as %+v", token, pr)
		} else {
			checkRefusal(t, pr, err)
		}
		pr, err := live.Verify(ctx, token, user)
		if err != nil {
			checkRefusal(t, pr, err)
			return
		}
		if !reflect.DeepEqual(pr, want) || (user != "" && user != want.User) {
			t.Fatalf("accepted %q (user %q) as %+v, want only %+v", token, user, pr, want)
		}
	})
}

func checkRefusal(t *testing.T, p identity.Principal, err error) {
	t.Helper()
	if _, ok := identity.AsRefusal(err); !ok {
		t.Fatalf("error %v is not a RefusalError", err)
	}
	if !reflect.DeepEqual(p, identity.Principal{}) {
		t.Fatalf("refusal with a non-zero principal %+v", p)
	}
}

package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/identity"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic and
// must always refuse with a *RefusalError (no random input is a valid
// token for a key only the test holds).
func FuzzVerify(f *testing.F) {
	k := newECKey(f, "k")
	iss := newTestIssuer(f, false, k)
	v, err := identity.NewOIDC(context.Background(), oidcCfg(iss.URL()),
		identity.WithNow(func() time.Time { return t0 }),
		identity.WithJWKSRefetchInterval(time.Hour)) // junk kids never hit the issuer
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	valid := k.sign(f, iss.claims(t0, "a@x", "g"))
	if _, err := v.Verify(context.Background(), valid, "a@x"); err != nil {
		f.Fatal(err) // the harness works: a real token verifies (and warms the key cache)
	}
	f.Add(valid[:len(valid)-2] + "xx")
	f.Add(tamper(f, valid, func(c map[string]any) { c["email"] = "b@x" }))
	f.Add(unsigned(map[string]any{"alg": "none"}, iss.claims(t0, "a@x"), ""))
	f.Add(unsigned(map[string]any{"alg": "ES256", "kid": "k", "crit": []string{"x"}}, iss.claims(t0, "a@x"), "AAAA"))
	f.Add("a.b.c")
	f.Add("..")
	f.Add(`{"payload":"e30","signatures":[{"protected":"e30","signature":""}]}`)
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token, "a@x")
		if err == nil {
			t.Fatalf("random token verified: %q -> %+v", token, p)
		}
		if _, ok := identity.AsRefusal(err); !ok {
			t.Fatalf("error is not a RefusalError: %v", err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	for _, mk := range []func(testing.TB, string) testKey{newECKey, newRSAKey, newEdKey} {
		k := mk(b, "k")
		b.Run(string(k.alg), func(b *testing.B) {
			iss := newTestIssuer(b, false, k)
			v := newVerifier(b, oidcCfg(iss.URL()))
			tok := k.sign(b, iss.claims(t0, "alice@example.com", "analyst", "ingest"))
			ctx := context.Background()
			if _, err := v.Verify(ctx, tok, "alice@example.com"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := v.Verify(ctx, tok, "alice@example.com"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRefuseGarbage(b *testing.B) {
	k := newECKey(b, "k")
	iss := newTestIssuer(b, false, k)
	v := newVerifier(b, oidcCfg(iss.URL()))
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, "not.a.token", "a@x"); err == nil {
			b.Fatal("accepted")
		}
	}
}

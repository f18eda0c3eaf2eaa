package identity

import (
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/config"
)

// FuzzClaims feeds arbitrary claim payloads (what a signed token carries)
// to the claim checks and mapping: no panic, and an accepted payload always
// yields a non-empty user, the configured issuer and a future expiry.
func FuzzClaims(f *testing.F) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	o := &OIDC{
		cfg: config.OIDC{Issuer: "https://idp", Audience: "pgwarden", UsernameClaim: "a.b", GroupsClaim: "realm_access.roles", ClockSkew: 30 * time.Second},
		now: func() time.Time { return now },
	}
	o.usernamePath = []string{"a", "b"}
	o.groupsPath = []string{"realm_access", "roles"}
	f.Add([]byte(`{"iss":"https://idp","aud":["x","pgwarden"],"exp":1893456060,"a":{"b":"alice"},"realm_access":{"roles":["r1","r2"]}}`), "alice")
	f.Add([]byte(`{"iss":"https://idp","aud":"pgwarden","exp":1893456060.5,"nbf":1e300,"a.b":"bob","realm_access.roles":"x y,z"}`), "")
	f.Add([]byte(`{"iss":"https://idp","aud":"pgwarden","exp":-1,"a":{"b":7}}`), "")
	f.Add([]byte(`[]`), "")
	f.Add([]byte(`null`), "")
	f.Fuzz(func(t *testing.T, payload []byte, user string) {
		p, err := o.principal(payload, user)
		if err != nil {
			if _, ok := AsRefusal(err); !ok {
				t.Fatalf("not a RefusalError: %v", err)
			}
			return
		}
		if p.User == "" || p.Issuer != "https://idp" || !p.Expiry.Add(30*time.Second).After(now) {
			t.Fatalf("accepted an invalid principal %+v", p)
		}
		if user != "" && p.User != user {
			t.Fatalf("user %q accepted for token user %q", user, p.User)
		}
	})
}

package identity

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
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
	f.Add([]byte(`{"iss":"https://idp","aud":"pgwarden","exp":1893456060,"a":{"b":"alice"},"realm_access":{"roles":["r1","r2"]},"act":{"sub":"agent","realm_access":{"roles":["r2"]}}}`), "alice")
	f.Add([]byte(`{"iss":"https://idp","aud":"pgwarden","exp":1893456060,"a":{"b":"alice"},"act":"agent"}`), "alice")
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
		if p.Actor != "" && len(p.Groups) > 0 {
			// delegated: only groups the token's groups claim holds
			var claims map[string]any
			dec := json.NewDecoder(bytes.NewReader(payload))
			dec.UseNumber()
			_ = dec.Decode(&claims)
			all, _ := o.groupsOf(claims)
			for _, g := range p.Groups {
				if !slices.Contains(all, g) {
					t.Fatalf("delegated principal holds %q, not in the token's groups %v", g, all)
				}
			}
		}
	})
}

// FuzzAct feeds arbitrary bytes as the value of a signed token's "act"
// claim to WithActor, with the OIDC verifier's own groups reader. No
// panic; a refusal is a ReasonDelegation RefusalError with the zero
// principal; an accepted claim names a non-empty actor without control
// characters, at most MaxActDepth deep, and the effective groups are a
// subset of both the user's and the actor's groups, each once.
func FuzzAct(f *testing.F) {
	o := &OIDC{cfg: config.OIDC{GroupsClaim: "realm_access.roles"}, groupsPath: []string{"realm_access", "roles"}}
	user := []string{"analyst", "ingest", "dba", "analyst"}
	for _, s := range []string{
		`{"sub":"agent-7","realm_access":{"roles":["dba","x"]}}`,
		`{"sub":"agent-7","realm_access.roles":"analyst ingest"}`,
		`{"sub":"agent-7"}`,
		`{"sub":"a","act":{"sub":"b","act":{"sub":"c","act":{"sub":"d"}}}}`,
		`{"sub":"a","act":{"sub":"b","act":{"sub":"c","act":{"sub":"d","act":{"sub":"e"}}}}}`,
		`{"sub":"","realm_access":{"roles":["dba"]}}`,
		`{"sub":"a\u0000b"}`,
		`{"sub":7}`,
		`"agent"`, `null`, `[]`, `{}`, `{"sub":"a","realm_access":{"roles":[1]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		in := Principal{User: "alice", Groups: user}
		p, err := WithActor(in, map[string]any{"act": v}, o.groupsOf)
		if err != nil {
			r, ok := AsRefusal(err)
			if !ok || r.Reason != ReasonDelegation || p.User != "" || p.Actor != "" || p.Groups != nil {
				t.Fatalf("refusal %v with principal %+v", err, p)
			}
			return
		}
		if p.User != "alice" || p.Actor == "" || strings.ContainsFunc(p.Actor, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted actor %q for %q", p.Actor, p.User)
		}
		depth := 0
		for cur := v; cur != nil; depth++ {
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("accepted a non-object act at depth %d: %s", depth+1, raw)
			}
			cur = m["act"]
		}
		if depth > MaxActDepth {
			t.Fatalf("accepted a chain %d deep: %s", depth, raw)
		}
		actorGroups, err := o.groupsOf(v.(map[string]any))
		if err != nil {
			t.Fatalf("accepted unreadable actor groups: %v", err)
		}
		seen := map[string]bool{}
		for _, g := range p.Groups {
			if seen[g] || !slices.Contains(user, g) || !slices.Contains(actorGroups, g) {
				t.Fatalf("effective group %q not held by both (user %v, actor %v): %v", g, user, actorGroups, p.Groups)
			}
			seen[g] = true
		}
		for _, g := range user {
			if slices.Contains(actorGroups, g) && !seen[g] {
				t.Fatalf("group %q held by both is missing: %v", g, p.Groups)
			}
		}
	})
}

package identity_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/identity"
)

// act builds an RFC 8693 act object: sub, then key/value pairs.
func act(sub any, kv ...any) map[string]any {
	o := map[string]any{"sub": sub}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i].(string)] = kv[i+1]
	}
	return o
}

// A delegated token through the real OIDC verifier (signed, discovered
// over HTTP): Actor is the current actor's sub, User stays the person,
// and Groups are those both hold — or none when the actor names none.
func TestDelegatedTokens(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	cases := []struct {
		name        string
		groupsClaim string
		userGroups  []string
		act         any
		actor       string
		groups      []string
	}{
		{"actor groups intersect", "groups", []string{"analyst", "ingest", "dba"},
			act("agent-7", "groups", []string{"dba", "analyst", "other"}), "agent-7", []string{"analyst", "dba"}},
		{"actor without groups gets none", "groups", []string{"analyst", "ingest"},
			act("agent-7"), "agent-7", nil},
		{"actor groups null is none", "groups", []string{"analyst"},
			act("agent-7", "groups", nil), "agent-7", nil},
		{"actor with empty groups", "groups", []string{"analyst"},
			act("agent-7", "groups", []string{}), "agent-7", nil},
		{"actor groups disjoint", "groups", []string{"analyst"},
			act("agent-7", "groups", []string{"ingest"}), "agent-7", nil},
		{"actor groups as a scope string", "groups", []string{"analyst", "ingest"},
			act("agent-7", "groups", "ingest other"), "agent-7", []string{"ingest"}},
		{"user without groups", "groups", nil,
			act("agent-7", "groups", []string{"dba"}), "agent-7", nil},
		{"duplicates once", "groups", []string{"analyst", "analyst", "dba"},
			act("agent-7", "groups", []string{"analyst", "analyst"}), "agent-7", []string{"analyst"}},
		{"nested chain records the immediate actor", "groups", []string{"analyst", "ingest"},
			act("agent-current", "groups", []string{"analyst"}, "act", act("agent-before", "groups", []string{"ingest"})),
			"agent-current", []string{"analyst"}},
		{"chain at the depth limit", "groups", []string{"analyst"},
			act("a1", "groups", []string{"analyst"}, "act", act("a2", "act", act("a3", "act", act("a4")))), "a1", []string{"analyst"}},
		{"no groups claim configured", "", []string{"analyst"},
			act("agent-7", "groups", []string{"analyst"}), "agent-7", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := oidcCfg(iss.URL())
			cfg.GroupsClaim = tc.groupsClaim
			v := newVerifier(t, cfg)
			c := iss.claims(t0, "alice@example.com", tc.userGroups...)
			c["act"] = tc.act
			p, err := v.Verify(context.Background(), k.sign(t, c), "alice@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if p.User != "alice@example.com" || p.Subject != "sub-alice@example.com" || p.Actor != tc.actor || !reflect.DeepEqual(p.Groups, tc.groups) {
				t.Fatalf("got user %q sub %q actor %q groups %#v, want actor %q groups %#v", p.User, p.Subject, p.Actor, p.Groups, tc.actor, tc.groups)
			}
			for _, g := range tc.userGroups {
				if p.HasGroup(g) != slicesContains(tc.groups, g) {
					t.Fatalf("HasGroup(%q) = %v with effective groups %v", g, p.HasGroup(g), tc.groups)
				}
			}
		})
	}

	// The actor's groups are read with the issuer's own claim path.
	cfg := oidcCfg(iss.URL())
	cfg.GroupsClaim = "realm_access.roles"
	v := newVerifier(t, cfg)
	c := iss.claims(t0, "alice@example.com")
	c["realm_access"] = map[string]any{"roles": []string{"analyst", "ingest"}}
	c["act"] = act("svc", "realm_access", map[string]any{"roles": []string{"ingest"}})
	p, err := v.Verify(context.Background(), k.sign(t, c), "")
	if err != nil || p.Actor != "svc" || !reflect.DeepEqual(p.Groups, []string{"ingest"}) {
		t.Fatalf("nested groups path: %+v %v", p, err)
	}

	// Without act nothing changes: no actor, all the token's groups.
	p, err = newVerifier(t, oidcCfg(iss.URL())).Verify(context.Background(), k.sign(t, iss.claims(t0, "bob", "analyst", "dba")), "bob")
	if err != nil || p.Actor != "" || !reflect.DeepEqual(p.Groups, []string{"analyst", "dba"}) {
		t.Fatalf("undelegated: %+v %v", p, err)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// A malformed act claim is refused (ReasonDelegation, a client-safe short
// reason), never read as "no delegation": fail closed.
func TestMalformedActRefused(t *testing.T) {
	k := newECKey(t, "k")
	iss := newTestIssuer(t, false, k)
	v := newVerifier(t, oidcCfg(iss.URL()))
	deep := act("a5")
	for _, s := range []string{"a4", "a3", "a2", "a1"} {
		deep = act(s, "act", deep)
	}
	cases := []struct {
		name   string
		act    any
		detail string
	}{
		{"string", "agent-7", "is a string, want a JSON object"},
		{"array", []any{act("agent-7")}, "is an array"},
		{"null", nil, "is null"},
		{"number", 7, "is a number"},
		{"no sub", map[string]any{"groups": []string{"analyst"}}, "has no sub"},
		{"sub not a string", act(42), "has no sub"},
		{"empty sub", act(""), "empty sub"},
		{"control character in sub", act("agent\n7"), "control characters"},
		{"DEL in sub", act("agent\x7f"), "control characters"},
		{"nested not an object", act("agent-7", "act", "before"), "depth 2 is a string"},
		{"nested without sub", act("agent-7", "act", map[string]any{}), "depth 2 has no sub"},
		{"too deep", deep, "deeper than 4"},
		{"actor groups of the wrong type", act("agent-7", "groups", 5), "the actor's groups"},
		{"actor groups with a non-string", act("agent-7", "groups", []any{"analyst", 1}), "the actor's groups"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := iss.claims(t0, "alice@example.com", "analyst")
			c["act"] = tc.act
			tok := k.sign(t, c)
			p, err := v.Verify(context.Background(), tok, "alice@example.com")
			wantReason(t, err, identity.ReasonDelegation)
			r, _ := identity.AsRefusal(err)
			if !strings.Contains(r.Detail, tc.detail) {
				t.Fatalf("detail %q, want it to contain %q", r.Detail, tc.detail)
			}
			if strings.Contains(r.Detail, tok[strings.LastIndex(tok, ".")+1:]) {
				t.Fatal("refusal detail contains the token's signature")
			}
			if r.Short() != "invalid delegation (act claim) in token" {
				t.Fatalf("Short() = %q", r.Short())
			}
			if !reflect.DeepEqual(p, identity.Principal{}) {
				t.Fatalf("a refusal returned principal %+v", p)
			}
		})
	}
}

// WithActor on its own: the shared helper both verifiers call.
func TestWithActor(t *testing.T) {
	groupsOf := func(o map[string]any) ([]string, error) {
		gs, _ := o["g"].([]string)
		return gs, nil
	}
	base := identity.Principal{User: "u", Groups: []string{"a", "b", "c"}}
	p, err := identity.WithActor(base, map[string]any{"sub": "u"}, groupsOf)
	if err != nil || !reflect.DeepEqual(p, base) {
		t.Fatalf("no act: %+v %v", p, err)
	}
	p, err = identity.WithActor(base, map[string]any{"act": map[string]any{"sub": "bot", "g": []string{"c", "a"}}}, groupsOf)
	if err != nil || p.Actor != "bot" || !reflect.DeepEqual(p.Groups, []string{"a", "c"}) || p.User != "u" {
		t.Fatalf("act: %+v %v", p, err)
	}
	if !reflect.DeepEqual(base.Groups, []string{"a", "b", "c"}) {
		t.Fatalf("WithActor changed its argument's groups: %v", base.Groups)
	}
	// A nil GroupsOf (no groups claim): the actor holds nothing.
	p, err = identity.WithActor(base, map[string]any{"act": map[string]any{"sub": "bot", "g": []string{"a"}}}, nil)
	if err != nil || p.Actor != "bot" || p.Groups != nil {
		t.Fatalf("nil groupsOf: %+v %v", p, err)
	}
}

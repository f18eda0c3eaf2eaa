package gwtoken

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/identity"
)

// Gateway tokens read "act" as OIDC tokens do (identity.WithActor): the
// actor recorded, the groups narrowed to those both hold, none when the
// act object names none, a malformed act refused; and a delegated
// principal issued and verified again is the same delegated principal.
func TestGatewayTokenAct(t *testing.T) {
	c := &clock{t0}
	i := open(t, testOptions(t.TempDir(), c))
	v := i.Verifier()
	good := issue(t, i, alice)
	parts := strings.Split(good, ".")
	resign := func(mut func(map[string]any)) string {
		var m map[string]any
		mustDecode(t, parts[1], &m)
		mut(m)
		b, _ := json.Marshal(m)
		return sign(t, "ES256", i.key, i.kid, b)
	}

	p, err := v.Verify(context.Background(), resign(func(m map[string]any) {
		m["act"] = map[string]any{"sub": "agent-7", "groups": []string{"dev", "ops"}, "act": map[string]any{"sub": "earlier"}}
	}), alice.User)
	if err != nil || p.User != alice.User || p.Actor != "agent-7" || !reflect.DeepEqual(p.Groups, []string{"dev"}) {
		t.Fatalf("delegated: %+v %v", p, err)
	}
	p, err = v.Verify(context.Background(), resign(func(m map[string]any) { m["act"] = map[string]any{"sub": "agent-7"} }), "")
	if err != nil || p.Actor != "agent-7" || p.Groups != nil {
		t.Fatalf("actor without groups: %+v %v", p, err)
	}
	for name, a := range map[string]any{
		"not an object": "agent-7",
		"no sub":        map[string]any{"groups": []string{"dev"}},
		"control char":  map[string]any{"sub": "a\tb"},
		"bad groups":    map[string]any{"sub": "a", "groups": map[string]any{}},
	} {
		t.Run(name, func(t *testing.T) {
			tok := resign(func(m map[string]any) { m["act"] = a })
			wantRefusal(t, v, tok, alice.User, identity.ReasonDelegation)
			_, err := v.Verify(context.Background(), tok, alice.User)
			if r, _ := identity.AsRefusal(err); !strings.HasPrefix(r.Detail, "gateway token: act claim") {
				t.Fatalf("detail %q", r.Detail)
			}
		})
	}

	// Issue keeps a delegated principal delegated.
	delegated := identity.Principal{User: alice.User, Subject: "u-123", Actor: "agent-7", Groups: []string{"dev"}}
	tok := issue(t, i, delegated)
	var claims map[string]any
	mustDecode(t, strings.Split(tok, ".")[1], &claims)
	if !reflect.DeepEqual(claims["act"], map[string]any{"sub": "agent-7", "groups": []any{"dev"}}) {
		t.Fatalf("act claim issued: %v", claims["act"])
	}
	p, err = v.Verify(context.Background(), tok, alice.User)
	if err != nil || p.Actor != "agent-7" || !reflect.DeepEqual(p.Groups, []string{"dev"}) {
		t.Fatalf("issued delegated token verifies as %+v %v", p, err)
	}
	// An undelegated principal's token has no act; without a groups claim
	// the actor (and so the session) holds no groups.
	if b, _ := base64.RawURLEncoding.DecodeString(parts[1]); strings.Contains(string(b), `"act"`) {
		t.Fatalf("an undelegated principal's token carries act: %s", b)
	}
	o := testOptions(t.TempDir(), c)
	o.GroupsClaim = ""
	ng := open(t, o)
	p, err = ng.Verifier().Verify(context.Background(), issue(t, ng, delegated), "")
	if err != nil || p.Actor != "agent-7" || p.Groups != nil {
		t.Fatalf("no groups claim: %+v %v", p, err)
	}

	// "act" is the delegation claim: never a username or groups claim.
	for _, mut := range []func(*Options){func(o *Options) { o.UsernameClaim = "act" }, func(o *Options) { o.GroupsClaim = "act" }} {
		o := testOptions(t.TempDir(), c)
		mut(&o)
		if _, err := Open(o); err == nil {
			t.Errorf("Open accepted claim name act: %+v", o)
		}
	}
}

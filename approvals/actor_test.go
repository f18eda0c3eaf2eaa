package approvals_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/identity"
)

// A request held in a delegated session records the actor next to the
// requester (and keeps it through the store); nobody who took part in the
// request — the person or the agent acting for them — decides it; a
// delegated decision records who acted for the approver; and in retry
// mode the approval is usable only by the same (requester, actor) pair.
func TestDelegatedRequests(t *testing.T) {
	f := newFixture(t, testCfg(ModeRetry))
	ctx := context.Background()
	sql := "DELETE FROM documents WHERE id > $1"
	r := req("alice", "s1", sql, "10")
	r.Actor = "agent-7"
	a := hold(t, f.m, r)
	if a.Requester != "alice" || a.Actor != "agent-7" || a.RequesterVia() != "alice via agent-7" {
		t.Fatalf("held %+v", a)
	}
	got, err := f.m.Get(ctx, a.ID)
	if err != nil || got.Actor != "agent-7" {
		t.Fatalf("stored %+v %v", got, err)
	}

	for _, by := range []identity.Principal{
		{User: "agent-7", Groups: []string{"dba"}},                 // the agent with its own token
		{User: "bob", Actor: "agent-7", Groups: []string{"dba"}},   // the agent acting for another approver
		{User: "carol", Actor: "alice", Groups: []string{"dba"}},   // the requester acting through another's token
		{User: "alice", Actor: "agent-9", Groups: []string{"dba"}}, // the requester via some other agent
	} {
		_, err := f.m.Approve(ctx, a.ID, by, "")
		if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "four eyes") {
			t.Fatalf("%s via %s decided a request it took part in: %v", by.User, by.Actor, err)
		}
	}
	ok, err := f.m.Approve(ctx, a.ID, identity.Principal{User: "bob", Actor: "review-bot", Groups: []string{"dba"}}, "fine")
	if err != nil || ok.DecidedBy != "bob" || ok.DecidedByActor != "review-bot" {
		t.Fatalf("delegated approval: %+v %v", ok, err)
	}

	// Retry mode: only alice via agent-7 may use it.
	for _, actor := range []string{"", "agent-9"} {
		if _, ok := f.m.ClaimAs("", "alice", actor, "vectors", sql, []string{"10"}); ok {
			t.Fatalf("alice with actor %q used an approval given to alice via agent-7", actor)
		}
	}
	if _, ok := f.m.ClaimFor("", "alice", "vectors", sql, []string{"10"}); ok {
		t.Fatal("ClaimFor (no actor) used an approval given to alice via agent-7")
	}
	if won, ok := f.m.ClaimAs("", "alice", "agent-7", "vectors", sql, []string{"10"}); !ok || won.ID != a.ID {
		t.Fatalf("alice via agent-7 could not use their approval: %v %v", won, ok)
	}

	// An undelegated request has no actor keys in its record (what the
	// stores keep is its JSON), so older records read as before.
	b := hold(t, f.m, req("alice", "s2", "TRUNCATE t"))
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(`"actor"`)) || bytes.Contains(raw, []byte(`"decided_by_actor"`)) {
		t.Fatalf("undelegated record has actor keys: %s", raw)
	}
}

// The CLI shows a delegated request as "requester via actor", in the list
// and in show (with an actor row), and the API returns the actor field.
func TestDelegatedRequestShown(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	srv := httptest.NewServer(withTestAuth(f.m.APIHandler()))
	defer srv.Close()
	r := req("alice", "s1", "DELETE FROM documents")
	r.Actor = "agent-7"
	a := hold(t, f.m, r)
	if code, out := cli(t, srv, "tok-dba2", "list"); code != 0 || !strings.Contains(out, "alice via agent-7") {
		t.Fatalf("list (%d):\n%s", code, out)
	}
	if code, out := cli(t, srv, "tok-dba2", "show", a.ID); code != 0 || !strings.Contains(out, "actor:") || !strings.Contains(out, "agent-7") {
		t.Fatalf("show (%d):\n%s", code, out)
	}
	code, body := call(t, srv, "GET", "/api/v1/approvals/"+a.ID, "tok-dba2", "")
	var got map[string]any
	if err := json.Unmarshal(body, &got); code != 200 || err != nil || got["actor"] != "agent-7" || got["requester"] != "alice" {
		t.Fatalf("API: %d %s", code, body)
	}
}

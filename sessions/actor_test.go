package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// preActorLines are three events exactly as the encoder wrote them before
// events had an actor (generated with the previous commit's encoder).
const preActorLines = `{"seq":1,"time":"2026-12-07T10:00:00.000000000Z","session":"pre1","type":"session_start","user":"alice@example.com","groups":["analyst"],"application_name":"psql","database":"vectors","profile":"default","backend_user":"pgw_alice_1","prev_hash":"","hash":"c39f2530742cccf7128173af3279af1e6163d08a2abe9bc838b722d1d3f321ae"}
{"seq":2,"time":"2026-12-07T10:00:01.000000000Z","session":"pre1","type":"statement","user":"alice@example.com","groups":["analyst"],"application_name":"psql","database":"vectors","profile":"default","backend_user":"pgw_alice_1","sql":"SELECT 1","actions":["read"],"decision":"allow","rows_total":1,"prev_hash":"c39f2530742cccf7128173af3279af1e6163d08a2abe9bc838b722d1d3f321ae","hash":"c95e19e5168518b098bb11e46ae20a5d36057b685304e5f89a37400a4736c429"}
{"seq":3,"time":"2026-12-07T10:00:02.000000000Z","session":"pre1","type":"session_end","user":"alice@example.com","groups":["analyst"],"application_name":"psql","database":"vectors","profile":"default","backend_user":"pgw_alice_1","reason":"client_closed","prev_hash":"c95e19e5168518b098bb11e46ae20a5d36057b685304e5f89a37400a4736c429","hash":"106cd443bb4ae1efa1bb05d8c013f2d556124783df9735924d2807c5bd35be1c"}
`

// A store written before events had an actor still verifies line by line
// and as a whole, and a recorder continues its chain with delegated
// sessions.
func TestOldRecordWithoutActorVerifies(t *testing.T) {
	dir := oldStore(t, preActorLines, 3, "106cd443bb4ae1efa1bb05d8c013f2d556124783df9735924d2807c5bd35be1c", func(ev Event) error {
		if ev.Actor != "" {
			return fmt.Errorf("decoded an actor %q", ev.Actor)
		}
		return nil
	})
	list := continueStore(t, dir, StartInfo{ID: "new1", User: "alice@example.com", Actor: "agent-7", Database: "vectors", Profile: "default"})
	if len(list) != 2 || list[0].Actor != "" || list[1].Actor != "agent-7" {
		t.Fatalf("summaries: %+v", list)
	}
}

// Every event of a delegated session carries the actor right after the
// user — also the session_end the recorder writes itself (shutdown, and
// recovery after a crash) — and summaries, the actor filter, the API,
// replay and the OCSF export show it.
func TestActorOnEveryEvent(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	d := r.Start(StartInfo{ID: "d1", User: "alice@example.com", Actor: "agent-7", Groups: []string{"analyst"}, Database: "vectors", Profile: "default"})
	must(t, d.Statement(StatementEvent{SQL: "SELECT 1", Actions: []string{"read"}, Decision: DecisionAllow}))
	must(t, d.Approval(ApprovalEvent{ID: "ap1", State: "pending", SQL: "TRUNCATE t", Actions: []string{"truncate"}}))
	must(t, d.Error("", "lost upstream"))
	must(t, d.End("client_closed"))
	plain := r.Start(StartInfo{ID: "p1", User: "alice@example.com", Groups: []string{"analyst", "ingest"}, Database: "vectors"})
	must(t, plain.End("client_closed"))
	open := r.Start(StartInfo{ID: "d2", User: "bob", Actor: "agent-9", Database: "vectors"})
	must(t, open.Statement(StatementEvent{SQL: "SELECT 2", Decision: DecisionAllow}))
	// d2 is left open: Close ends it (gateway_shutdown)
	must(t, r.Close())
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("verify: %v %s", p, out)
	}
	st, _ := OpenStore(dir)
	for id, want := range map[string]string{"d1": "agent-7", "d2": "agent-9", "p1": ""} {
		evs, err := st.Get(id)
		must(t, err)
		for _, ev := range evs {
			if ev.Actor != want {
				t.Fatalf("%s: %s event has actor %q, want %q", id, ev.Type, ev.Actor, want)
			}
		}
		if last := evs[len(evs)-1]; last.Type != TypeSessionEnd {
			t.Fatalf("%s ends with %s", id, last.Type)
		}
	}
	all := readAll(t, dir)
	if !strings.Contains(all, `"user":"alice@example.com","actor":"agent-7","groups":["analyst"],`) {
		t.Fatal("actor is not right after user in the stored line")
	}
	for _, l := range strings.Split(all, "\n") {
		if strings.Contains(l, `"session":"p1"`) && strings.Contains(l, `"actor"`) {
			t.Fatalf("an undelegated event has an actor key: %s", l)
		}
	}

	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "d1,p1,d2"},
		{Filter{Actor: "agent-7"}, "d1"},
		{Filter{Actor: "agent-9"}, "d2"},
		{Filter{Actor: "nope"}, ""},
		{Filter{User: "alice@example.com"}, "d1,p1"},
		{Filter{User: "alice@example.com", Actor: "agent-9"}, ""},
	} {
		got, err := st.List(c.f)
		must(t, err)
		ids := []string{}
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if strings.Join(ids, ",") != c.want {
			t.Errorf("List(%+v) = %v, want %q", c.f, ids, c.want)
		}
	}

	srv := httptest.NewServer(st.APIHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/sessions?actor=agent-7")
	must(t, err)
	var body struct {
		Sessions []map[string]any `json:"sessions"`
	}
	must(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	if len(body.Sessions) != 1 || body.Sessions[0]["id"] != "d1" || body.Sessions[0]["actor"] != "agent-7" || body.Sessions[0]["user"] != "alice@example.com" {
		t.Fatalf("API ?actor=agent-7: %+v", body.Sessions)
	}

	var out bytes.Buffer
	must(t, st.Replay(context.Background(), &out, "d1", false))
	if !strings.Contains(out.String(), "user alice@example.com via agent-7 groups [analyst]") {
		t.Fatalf("replay header lacks the actor:\n%s", out.String())
	}

	out.Reset()
	must(t, st.Export(&out, time.Time{}, "ocsf"))
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var o struct {
			Actor struct {
				User struct {
					Name string `json:"name"`
				} `json:"user"`
				Session struct {
					UID string `json:"uid"`
				} `json:"session"`
				AppUID *string `json:"app_uid"`
			} `json:"actor"`
		}
		must(t, json.Unmarshal([]byte(l), &o))
		want := map[string]string{"d1": "agent-7", "d2": "agent-9"}[o.Actor.Session.UID]
		switch {
		case want == "" && o.Actor.AppUID != nil:
			t.Fatalf("OCSF of an undelegated event has actor.app_uid:\n%s", l)
		case want != "" && (o.Actor.AppUID == nil || *o.Actor.AppUID != want):
			t.Fatalf("OCSF actor.app_uid %v, want %q:\n%s", o.Actor.AppUID, want, l)
		case o.Actor.Session.UID == "d1" && o.Actor.User.Name != "alice@example.com":
			t.Fatalf("OCSF actor.user is not the user:\n%s", l)
		}
		if want != "" {
			n++
		}
	}
	if n < 6 {
		t.Fatalf("%d delegated OCSF events, want at least 6", n)
	}
}

// In the shared store the actor is on every event too, including the
// session_end another gateway writes for a session of a lost one.
func TestSharedActorOnEveryEvent(t *testing.T) {
	db, dsn := sharedDB(t)
	dbLost := openShared(t, dsn)
	lost := sharedRecorder(t, dbLost, "gw-lost")
	s := lost.Start(StartInfo{ID: "a1", User: "alice@example.com", Actor: "agent-7", Database: "vectors"})
	must(t, s.Statement(StatementEvent{SQL: "SELECT 1", Decision: DecisionAllow}))
	dbLost.Close() // "kill -9"

	b := sharedRecorder(t, db, "gw-b")
	defer b.Close()
	ended, err := b.EndSessionsOf(context.Background(), "gw-lost")
	if err != nil || len(ended) != 1 || ended[0].Actor != "agent-7" {
		t.Fatalf("EndSessionsOf = %+v, %v", ended, err)
	}
	st := OpenSharedStore(db)
	evs, err := st.Get("a1")
	if err != nil || len(evs) != 3 || evs[2].Reason != ReasonGatewayLost {
		t.Fatalf("a1: %+v %v", evs, err)
	}
	for _, ev := range evs {
		if ev.Actor != "agent-7" {
			t.Fatalf("a1 %s event (gateway %s) has actor %q", ev.Type, ev.Gateway, ev.Actor)
		}
	}
	got, err := st.List(Filter{Actor: "agent-7"})
	if err != nil || len(got) != 1 || got[0].ID != "a1" {
		t.Fatalf("List actor=agent-7: %+v %v", got, err)
	}
	if ok, out := verifyShared(t, st); !ok {
		t.Fatal(out)
	}
}

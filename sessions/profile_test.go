package sessions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/sessions/filestore"
)

// oldLines are two events exactly as the encoder wrote them before
// sessions had a profile (generated with the previous commit's encoder).
const oldLines = `{"seq":1,"time":"2025-01-02T03:04:05.000000000Z","session":"old1","type":"session_start","user":"alice@example.com","groups":["analyst"],"database":"vectors","backend_user":"pgw_alice_1","prev_hash":"","hash":"11585b07ae90b8e5b9d81ebdde7800bc7910798ae21bb503d8b13d37625080e2"}
{"seq":2,"time":"2025-01-02T03:04:06.000000000Z","session":"old1","type":"session_end","user":"alice@example.com","groups":["analyst"],"database":"vectors","backend_user":"pgw_alice_1","reason":"client_closed","prev_hash":"11585b07ae90b8e5b9d81ebdde7800bc7910798ae21bb503d8b13d37625080e2","hash":"3539e0d8ac3da505fd18c645a21deb3b0b19d6e36a321b4aa913ecacb0b2e944"}
`

// A store written before profiles existed still verifies line by line and
// as a whole, and a recorder continues its chain with profiled events.
func TestOldRecordWithoutProfileVerifies(t *testing.T) {
	dir := oldStore(t, oldLines, 2, "3539e0d8ac3da505fd18c645a21deb3b0b19d6e36a321b4aa913ecacb0b2e944", func(ev Event) error {
		if ev.Profile != "" {
			return fmt.Errorf("decoded a profile %q", ev.Profile)
		}
		return nil
	})
	list := continueStore(t, dir, StartInfo{ID: "new1", User: "bob", Database: "kb", Profile: "kb"})
	if len(list) != 2 || list[0].Profile != "" || list[1].Profile != "kb" {
		t.Fatalf("summaries: %+v", list)
	}
}

// oldStore checks that each of lines (events as an earlier encoder wrote
// them) still decodes and passes check, writes them as segment 1 of a file
// store whose head is headSeq and headHash, checks that the store verifies,
// and returns its directory.
func oldStore(t *testing.T, lines string, headSeq int, headHash string, check func(Event) error) string {
	t.Helper()
	enc := newEncoder()
	for i, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		var ev Event
		if err := enc.CheckLine([]byte(l), &ev); err != nil {
			t.Fatalf("old line %d: %v", i+1, err)
		}
		if err := check(ev); err != nil {
			t.Fatalf("old line %d %v", i+1, err)
		}
	}
	dir := t.TempDir()
	sd := filepath.Join(dir, "sessions")
	must(t, os.MkdirAll(sd, 0o700))
	must(t, os.WriteFile(filepath.Join(sd, filestore.SegName(1)), []byte(lines), 0o600))
	must(t, os.WriteFile(filepath.Join(sd, filestore.HeadFile),
		[]byte(fmt.Sprintf(`{"seq":%d,"hash":%q}`, headSeq, headHash)), 0o600))
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("old store: %v %s", p, out)
	}
	return dir
}

// continueStore has a recorder on the store in dir record one session of
// info, checks that the store still verifies, and returns its summaries.
func continueStore(t *testing.T, dir string, info StartInfo) []Summary {
	t.Helper()
	r := openT(t, testCfg(), dir)
	s := r.Start(info)
	must(t, s.End("client_closed"))
	must(t, r.Close())
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("old store continued with session %+v: %v %s", info, p, out)
	}
	st, _ := OpenStore(dir)
	list, err := st.List(Filter{})
	must(t, err)
	return list
}

// Every event of a session carries its profile — also the session_end the
// recorder writes itself at shutdown — and summaries, filters, the API,
// replay and the OCSF export show it.
func TestProfileOnEveryEvent(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	kb := r.Start(StartInfo{ID: "k1", User: "alice@example.com", Database: "kb", Profile: "kb"})
	must(t, kb.Statement(StatementEvent{SQL: "SELECT 1", Actions: []string{"read"}, Decision: DecisionAllow}))
	must(t, kb.Approval(ApprovalEvent{ID: "ap1", State: "pending", SQL: "TRUNCATE t", Actions: []string{"truncate"}}))
	must(t, kb.Error("", "lost upstream"))
	must(t, kb.End("client_closed"))
	sup := r.Start(StartInfo{ID: "s1", User: "bob", Database: "support", Profile: "support"})
	must(t, sup.Statement(StatementEvent{SQL: "SELECT 2", Actions: []string{"read"}, Decision: DecisionAllow}))
	// s1 is left open: Close ends it (gateway_shutdown)
	must(t, r.Close())
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("verify: %v %s", p, out)
	}
	st, _ := OpenStore(dir)
	for id, want := range map[string]string{"k1": "kb", "s1": "support"} {
		evs, err := st.Get(id)
		must(t, err)
		if len(evs) < 3 {
			t.Fatalf("%s: %d events", id, len(evs))
		}
		for _, ev := range evs {
			if ev.Profile != want {
				t.Fatalf("%s: %s event has profile %q, want %q", id, ev.Type, ev.Profile, want)
			}
		}
		if last := evs[len(evs)-1]; last.Type != TypeSessionEnd {
			t.Fatalf("%s ends with %s", id, last.Type)
		}
	}
	if !strings.Contains(readAll(t, dir), `"database":"kb","profile":"kb",`) {
		t.Fatal("profile is not right after database in the stored line")
	}

	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "k1,s1"},
		{Filter{Profile: "kb"}, "k1"},
		{Filter{Profile: "support"}, "s1"},
		{Filter{Profile: "nope"}, ""},
		{Filter{Database: "support"}, "s1"},
		{Filter{Profile: "kb", User: "bob"}, ""},
	} {
		got, err := st.List(c.f)
		must(t, err)
		ids := []string{}
		for _, s := range got {
			ids = append(ids, s.ID)
			if c.f.Profile != "" && s.Profile != c.f.Profile {
				t.Fatalf("summary %s profile %q", s.ID, s.Profile)
			}
		}
		if strings.Join(ids, ",") != c.want {
			t.Errorf("List(%+v) = %v, want %q", c.f, ids, c.want)
		}
	}

	srv := httptest.NewServer(st.APIHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/sessions?profile=support")
	must(t, err)
	var body struct {
		Sessions []map[string]any `json:"sessions"`
	}
	must(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	if len(body.Sessions) != 1 || body.Sessions[0]["id"] != "s1" || body.Sessions[0]["profile"] != "support" {
		t.Fatalf("API ?profile=support: %+v", body.Sessions)
	}

	var out bytes.Buffer
	must(t, st.Replay(context.Background(), &out, "k1", false))
	if !strings.Contains(out.String(), "database kb profile kb as") {
		t.Fatalf("replay header lacks the profile:\n%s", out.String())
	}

	out.Reset()
	must(t, st.Export(&out, time.Time{}, "ocsf"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) == 0 {
		t.Fatal("no OCSF output")
	}
	for i, l := range lines {
		var o struct {
			Actor struct {
				Session struct {
					UID string `json:"uid"`
				} `json:"session"`
			} `json:"actor"`
			Database *struct {
				Name string `json:"name"`
			} `json:"database"`
			Unmapped map[string]any `json:"unmapped"`
		}
		must(t, json.Unmarshal([]byte(l), &o))
		want := map[string]string{"k1": "kb", "s1": "support"}[o.Actor.Session.UID]
		if o.Unmapped["profile"] != want || o.Database == nil || o.Database.Name != want {
			t.Fatalf("OCSF line %d: profile %v database %+v, want %q:\n%s", i, o.Unmapped["profile"], o.Database, want, l)
		}
	}
}

// Without a profile (a gateway before profiles, or recorder events) the
// OCSF object has no unmapped.profile and the line no "profile" key.
func TestNoProfileOmitted(t *testing.T) {
	ev := Event{Seq: 1, Time: "2025-01-02T03:04:05.000000000Z", Session: "x", Type: TypeSessionStart, Database: "vectors"}
	b, err := OCSF(&ev)
	must(t, err)
	if bytes.Contains(b, []byte(`"profile"`)) {
		t.Fatalf("OCSF of an event without profile: %s", b)
	}
	if bytes.Contains(newEncoder().Line(&ev), []byte(`"profile"`)) {
		t.Fatal("an event without profile encodes a profile key")
	}
}

// In the shared store the profile is on every event too, including the
// session_end another process writes for a session it finds left open
// (gateway_restart / gateway_lost), and filters see it.
func TestSharedProfileOnEveryEvent(t *testing.T) {
	db, dsn := sharedDB(t)
	dbLost := openShared(t, dsn)
	lost := sharedRecorder(t, dbLost, "gw-lost")
	s := lost.Start(StartInfo{ID: "p1", User: "alice@example.com", Database: "kb", Profile: "kb"})
	must(t, s.Statement(StatementEvent{SQL: "SELECT 1", Decision: DecisionAllow}))
	dbLost.Close() // "kill -9"

	b := sharedRecorder(t, db, "gw-b")
	defer b.Close()
	ended, err := b.EndSessionsOf(context.Background(), "gw-lost")
	if err != nil || len(ended) != 1 || ended[0].Profile != "kb" {
		t.Fatalf("EndSessionsOf = %+v, %v", ended, err)
	}
	other := b.Start(StartInfo{ID: "p2", User: "bob", Database: "support", Profile: "support"})
	must(t, other.End("client_closed"))
	st := OpenSharedStore(db)
	evs, err := st.Get("p1")
	if err != nil || len(evs) != 3 || evs[2].Reason != ReasonGatewayLost {
		t.Fatalf("p1: %+v %v", evs, err)
	}
	for _, ev := range evs {
		if ev.Profile != "kb" {
			t.Fatalf("p1 %s event (gateway %s) has profile %q", ev.Type, ev.Gateway, ev.Profile)
		}
	}
	got, err := st.List(Filter{Profile: "support"})
	if err != nil || len(got) != 1 || got[0].ID != "p2" || got[0].Profile != "support" {
		t.Fatalf("List profile=support: %+v %v", got, err)
	}
	if ok, out := verifyShared(t, st); !ok {
		t.Fatal(out)
	}
}

package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/boltstore"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/pgwire"
)

// termSession is a fake session whose Terminate ends it as pgwire does:
// the hooks' Close with reason "terminated".
type termSession struct {
	fakeSession
	mu  sync.Mutex
	err *pgerr.Error
	h   *hooks
}

func (s *termSession) Terminate(err *pgerr.Error) {
	s.mu.Lock()
	s.err = err
	h := s.h
	s.mu.Unlock()
	go h.Close("terminated", err)
}

func liveGateway(t *testing.T) (*Gateway, http.Handler) {
	t.Helper()
	g := benchGateway(t, false, true)
	g.cfg.Cluster.GatewayID = "gw-test"
	st, err := boltstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	g.approvals = approvals.New(config.Approval{Approvers: []string{"dba"}}, st, zerolog.Nop())
	t.Cleanup(g.approvals.Close)
	return g, g.liveAPI()
}

func openSession(t *testing.T, g *Gateway, id, user string, started time.Time) *termSession {
	t.Helper()
	s := &termSession{fakeSession: fakeSession{tr: pgwire.NewTracker(), info: pgwire.SessionInfo{ID: id,
		Principal: identity.Principal{User: user, Groups: []string{"analyst"}}, Database: "vectors",
		Profile: config.DefaultProfile, BackendUser: "pgw_" + id, ClientAddr: "127.0.0.1:5000", StartedAt: started}}}
	hk, err := g.newHooks(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	s.h = hk.(*hooks)
	return s
}

func call(t *testing.T, h http.Handler, method, path, body string, p *identity.Principal) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if p != nil {
		req = req.WithContext(identity.WithPrincipal(req.Context(), *p))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, path, rec.Code, rec.Body.String())
	}
	return rec.Code, out
}

func TestLiveAPI(t *testing.T) {
	g, api := liveGateway(t)
	now := time.Now()
	s2 := openSession(t, g, "sess2", "bob@example.com", now)
	openSession(t, g, "sess1", "alice@example.com", now.Add(-time.Minute))
	dba := &identity.Principal{User: "dba-1@example.com", Groups: []string{"dba"}}
	analyst := &identity.Principal{User: "alice@example.com", Groups: []string{"analyst"}}

	if code, body := call(t, api, "GET", "/api/v1/live", "", nil); code != 401 || body["error"] == nil {
		t.Fatalf("no caller: %d %v", code, body)
	}
	if code, body := call(t, api, "GET", "/api/v1/live", "", analyst); code != 403 || !strings.Contains(body["error"].(string), "approver") {
		t.Fatalf("non-approver: %d %v", code, body)
	}
	code, body := call(t, api, "GET", "/api/v1/live", "", dba)
	list, _ := body["sessions"].([]any)
	if code != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", code, body)
	}
	first := list[0].(map[string]any)
	if first["session"] != "sess1" || first["user"] != "alice@example.com" || first["gateway"] != "gw-test" ||
		first["backend_user"] != "pgw_sess1" || first["database"] != "vectors" || first["client_addr"] != "127.0.0.1:5000" {
		t.Fatalf("first (oldest) session: %v", first)
	}

	if code, _ := call(t, api, "POST", "/api/v1/live/sess2/terminate", "", analyst); code != 403 {
		t.Fatalf("non-approver terminate: %d", code)
	}
	if code, body := call(t, api, "POST", "/api/v1/live/nope/terminate", "", dba); code != 404 || body["error"] == nil {
		t.Fatalf("unknown: %d %v", code, body)
	}
	if code, _ := call(t, api, "POST", "/api/v1/live/sess2/terminate", `{"bogus":1}`, dba); code != 400 {
		t.Fatalf("bad body: %d", code)
	}
	code, body = call(t, api, "POST", "/api/v1/live/sess2/terminate", `{"reason":"left open overnight"}`, dba)
	if code != 200 || body["session"] != "sess2" || body["ended_by"] != "dba-1@example.com" || body["reason"] != "left open overnight" || body["ended"] != true {
		t.Fatalf("terminate: %d %v", code, body)
	}
	s2.mu.Lock()
	perr := s2.err
	s2.mu.Unlock()
	if perr == nil || perr.Code != pgerr.AdminShutdown || perr.Severity != pgerr.SeverityFatal ||
		perr.Message != "pgwarden: session ended by dba-1@example.com" || perr.Detail != "left open overnight" {
		t.Fatalf("the client's error: %+v", perr)
	}
	code, body = call(t, api, "GET", "/api/v1/live", "", dba)
	if list, _ := body["sessions"].([]any); code != 200 || len(list) != 1 {
		t.Fatalf("after terminate: %d %v", code, body)
	}
	if code, _ := call(t, api, "POST", "/api/v1/live/sess2/terminate", "", dba); code != 404 {
		t.Fatalf("terminate again: %d", code)
	}
	if code, _ := call(t, api, "GET", "/api/v1/live/sess1", "", dba); code != 404 {
		t.Fatalf("unknown route: %d", code)
	}
}

// A delegated session shows its actor in the live list (an undelegated one
// has no actor key); a delegated caller acts with the groups both hold —
// an approver acting through an agent outside the approver groups gets 403
// — and one whose agent is an approver too ends a session as "user via
// actor".
func TestLiveAPIDelegated(t *testing.T) {
	g, api := liveGateway(t)
	now := time.Now()
	s := &termSession{fakeSession: fakeSession{tr: pgwire.NewTracker(), info: pgwire.SessionInfo{ID: "sessd",
		Principal: identity.Principal{User: "alice@example.com", Actor: "agent-7", Groups: []string{"analyst"}}, Database: "vectors",
		Profile: config.DefaultProfile, BackendUser: "pgw_sessd", StartedAt: now}}}
	hk, err := g.newHooks(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	s.h = hk.(*hooks)
	openSession(t, g, "sessp", "bob@example.com", now.Add(-time.Minute))

	// bob is a dba, but the agent acting for him is not: no approver rights.
	viaAnalyst := &identity.Principal{User: "bob@example.com", Actor: "agent-9", Groups: nil}
	if code, _ := call(t, api, "GET", "/api/v1/live", "", viaAnalyst); code != 403 {
		t.Fatalf("delegated caller without approver groups: %d", code)
	}
	viaDBA := &identity.Principal{User: "dba-1@example.com", Actor: "ops-bot", Groups: []string{"dba"}}
	code, body := call(t, api, "GET", "/api/v1/live", "", viaDBA)
	list, _ := body["sessions"].([]any)
	if code != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", code, body)
	}
	for _, x := range list {
		ls := x.(map[string]any)
		switch ls["session"] {
		case "sessd":
			if ls["user"] != "alice@example.com" || ls["actor"] != "agent-7" {
				t.Fatalf("delegated session: %v", ls)
			}
		case "sessp":
			if _, ok := ls["actor"]; ok {
				t.Fatalf("undelegated session has an actor key: %v", ls)
			}
		}
	}
	code, body = call(t, api, "POST", "/api/v1/live/sessd/terminate", "", viaDBA)
	if code != 200 || body["ended_by"] != "dba-1@example.com via ops-bot" || body["actor"] != "agent-7" {
		t.Fatalf("terminate: %d %v", code, body)
	}
	s.mu.Lock()
	perr := s.err
	s.mu.Unlock()
	if perr == nil || perr.Message != "pgwarden: session ended by dba-1@example.com via ops-bot" {
		t.Fatalf("the client's error: %+v", perr)
	}
}

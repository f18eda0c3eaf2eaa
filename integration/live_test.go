package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions"
)

// liveSession is one entry of GET /api/v1/live.
type liveSession struct {
	Session         string   `json:"session"`
	User            string   `json:"user"`
	Actor           string   `json:"actor"`
	Groups          []string `json:"groups"`
	Database        string   `json:"database"`
	Profile         string   `json:"profile"`
	ClientAddr      string   `json:"client_addr"`
	ApplicationName string   `json:"application_name"`
	BackendUser     string   `json:"backend_user"`
	StartedAt       string   `json:"started_at"`
	Gateway         string   `json:"gateway"`
	EndedBy         string   `json:"ended_by"`
	Reason          string   `json:"reason"`
	Ended           *bool    `json:"ended"`
}

// liveCall calls the admin API with token ("" = none) and returns the
// status and body.
func liveCall(t *testing.T, w *gw, method, path, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, w.AdminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// wantAPIError checks an error answer: the status and a JSON {"error"}
// containing part.
func wantAPIError(t *testing.T, code int, body []byte, wantCode int, part string) map[string]string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil || code != wantCode || e["error"] == "" || !strings.Contains(e["error"], part) {
		t.Fatalf("want %d {\"error\": \"…%s…\"}, got %d %s", wantCode, part, code, body)
	}
	if strings.HasPrefix(e["error"], "pgwarden: ") {
		t.Fatalf("API errors carry no pgwarden: prefix: %q", e["error"])
	}
	return e
}

func liveList(t *testing.T, w *gw, token string) []liveSession {
	t.Helper()
	code, body := liveCall(t, w, "GET", "/api/v1/live", token, "")
	if code != 200 {
		t.Fatalf("GET /api/v1/live: %d %s", code, body)
	}
	var out struct {
		Sessions []liveSession `json:"sessions"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Sessions
}

func findLive(list []liveSession, user string) *liveSession {
	for i := range list {
		if list[i].User == user {
			return &list[i]
		}
	}
	return nil
}

// An analyst's pgx session is listed for a dba approver, ended by one
// through the API: the client's next query fails with FATAL 57P01
// "pgwarden: …", its minted role is dropped, its record ends.
func TestLiveSessionsTerminate(t *testing.T) {
	w := startGateway(t, nil)
	ctx := context.Background()
	const analyst, dba = "alice@example.com", "dba-1@example.com"
	cc := w.connConfig(t, analyst, w.Issuer.token(t, analyst, "analyst"))
	cc.RuntimeParams["application_name"] = "live-test"
	conn := w.connectWith(t, cc)
	var role string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		t.Fatal(err)
	}
	// An older session of someone else: the list is sorted by started_at.
	other := w.connect(t, "bob@example.com", "analyst")
	usable(t, other)

	dbaTok := w.Issuer.token(t, dba, "dba")
	list := liveList(t, w, dbaTok)
	s := findLive(list, analyst)
	if s == nil {
		t.Fatalf("the analyst's session is not listed: %+v", list)
	}
	if s.Database != "vectors" || s.BackendUser != role || !slices.Contains(s.Groups, "analyst") ||
		s.ApplicationName != "live-test" || s.Gateway != w.Cfg.Cluster.ID() || s.Profile == "" ||
		s.ClientAddr == "" || s.Session == "" {
		t.Fatalf("listed session: %+v (role %s)", s, role)
	}
	if len(list) != 2 || list[0].User != analyst || list[1].User != "bob@example.com" {
		t.Fatalf("want both sessions by started_at: %+v", list)
	}
	if _, err := time.Parse(time.RFC3339Nano, s.StartedAt); err != nil {
		t.Fatalf("started_at %q: %v", s.StartedAt, err)
	}

	// Who may: approver groups only, a token always.
	code, body := liveCall(t, w, "GET", "/api/v1/live", "", "")
	wantAPIError(t, code, body, 401, "bearer token")
	anaTok := w.Issuer.token(t, analyst, "analyst")
	code, body = liveCall(t, w, "GET", "/api/v1/live", anaTok, "")
	wantAPIError(t, code, body, 403, "approver")
	code, body = liveCall(t, w, "POST", "/api/v1/live/"+s.Session+"/terminate", anaTok, "")
	wantAPIError(t, code, body, 403, "approver")
	code, body = liveCall(t, w, "POST", "/api/v1/live/nosuchsession/terminate", dbaTok, "")
	wantAPIError(t, code, body, 404, "no live session")
	usable(t, conn)

	code, body = liveCall(t, w, "POST", "/api/v1/live/"+s.Session+"/terminate", dbaTok, `{"reason": "left open over the weekend"}`)
	if code != 200 {
		t.Fatalf("terminate: %d %s", code, body)
	}
	var ended liveSession
	if err := json.Unmarshal(body, &ended); err != nil {
		t.Fatal(err)
	}
	if ended.Session != s.Session || ended.User != analyst || ended.EndedBy != dba || ended.Reason != "left open over the weekend" || ended.Ended == nil || !*ended.Ended {
		t.Fatalf("terminate answer: %s", body)
	}

	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := conn.Exec(qctx, "SELECT 1")
	cancel()
	pe := wantPgError(t, err, "57P01", "session ended by "+dba)
	if pe.Severity != "FATAL" {
		t.Fatalf("severity %s", pe.Severity)
	}

	deadline := time.Now().Add(15 * time.Second)
	for roleExists(t, upstream.pg, role) {
		if time.Now().After(deadline) {
			t.Fatalf("role %s still exists 15s after the session was ended", role)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The record: who ended it and why, then session_end "terminated".
	var rec struct {
		Events []sessions.Event `json:"events"`
	}
	if err := json.Unmarshal([]byte(adminGet(t, w, "/api/v1/sessions/"+s.Session)), &rec); err != nil {
		t.Fatal(err)
	}
	n := len(rec.Events)
	if n < 3 || rec.Events[n-1].Type != sessions.TypeSessionEnd || rec.Events[n-1].Reason != "terminated" {
		t.Fatalf("the record does not end with session_end terminated: %+v", rec.Events)
	}
	if e := rec.Events[n-2]; e.Type != sessions.TypeError || !strings.Contains(e.Error, "ended by "+dba) || !strings.Contains(e.Error, "left open over the weekend") {
		t.Fatalf("no note of who ended the session before session_end: %+v", e)
	}

	// Gone from the list; ending it again is 404; the other session lives on.
	if l := liveList(t, w, dbaTok); findLive(l, analyst) != nil || findLive(l, "bob@example.com") == nil {
		t.Fatalf("after the end: %+v", l)
	}
	code, body = liveCall(t, w, "POST", "/api/v1/live/"+s.Session+"/terminate", dbaTok, "")
	wantAPIError(t, code, body, 404, "no live session")
	usable(t, other)
}

// Two gateways sharing a store: each lists the other's sessions too
// (gateway names the one holding it); ending a session through a gateway
// that does not hold it answers 409 naming the holder.
func TestLiveSessionsSharedStore(t *testing.T) {
	dsn := storeDSN(t, "pgw_live_store")
	shared := func(id string) func(*config.Config) {
		return func(c *config.Config) { c.Store.DSN, c.Cluster.GatewayID = dsn, id }
	}
	a := startGateway(t, shared("gw-live-a"))
	b := startGateway(t, shared("gw-live-b"))
	onB := b.connect(t, "carol@example.com", "analyst")
	usable(t, onB)

	aTok := a.Issuer.token(t, "dba-1@example.com", "dba")
	s := findLive(liveList(t, a, aTok), "carol@example.com")
	if s == nil || s.Gateway != "gw-live-b" || s.Database != "vectors" || s.BackendUser == "" {
		t.Fatalf("gateway a does not list b's session: %+v", s)
	}
	code, body := liveCall(t, a, "POST", "/api/v1/live/"+s.Session+"/terminate", aTok, "")
	if e := wantAPIError(t, code, body, 409, "gw-live-b"); e["gateway"] != "gw-live-b" {
		t.Fatalf("409 without the gateway: %s", body)
	}
	usable(t, onB)

	bTok := b.Issuer.token(t, "dba-1@example.com", "dba")
	code, body = liveCall(t, b, "POST", "/api/v1/live/"+s.Session+"/terminate", bTok, "")
	if code != 200 {
		t.Fatalf("terminate on the holding gateway: %d %s", code, body)
	}
	_, err := onB.Exec(context.Background(), "SELECT 1")
	wantPgError(t, err, "57P01", "session ended by dba-1@example.com")
	if l := liveList(t, a, aTok); findLive(l, "carol@example.com") != nil {
		t.Fatalf("a still lists the ended session: %+v", l)
	}
}

// The Live tab in a real headless Chromium: a dba sees the analyst's
// session, clicks "End session", accepts the confirm(), and the client's
// next query fails with FATAL 57P01.
func TestUILiveEndSession(t *testing.T) {
	chrome := chromiumPath(t)
	w := startGateway(t, nil)
	// The user name carries markup: the page must show it as text.
	const analyst = `<b id="pwned">eve</b>@example.com`
	conn := w.connect(t, analyst, "analyst")
	usable(t, conn)
	s := findLive(liveList(t, w, w.Issuer.token(t, "dba-1@example.com", "dba")), analyst)
	if s == nil {
		t.Fatal("the analyst's session is not listed")
	}

	ctx, cancel := newBrowser(t, chrome, 90*time.Second)
	defer cancel()
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }

	var user, label, status string
	var pwned bool
	err := chromedp.Run(ctx,
		chromedp.Navigate(w.AdminURL+"/ui/"),
		chromedp.Click(`[data-testid="token-auth"] summary`, chromedp.ByQuery),
		chromedp.WaitVisible(sel("token-input"), chromedp.ByQuery),
		chromedp.SendKeys(sel("token-input"), w.Issuer.token(t, "dba-2@example.com", "dba"), chromedp.ByQuery),
		chromedp.Click(sel("token-save"), chromedp.ByQuery),
		chromedp.Click(sel("tab-live"), chromedp.ByQuery),
		chromedp.WaitVisible(sel("live-"+s.Session), chromedp.ByQuery),
		chromedp.Text(sel("live-user-"+s.Session), &user, chromedp.ByQuery),
		chromedp.AttributeValue(sel("end-"+s.Session), "aria-label", &label, nil, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("pwned") !== null`, &pwned),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if user != analyst || !strings.Contains(label, "End session "+s.Session) {
		t.Fatalf("the Live tab shows user %q, button label %q", user, label)
	}
	if pwned {
		t.Fatal("the page rendered the user name's markup as HTML")
	}
	usable(t, conn)

	// confirm() answered yes, and what it asked kept (the page's own
	// call; a real dialog would need the DevTools protocol's dialog events).
	var asked string
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`window.confirm = (m) => { window.__asked = String(m); return true; }`, nil),
		chromedp.SendKeys(sel("live-reason"), "ended in the browser", chromedp.ByQuery),
		chromedp.Click(sel("end-"+s.Session), chromedp.ByQuery),
		chromedp.WaitNotPresent(sel("live-"+s.Session), chromedp.ByQuery),
		chromedp.Text(sel("status"), &status, chromedp.ByQuery),
		chromedp.Evaluate(`window.__asked || ""`, &asked),
	)
	if err != nil {
		t.Fatalf("end session in the browser: %v", err)
	}
	if !strings.Contains(asked, s.Session) {
		t.Fatalf("the session was ended without a confirm() naming it (asked %q)", asked)
	}
	_, err = conn.Exec(context.Background(), "SELECT 1")
	pe := wantPgError(t, err, "57P01", "session ended by dba-2@example.com")
	if pe.Detail != "ended in the browser" {
		t.Fatalf("detail %q", pe.Detail)
	}
	t.Logf("UI status %q", status)
}

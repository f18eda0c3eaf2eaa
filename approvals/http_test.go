package approvals_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/identity"
)

// testTokens stands in for the admin bearer middleware (owned by admin/):
// it maps a bearer token to a principal, and leaves the context empty for
// anything else, as the real middleware does for a refused token.
var testTokens = map[string]identity.Principal{
	"tok-dba1":    dba1,
	"tok-dba2":    dba2,
	"tok-analyst": analyst,
}

func withTestAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			if p, ok := testTokens[tok]; ok {
				r = r.WithContext(identity.WithPrincipal(r.Context(), p))
			}
		}
		h.ServeHTTP(w, r)
	})
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	return resp.StatusCode, b
}

func errorText(t *testing.T, b []byte) string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal(b, &e); err != nil || e["error"] == "" {
		t.Fatalf("not a JSON error: %s", b)
	}
	return e["error"]
}

func TestAPIStatusCodes(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	srv := httptest.NewServer(withTestAuth(f.m.APIHandler()))
	defer srv.Close()
	a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
	b := hold(t, f.m, req("dba-1", "s1", "TRUNCATE documents"))
	base := "/api/v1/approvals"

	// 401: no token, unknown token.
	for _, tok := range []string{"", "forged"} {
		code, body := call(t, srv, "GET", base, tok, "")
		if code != 401 {
			t.Fatalf("token %q: %d %s", tok, code, body)
		}
		errorText(t, body)
		if code, _ := call(t, srv, "POST", base+"/"+a.ID+"/approve", tok, `{}`); code != 401 {
			t.Fatalf("approve without token: %d", code)
		}
	}

	// 200 list (any verified caller may read), newest first.
	code, body := call(t, srv, "GET", base+"?state=pending", "tok-analyst", "")
	var list []Approval
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 2 || list[0].ID != b.ID {
		t.Fatalf("list: %d %s", code, body)
	}
	// 400 unknown state, bad limit.
	if code, body := call(t, srv, "GET", base+"?state=bogus", "tok-dba2", ""); code != 400 || !strings.Contains(errorText(t, body), "unknown state") {
		t.Fatalf("bad state: %d %s", code, body)
	}
	if code, _ := call(t, srv, "GET", base+"?limit=x", "tok-dba2", ""); code != 400 {
		t.Fatalf("bad limit: %d", code)
	}
	if code, body := call(t, srv, "GET", base+"?limit=1", "tok-dba2", ""); code != 200 || json.Unmarshal(body, &list) != nil || len(list) != 1 {
		t.Fatalf("limit: %d %s", code, body)
	}
	// 200 get, 404 unknown.
	code, body = call(t, srv, "GET", base+"/"+a.ID, "tok-dba2", "")
	var got Approval
	if code != 200 || json.Unmarshal(body, &got) != nil || got.ID != a.ID || got.SQL != "DELETE FROM documents" {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, _ := call(t, srv, "GET", base+"/aaaaaaaaaaaaaaaa", "tok-dba2", ""); code != 404 {
		t.Fatalf("unknown id: %d", code)
	}
	if code, _ := call(t, srv, "POST", base+"/aaaaaaaaaaaaaaaa/approve", "tok-dba2", ""); code != 404 {
		t.Fatalf("approve unknown id: %d", code)
	}
	// 403: non-approver, own request.
	if code, body := call(t, srv, "POST", base+"/"+a.ID+"/approve", "tok-analyst", `{"comment":"x"}`); code != 403 || !strings.Contains(errorText(t, body), "approver group") {
		t.Fatalf("non-approver: %d %s", code, body)
	}
	if code, body := call(t, srv, "POST", base+"/"+a.ID+"/approve", "tok-dba1", `{}`); code != 403 || !strings.Contains(errorText(t, body), "four eyes") {
		t.Fatalf("own request: %d %s", code, body)
	}
	// 400: bad body, deny without reason, unknown field.
	for _, bad := range []string{`{`, `[1]`, `{"comment":"a","x":1}`, `{"comment":"a"} {}`} {
		if code, body := call(t, srv, "POST", base+"/"+a.ID+"/approve", "tok-dba2", bad); code != 400 {
			t.Fatalf("body %q: %d %s", bad, code, body)
		}
	}
	if code, body := call(t, srv, "POST", base+"/"+b.ID+"/deny", "tok-dba2", `{"comment":"no reason field"}`); code != 400 || !strings.Contains(errorText(t, body), "reason") {
		t.Fatalf("deny without reason: %d %s", code, body)
	}
	big := `{"comment":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	if code, _ := call(t, srv, "POST", base+"/"+a.ID+"/approve", "tok-dba2", big); code != 400 {
		t.Fatalf("oversized body: %d", code)
	}
	// 200 approve (empty body allowed), then 409.
	code, body = call(t, srv, "POST", base+"/"+a.ID+"/approve", "tok-dba2", "")
	if code != 200 || json.Unmarshal(body, &got) != nil || got.State != Approved || got.DecidedBy != "dba-2" {
		t.Fatalf("approve: %d %s", code, body)
	}
	if code, body := call(t, srv, "POST", base+"/"+a.ID+"/approve", "tok-dba2", `{"comment":"again"}`); code != 409 || !strings.Contains(errorText(t, body), "already approved") {
		t.Fatalf("second approve: %d %s", code, body)
	}
	if code, _ := call(t, srv, "POST", base+"/"+a.ID+"/deny", "tok-dba2", `{"reason":"late"}`); code != 409 {
		t.Fatalf("deny after approve: %d", code)
	}
	// 200 deny with reason, stored in comment.
	code, body = call(t, srv, "POST", base+"/"+b.ID+"/deny", "tok-dba2", `{"reason":"add a WHERE"}`)
	if code != 200 || json.Unmarshal(body, &got) != nil || got.State != Denied || got.Comment != "add a WHERE" {
		t.Fatalf("deny: %d %s", code, body)
	}
	// 405 from the mux for a wrong method.
	req, _ := http.NewRequest("DELETE", srv.URL+base+"/"+a.ID, nil)
	req.Header.Set("Authorization", "Bearer tok-dba2")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
}

func TestUIHandler(t *testing.T) {
	srv := httptest.NewServer(UIHandler())
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/ui/", "/ui", "/ui/index.html"} {
		resp, body := get(p)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{`data-testid="token-input"`, `data-testid="approvals-body"`, `data-testid="sessions-body"`, `data-testid="replay-body"`, `src="app.js"`} {
			if !strings.Contains(body, want) {
				t.Fatalf("%s lacks %s", p, want)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Fatalf("CSP %q", csp)
		}
		if strings.Contains(body, "<script>") {
			t.Fatal("inline script in the page (the CSP forbids it)")
		}
	}
	resp, js := get("/ui/app.js")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("app.js: %d", resp.StatusCode)
	}
	for _, want := range []string{"sessionStorage", "/api/v1/approvals", "/api/v1/sessions", `"approve-" + a.id`, `"deny-" + a.id`} {
		if !strings.Contains(js, want) {
			t.Fatalf("app.js lacks %s", want)
		}
	}
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "localStorage") {
		t.Fatal("app.js renders HTML from data or keeps the token beyond the tab")
	}
	if resp, _ := get("/ui/app.css"); resp.StatusCode != 200 {
		t.Fatalf("app.css: %d", resp.StatusCode)
	}
	if resp, _ := get("/ui/../approval.go"); resp.StatusCode != 404 {
		t.Fatalf("traversal: %d", resp.StatusCode)
	}
	if resp, _ := get("/ui/nope"); resp.StatusCode != 404 {
		t.Fatalf("unknown asset: %d", resp.StatusCode)
	}
	r, err := srv.Client().Post(srv.URL+"/ui/", "text/plain", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 405 {
		t.Fatalf("POST /ui/: %d", r.StatusCode)
	}
}

func TestCLIAgainstAPI(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	srv := httptest.NewServer(withTestAuth(f.m.APIHandler()))
	defer srv.Close()
	a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
	b := hold(t, f.m, req("dba-1", "s1", "TRUNCATE documents"))
	ctx := context.Background()
	run := func(token string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		c := &Client{BaseURL: srv.URL, Token: token, HTTP: srv.Client()}
		code := RunCLI(ctx, args, &out, &errb, c)
		return code, out.String(), errb.String()
	}

	code, out, _ := run("tok-dba2", "list")
	if code != 0 || !strings.Contains(out, a.ID) || !strings.Contains(out, b.ID) || !strings.Contains(out, "STATE") || !strings.Contains(out, "DELETE FROM documents") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = run("tok-dba2", "list", "--state", "denied")
	if code != 0 || strings.TrimSpace(out) != "no approvals" {
		t.Fatalf("list denied: %d %q", code, out)
	}
	code, out, _ = run("tok-dba2", "list", "--json", "--state=all")
	var list []Approval
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatalf("list --json: %d %s", code, out)
	}
	code, out, _ = run("tok-dba2", "show", a.ID)
	if code != 0 || !strings.Contains(out, "state:") || !strings.Contains(out, "pending") || !strings.Contains(out, "DELETE FROM documents") || !strings.Contains(out, "ticket OPS-1") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	code, out, _ = run("tok-dba2", "show", "--json", a.ID)
	var one Approval
	if code != 0 || json.Unmarshal([]byte(out), &one) != nil || one.ID != a.ID {
		t.Fatalf("show --json: %d %s", code, out)
	}
	// Own request: refused, exit 1, state unchanged.
	code, _, errOut := run("tok-dba1", "approve", a.ID)
	if code != 1 || !strings.Contains(errOut, "four eyes") {
		t.Fatalf("own approve: %d %s", code, errOut)
	}
	// Flag after the positional.
	code, out, _ = run("tok-dba2", "approve", a.ID, "--comment", "checked the count")
	if code != 0 || !strings.Contains(out, "approved") {
		t.Fatalf("approve: %d %s", code, out)
	}
	if got, _ := f.m.Get(ctx, a.ID); got.State != Approved || got.Comment != "checked the count" || got.DecidedBy != "dba-2" {
		t.Fatalf("stored: %+v", got)
	}
	code, _, errOut = run("tok-dba2", "approve", a.ID)
	if code != 1 || !strings.Contains(errOut, "conflict") || !strings.Contains(errOut, "already approved") {
		t.Fatalf("second approve: %d %s", code, errOut)
	}
	code, _, errOut = run("tok-dba2", "deny", b.ID)
	if code != 2 || !strings.Contains(errOut, "--reason") {
		t.Fatalf("deny without reason: %d %s", code, errOut)
	}
	code, out, _ = run("tok-dba2", "deny", "--reason=use a WHERE", b.ID)
	if code != 0 || !strings.Contains(out, "denied") {
		t.Fatalf("deny: %d %s", code, out)
	}
	code, _, errOut = run("tok-dba2", "show", "aaaaaaaaaaaaaaaa")
	if code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("show unknown: %d %s", code, errOut)
	}
	code, _, errOut = run("tok-analyst", "deny", "--reason", "x", b.ID)
	if code != 1 || !strings.Contains(errOut, "refused") {
		t.Fatalf("non-approver: %d %s", code, errOut)
	}
	code, _, errOut = run("secret-bad-token", "list")
	if code != 1 || !strings.Contains(errOut, "PGWARDEN_TOKEN") || strings.Contains(errOut, "secret-bad-token") {
		t.Fatalf("bad token: %d %s", code, errOut)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"show"}, {"show", "a", "b"}, {"list", "--bogus"}, {"list", "--state", "weird"}, {"approve", "x", "--comment"}, {"list", "--json=1"}} {
		if code, _, _ := run("tok-dba2", args...); code != 2 {
			t.Fatalf("usage %v: exit %d, want 2", args, code)
		}
	}
	if code, out, _ := run("", "help"); code != 0 || !strings.Contains(out, "usage") {
		t.Fatalf("help: %d", code)
	}
	// Unreachable server: exit 1, runtime failure.
	var out2, err2 bytes.Buffer
	dead := &Client{BaseURL: "http://127.0.0.1:1", Token: "tok-dba2"}
	if code := RunCLI(ctx, []string{"list"}, &out2, &err2, dead); code != 1 || !strings.Contains(err2.String(), "unreachable") {
		t.Fatalf("unreachable: %d %s", code, err2.String())
	}
}

func TestSplitGlobalFlags(t *testing.T) {
	g, rest, err := SplitGlobalFlags([]string{"--admin", "http://h:1", "approve", "--token=abc", "ID", "--comment", "c", "--config", "f.yaml"})
	if err != nil || g.Admin != "http://h:1" || g.Token != "abc" || g.Config != "f.yaml" || strings.Join(rest, " ") != "approve ID --comment c" {
		t.Fatalf("%+v %q %v", g, rest, err)
	}
	if _, _, err := SplitGlobalFlags([]string{"list", "--token"}); err == nil {
		t.Fatal("missing value accepted")
	}
}

package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/identity"
)

// refuseAll refuses every bearer token: only the session cookie gets in.
type refuseAll struct{}

func (refuseAll) Verify(context.Context, string, string) (identity.Principal, error) {
	return identity.Principal{}, &identity.RefusalError{Reason: identity.ReasonSignature, Detail: "test"}
}
func (refuseAll) Check(context.Context) error { return nil }

func newWebServer(t *testing.T) (*Server, *webAuth) {
	t.Helper()
	s := New(Options{Verifier: refuseAll{}, Logger: zerolog.Nop()})
	if err := s.EnableWebLogin(WebLogin{Issuer: "http://127.0.0.1:1", ClientID: "ui", PublicURL: "https://pgwarden.example.com"}); err != nil {
		t.Fatal(err)
	}
	var seen string
	s.HandleAPI("/probe", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := identity.FromContext(r.Context())
		seen = p.User
		w.Write([]byte(seen))
	}))
	return s, s.web
}

func do(s *Server, method, path string, cookies []*http.Cookie, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader("{}"))
	for _, c := range cookies {
		req.AddCookie(c)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rr := httptest.NewRecorder()
	s.srv.Handler.ServeHTTP(rr, req)
	return rr
}

func TestCallbackRefusals(t *testing.T) {
	s, wa := newWebServer(t)
	if rr := do(s, "GET", "/ui/callback?state=abc&code=x", nil, nil); rr.Code != 400 || !strings.Contains(rr.Body.String(), "not started from this browser") {
		t.Fatalf("no login cookie: %d %s", rr.Code, rr.Body)
	}
	wa.pending["good"] = pendingLogin{verifier: "v", expires: time.Now().Add(time.Minute)}
	if rr := do(s, "GET", "/ui/callback?state=good&code=x", []*http.Cookie{{Name: loginCookie, Value: "other"}}, nil); rr.Code != 400 {
		t.Fatalf("state not the browser's: %d", rr.Code)
	}
	lc := []*http.Cookie{{Name: loginCookie, Value: "good"}}
	if rr := do(s, "GET", "/ui/callback?state=good", lc, nil); rr.Code != 400 || !strings.Contains(rr.Body.String(), "no authorization code") {
		t.Fatalf("no code: %d %s", rr.Code, rr.Body)
	}
	if rr := do(s, "GET", "/ui/callback?state=good&code=x", lc, nil); rr.Code != 400 || !strings.Contains(rr.Body.String(), "already used") {
		t.Fatalf("a state used twice: %d %s", rr.Code, rr.Body)
	}
	wa.pending["old"] = pendingLogin{verifier: "v", expires: time.Now().Add(-time.Second)}
	if rr := do(s, "GET", "/ui/callback?state=old&code=x", []*http.Cookie{{Name: loginCookie, Value: "old"}}, nil); rr.Code != 400 {
		t.Fatalf("expired flow: %d", rr.Code)
	}
	wa.pending["e"] = pendingLogin{verifier: "v", expires: time.Now().Add(time.Minute)}
	if rr := do(s, "GET", "/ui/callback?state=e&error=access_denied<script>", []*http.Cookie{{Name: loginCookie, Value: "e"}}, nil); rr.Code != 403 || strings.Contains(rr.Body.String(), "<script>") {
		t.Fatalf("IdP error: %d %s", rr.Code, rr.Body)
	}
}

func TestWebSessionCSRFAndSignOut(t *testing.T) {
	s, wa := newWebServer(t)
	wa.sessions["sid"] = &webSession{principal: identity.Principal{User: "ann@example.com", Groups: []string{"dba"}}, expires: time.Now().Add(time.Hour), csrf: "tok"}
	sc := []*http.Cookie{{Name: sessionCookie, Value: "sid"}}
	if rr := do(s, "GET", "/api/v1/probe", sc, nil); rr.Code != 200 || rr.Body.String() != "ann@example.com" {
		t.Fatalf("GET with the cookie: %d %s", rr.Code, rr.Body)
	}
	if rr := do(s, "POST", "/api/v1/probe", sc, nil); rr.Code != 403 {
		t.Fatalf("POST without CSRF: %d", rr.Code)
	}
	if rr := do(s, "POST", "/api/v1/probe", sc, map[string]string{csrfHeader: "nope"}); rr.Code != 403 {
		t.Fatalf("POST with a wrong CSRF token: %d", rr.Code)
	}
	if rr := do(s, "POST", "/api/v1/probe", sc, map[string]string{csrfHeader: "tok"}); rr.Code != 200 {
		t.Fatalf("POST with the CSRF token: %d", rr.Code)
	}
	if rr := do(s, "GET", "/api/v1/probe", []*http.Cookie{{Name: sessionCookie, Value: "forged"}}, nil); rr.Code != 401 {
		t.Fatalf("unknown cookie: %d", rr.Code)
	}
	rr := do(s, "GET", "/ui/session", sc, nil)
	if rr.Code != 200 || !strings.Contains(rr.Body.String(), `"csrf":"tok"`) {
		t.Fatalf("/ui/session: %d %s", rr.Code, rr.Body)
	}
	if rr := do(s, "POST", "/ui/logout", sc, nil); rr.Code != 403 {
		t.Fatalf("logout without CSRF: %d", rr.Code)
	}
	rr = do(s, "POST", "/ui/logout", sc, map[string]string{csrfHeader: "tok"})
	if rr.Code != 200 || !strings.Contains(rr.Header().Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %v", rr.Code, rr.Header())
	}
	if rr := do(s, "GET", "/api/v1/probe", sc, nil); rr.Code != 401 {
		t.Fatalf("cookie after sign-out: %d", rr.Code)
	}
	wa.sessions["late"] = &webSession{principal: identity.Principal{User: "x"}, expires: time.Now().Add(-time.Second), csrf: "t"}
	if rr := do(s, "GET", "/api/v1/probe", []*http.Cookie{{Name: sessionCookie, Value: "late"}}, nil); rr.Code != 401 {
		t.Fatalf("expired session: %d", rr.Code)
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	_, wa := newWebServer(t)
	c := wa.cookie(sessionCookie, "v", time.Hour, http.SameSiteStrictMode)
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("session cookie over https: %+v", c)
	}
}

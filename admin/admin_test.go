package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/identity/devissuer"
)

// stack is an admin server on a real listener that also serves the dev
// issuer its own verifier discovers — the `pgwarden dev` arrangement.
type stack struct {
	url    string
	issuer *devissuer.Issuer
	srv    *admin.Server
	reg    *prometheus.Registry
	stop   func()
}

func startStack(t *testing.T, opts ...identity.Option) *stack {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	is, err := devissuer.Open(t.TempDir(), base+"/dev-issuer")
	if err != nil {
		t.Fatal(err)
	}
	// The server is not up yet: skip the first discovery attempt (a
	// cancelled ctx); it is retried lazily on first use.
	opts = append([]identity.Option{identity.WithDiscoveryRetry(time.Millisecond, time.Millisecond)}, opts...)
	dead, cancelDead := context.WithCancel(context.Background())
	cancelDead()
	v, err := identity.NewOIDC(dead, config.OIDC{
		Issuer: is.URL(), Audience: "pgwarden", UsernameClaim: "email", GroupsClaim: "groups", ClockSkew: 30 * time.Second,
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := admin.New(admin.Options{Verifier: v, Registry: reg, Logger: zerolog.New(zerolog.NewTestWriter(t)), ReadyTimeout: 200 * time.Millisecond})
	srv.Handle("/dev-issuer/", is.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	st := &stack{url: base, issuer: is, srv: srv, reg: reg}
	st.stop = func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
		v.Close()
		http.DefaultClient.CloseIdleConnections()
	}
	t.Cleanup(func() {
		if st.stop != nil {
			st.stop()
		}
	})
	return st
}

func (s *stack) token(t *testing.T, user string, groups ...string) string {
	t.Helper()
	tok, err := s.issuer.Mint(user, groups, time.Hour, "pgwarden")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	code int
	hdr  http.Header
	body string
	json map[string]any
}

func do(t *testing.T, method, url, auth string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, hdr: resp.Header, body: string(b)}
	json.Unmarshal(b, &r.json)
	return r
}

func TestHealthz(t *testing.T) {
	s := startStack(t)
	r := do(t, "GET", s.url+"/healthz", "")
	if r.code != 200 || strings.TrimSpace(r.body) != "ok" {
		t.Fatalf("healthz: %d %q", r.code, r.body)
	}
	if r := do(t, "POST", s.url+"/healthz", ""); r.code != http.StatusMethodNotAllowed {
		t.Fatalf("POST healthz: %d", r.code)
	}
}

func TestReadyz(t *testing.T) {
	s := startStack(t)
	s.srv.AddReadyCheck("upstream", func(ctx context.Context) error { return nil })
	r := do(t, "GET", s.url+"/readyz", "")
	checks, _ := r.json["checks"].(map[string]any)
	if r.code != 200 || checks["issuer"] != "ok" || checks["upstream"] != "ok" || r.json["status"] != "ok" {
		t.Fatalf("readyz all ok: %d %s", r.code, r.body)
	}

	s.srv.AddReadyCheck("credentials", func(ctx context.Context) error { return errors.New("admin role cannot log in") })
	s.srv.AddReadyCheck("slow", func(ctx context.Context) error { time.Sleep(2 * time.Second); return nil })
	start := time.Now()
	r = do(t, "GET", s.url+"/readyz", "")
	if el := time.Since(start); el > time.Second {
		t.Fatalf("readyz took %s with a check that ignores its deadline", el)
	}
	checks, _ = r.json["checks"].(map[string]any)
	if r.code != 503 || checks["credentials"] != "admin role cannot log in" || checks["slow"] != "timed out" || checks["upstream"] != "ok" {
		t.Fatalf("readyz with failures: %d %s", r.code, r.body)
	}
	// Replacing a check by name: the failing one recovers.
	s.srv.AddReadyCheck("credentials", func(ctx context.Context) error { return nil })
	s.srv.AddReadyCheck("slow", func(ctx context.Context) error { return nil })
	if r := do(t, "GET", s.url+"/readyz", ""); r.code != 200 {
		t.Fatalf("after recovery: %d %s", r.code, r.body)
	}
}

func TestReadyzIssuerDown(t *testing.T) {
	// A verifier for an issuer nobody serves.
	v, err := identity.NewOIDC(context.Background(), config.OIDC{Issuer: "http://127.0.0.1:1/none", Audience: "pgwarden", UsernameClaim: "email"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	srv := admin.New(admin.Options{Verifier: v})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	r := do(t, "GET", ts.URL+"/readyz", "")
	checks, _ := r.json["checks"].(map[string]any)
	if r.code != 503 || checks["issuer"] == "ok" || checks["issuer"] == nil {
		t.Fatalf("readyz with the issuer down: %d %s", r.code, r.body)
	}
	// API requests cannot be decided: 503, not 401.
	srv.HandleAPI("GET /x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler reached") }))
	r = do(t, "GET", ts.URL+"/api/v1/x", "Bearer a.b.c")
	if r.code != 401 { // malformed tokens are refused before discovery
		t.Fatalf("malformed token with issuer down: %d", r.code)
	}
	r = do(t, "GET", ts.URL+"/api/v1/x", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln")
	if r.code != 503 || r.hdr.Get("Retry-After") == "" || r.json["error"] != "identity provider unavailable" {
		t.Fatalf("well-formed token with issuer down: %d %v %s", r.code, r.hdr, r.body)
	}
}

func TestMetrics(t *testing.T) {
	s := startStack(t)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pgwarden_connections_total", Help: "test"})
	s.reg.MustRegister(c)
	c.Add(3)
	do(t, "GET", s.url+"/api/v1/nothing", "") // one auth failure
	r := do(t, "GET", s.url+"/metrics", "")
	for _, want := range []string{
		"pgwarden_connections_total 3",
		"go_goroutines ",
		"process_resident_memory_bytes ",
		`pgwarden_admin_auth_failures_total{reason="missing"} 1`,
		`pgwarden_admin_requests_total{code="401",route="/api/v1/"} 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if r.code != 200 {
		t.Fatalf("metrics: %d", r.code)
	}
}

func TestAPIBearer(t *testing.T) {
	s := startStack(t)
	var seen identity.Principal
	s.srv.HandleAPI("GET /things/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := identity.FromContext(r.Context())
		if !ok {
			t.Error("no principal in context")
		}
		seen = p
		w.Write([]byte(r.PathValue("id")))
	}))
	// A package's whole sub-mux, which routes on full paths.
	sub := http.NewServeMux()
	sub.HandleFunc("GET /api/v1/approvals", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("list")) })
	sub.HandleFunc("GET /api/v1/approvals/{id}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("one " + r.PathValue("id"))) })
	s.srv.HandleAPI("/approvals", sub)

	tok := s.token(t, "carol@example.com", "dba", "analyst")
	url := s.url + "/api/v1/things/42"

	r := do(t, "GET", url, "")
	if r.code != 401 || !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Bearer") || r.json["error"] == nil {
		t.Fatalf("no token: %d %v %s", r.code, r.hdr, r.body)
	}
	for _, auth := range []string{"Basic " + tok, "Bearer", "Bearer ", tok, "Bearer not-a-token", "Bearer " + tok[:len(tok)-3] + "AAA"} {
		r := do(t, "GET", url, auth)
		if r.code != 401 || r.json["error"] == nil || strings.Contains(r.body, tok) {
			t.Fatalf("auth %.20q: %d %s", auth, r.code, r.body)
		}
	}
	if r := do(t, "GET", url, "Bearer not-a-token"); !strings.Contains(r.hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("invalid token WWW-Authenticate: %q", r.hdr.Get("WWW-Authenticate"))
	}
	if seen.User != "" {
		t.Fatal("handler ran without a valid token")
	}

	r = do(t, "GET", url, "Bearer "+tok)
	if r.code != 200 || r.body != "42" {
		t.Fatalf("valid token: %d %q", r.code, r.body)
	}
	if seen.User != "carol@example.com" || !seen.HasGroup("dba") || !seen.HasGroup("analyst") {
		t.Fatalf("principal %+v", seen)
	}
	if r := do(t, "GET", url, "bearer "+tok); r.code != 200 {
		t.Fatalf("lower-case scheme: %d", r.code)
	}
	if r := do(t, "POST", url, "Bearer "+tok); r.code != http.StatusNotFound && r.code != http.StatusMethodNotAllowed {
		t.Fatalf("POST on a GET route: %d", r.code)
	}
	if r := do(t, "GET", s.url+"/api/v1/approvals", "Bearer "+tok); r.code != 200 || r.body != "list" {
		t.Fatalf("sub-mux list: %d %q", r.code, r.body)
	}
	if r := do(t, "GET", s.url+"/api/v1/approvals/abc", "Bearer "+tok); r.code != 200 || r.body != "one abc" {
		t.Fatalf("sub-mux item: %d %q", r.code, r.body)
	}
	if r := do(t, "GET", s.url+"/api/v1/approvals/abc", ""); r.code != 401 {
		t.Fatalf("sub-mux without token: %d", r.code)
	}
	// Unknown API routes: 401 without a token (no probing), 404 with one.
	if r := do(t, "GET", s.url+"/api/v1/unknown", ""); r.code != 401 {
		t.Fatalf("unknown route without token: %d", r.code)
	}
	if r := do(t, "GET", s.url+"/api/v1/unknown", "Bearer "+tok); r.code != 404 || r.json["error"] == nil {
		t.Fatalf("unknown route with token: %d %s", r.code, r.body)
	}
}

func TestAPIExpiredToken(t *testing.T) {
	// The verifier's clock is two hours ahead: a 1h token is expired.
	s := startStack(t, identity.WithNow(func() time.Time { return time.Now().Add(2 * time.Hour) }))
	s.srv.HandleAPI("GET /x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler reached") }))
	r := do(t, "GET", s.url+"/api/v1/x", "Bearer "+s.token(t, "a@x"))
	if r.code != 401 || r.json["error"] != "token expired" {
		t.Fatalf("expired: %d %s", r.code, r.body)
	}
}

func TestAPIRootHandler(t *testing.T) {
	s := startStack(t)
	s.srv.HandleAPI("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("root " + r.URL.Path)) }))
	tok := s.token(t, "a@x")
	if r := do(t, "GET", s.url+"/api/v1/any/path", "Bearer "+tok); r.code != 200 || r.body != "root /api/v1/any/path" {
		t.Fatalf("root handler: %d %q", r.code, r.body)
	}
	if r := do(t, "GET", s.url+"/api/v1/any/path", ""); r.code != 401 {
		t.Fatalf("root handler without token: %d", r.code)
	}
}

func TestNoVerifierFailsClosed(t *testing.T) {
	srv := admin.New(admin.Options{})
	srv.HandleAPI("GET /x", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler reached") }))
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	if r := do(t, "GET", ts.URL+"/api/v1/x", "Bearer a.b.c"); r.code != 503 {
		t.Fatalf("no verifier: %d", r.code)
	}
	if r := do(t, "GET", ts.URL+"/readyz", ""); r.code != 200 {
		t.Fatalf("readyz without checks: %d", r.code)
	}
}

func TestServeStopsOnContextAndLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := startStack(t)
	if r := do(t, "GET", s.url+"/api/v1/x", "Bearer "+s.token(t, "a@x")); r.code != 404 {
		t.Fatalf("warm-up: %d", r.code)
	}
	s.stop()
	s.stop = nil
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Fatal("server still answers after its context ended")
	}
}

func TestListenAndServeBadAddress(t *testing.T) {
	srv := admin.New(admin.Options{Listen: "127.0.0.1:notaport"})
	if err := srv.ListenAndServe(context.Background()); err == nil {
		t.Fatal("ListenAndServe on a bad address succeeded")
	}
}

func TestReadyzProfiles(t *testing.T) {
	s := startStack(t)
	var kbDown atomic.Bool
	s.srv.AddProfileCheck("kb", "upstream", func(context.Context) error {
		if kbDown.Load() {
			return errors.New("upstream PostgreSQL unreachable")
		}
		return nil
	})
	s.srv.AddProfileCheck("support", "upstream", func(context.Context) error { return nil })
	r := do(t, "GET", s.url+"/readyz", "")
	if r.code != 200 || r.json["status"] != "ok" {
		t.Fatalf("all profiles up: %d %s", r.code, r.body)
	}
	kbDown.Store(true)
	r = do(t, "GET", s.url+"/readyz", "")
	ps, _ := r.json["profiles"].(map[string]any)
	kb, _ := ps["kb"].(map[string]any)
	sup, _ := ps["support"].(map[string]any)
	checks, _ := r.json["checks"].(map[string]any)
	if r.code != 200 || r.json["status"] != "degraded" || kb["status"] != "unavailable" || sup["status"] != "ok" || checks["upstream"] != nil {
		t.Fatalf("one profile down: %d %s", r.code, r.body)
	}
	s.srv.AddProfileCheck("support", "upstream", func(context.Context) error { return errors.New("down too") })
	if r := do(t, "GET", s.url+"/readyz", ""); r.code != 503 || r.json["status"] != "unavailable" {
		t.Fatalf("every profile down: %d %s", r.code, r.body)
	}
}

func TestReadyzSingleProfileFlat(t *testing.T) {
	s := startStack(t)
	s.srv.AddProfileCheck("default", "credentials", func(context.Context) error { return errors.New("vault is sealed") })
	r := do(t, "GET", s.url+"/readyz", "")
	checks, _ := r.json["checks"].(map[string]any)
	if r.code != 503 || checks["credentials"] != "vault is sealed" || checks["issuer"] != "ok" {
		t.Fatalf("single profile down: %d %s", r.code, r.body)
	}
}

package admin

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/httpjson"
)

// APIPrefix is where HandleAPI routes are mounted.
const APIPrefix = "/api/v1"

// Limits and timeouts of the admin listener.
const (
	maxHeaderBytes   = 64 << 10
	maxAPIBodyBytes  = 1 << 20
	defaultReadyWait = 3 * time.Second
)

// Options configures a Server.
type Options struct {
	Listen   string            // host:port for ListenAndServe (admin.listen)
	Verifier identity.Verifier // verifies API bearer tokens; nil: every API route answers 503
	Registry *prometheus.Registry
	Logger   zerolog.Logger
	// ReadyTimeout bounds each ready check (default 3s).
	ReadyTimeout time.Duration
}

// Server is the admin HTTP server.
type Server struct {
	opts Options
	mux  *http.ServeMux
	srv  *http.Server
	log  zerolog.Logger

	mu      sync.Mutex
	checks  map[string]func(context.Context) error
	pchecks map[string]map[string]func(context.Context) error // profile -> name -> check
	apiRoot http.Handler                                      // HandleAPI("/", h): everything under /api/v1/ no other route matches
	web     *webAuth                                          // EnableWebLogin; nil: bearer tokens only

	authFailures *prometheus.CounterVec
	requests     *prometheus.CounterVec
}

// New builds a server with /healthz, /readyz and /metrics. When Verifier
// is set, an "issuer" ready check (Verifier.Check) is added; adding a check
// with the same name replaces it.
func New(opts Options) *Server {
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = defaultReadyWait
	}
	s := &Server{
		opts:    opts,
		mux:     http.NewServeMux(),
		log:     opts.Logger,
		checks:  map[string]func(context.Context) error{},
		pchecks: map[string]map[string]func(context.Context) error{},
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_admin_auth_failures_total",
			Help: "Admin API requests refused by the bearer middleware, by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_admin_requests_total",
			Help: "Admin HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
	}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		opts.Registry.Register(c) // already registered by the glue: keep that one
	}
	s.authFailures = registerCounter(opts.Registry, s.authFailures)
	s.requests = registerCounter(opts.Registry, s.requests)
	if opts.Verifier != nil {
		s.checks["issuer"] = opts.Verifier.Check
	}

	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(opts.Registry,
		promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})))
	// Unknown API paths still need a token: no route probing without one.
	s.mux.Handle(APIPrefix+"/", s.bearer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.apiRoot
		s.mu.Unlock()
		if h == nil {
			writeError(w, http.StatusNotFound, "no such API route")
			return
		}
		h.ServeHTTP(w, r)
	})))

	s.srv = &http.Server{
		Handler:           s.instrument(s.mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(opts.Logger, "admin http: ", 0),
	}
	return s
}

// registerCounter registers c, or returns the equal collector already
// registered (two servers sharing one registry share their counters).
func registerCounter(reg *prometheus.Registry, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return ex
			}
		}
	}
	return c
}

// Handler returns the server's HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Handle registers a public route (no authentication), e.g. the dev
// issuer at "/dev-issuer/" or the UI at "/ui/". Patterns are Go 1.22
// ServeMux patterns.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleAPI registers h under /api/v1 behind the bearer middleware. The
// pattern is a ServeMux pattern relative to /api/v1, optionally with a
// method: HandleAPI("GET /approvals/{id}", h) serves GET
// /api/v1/approvals/{id}. A plain path without wildcards or trailing
// slash ("/approvals") serves that path and everything below it, so a
// package can pass its whole API sub-mux. h sees the full request path
// (nothing is stripped) and r.PathValue works for wildcards.
func (s *Server) HandleAPI(pattern string, h http.Handler) {
	method, path := "", pattern
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		method, path = pattern[:i+1], strings.TrimLeft(pattern[i+1:], " ")
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if method == "" && path == "/" {
		s.mu.Lock()
		s.apiRoot = h // the catch-all registered by New is already behind bearer
		s.mu.Unlock()
		return
	}
	wrapped := s.bearer(h)
	s.mux.Handle(method+APIPrefix+path, wrapped)
	if !strings.HasSuffix(path, "/") && !strings.Contains(path, "{") {
		s.mux.Handle(method+APIPrefix+path+"/", wrapped)
	}
}

// AddReadyCheck adds (or replaces) a named readiness check run by /readyz.
func (s *Server) AddReadyCheck(name string, fn func(ctx context.Context) error) {
	s.mu.Lock()
	s.checks[name] = fn
	s.mu.Unlock()
}

// AddProfileCheck adds (or replaces) a readiness check of one connection
// profile. /readyz reports each profile under "profiles"; a profile that
// fails makes the gateway "degraded" (still 200: the other profiles serve)
// and only every profile failing makes it unavailable (503). With a single
// profile its checks also appear under "checks" by their plain names.
func (s *Server) AddProfileCheck(profile, name string, fn func(ctx context.Context) error) {
	s.mu.Lock()
	if s.pchecks[profile] == nil {
		s.pchecks[profile] = map[string]func(context.Context) error{}
	}
	s.pchecks[profile][name] = fn
	s.mu.Unlock()
}

// Serve serves on ln until ctx ends (then shuts down gracefully, giving
// requests in flight up to 5s) or Shutdown is called. It returns nil after
// a clean shutdown and waits for the goroutine it started.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.srv.Shutdown(sctx); err != nil {
				s.srv.Close()
			}
		case <-done:
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("admin listener serving")
	err := s.srv.Serve(ln)
	close(done)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on Options.Listen and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Listen)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Shutdown stops accepting connections and waits (up to ctx) for requests
// in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	type named struct {
		profile, name string
		fn            func(context.Context) error
	}
	s.mu.Lock()
	var all []named
	for n, fn := range s.checks {
		all = append(all, named{"", n, fn})
	}
	for p, cs := range s.pchecks {
		for n, fn := range cs {
			all = append(all, named{p, n, fn})
		}
	}
	single := len(s.pchecks) == 1
	s.mu.Unlock()

	type result struct {
		named
		err error
	}
	results := make(chan result, len(all))
	for _, c := range all {
		go func(c named) {
			ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadyTimeout)
			defer cancel()
			results <- result{c, runCheck(ctx, c.fn)}
		}(c)
	}
	type profileReport struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	out := map[string]string{}
	profiles := map[string]*profileReport{}
	ok := true
	for range all {
		res := <-results // every check goroutine sends exactly once
		v := "ok"
		if res.err != nil {
			v = truncate(res.err.Error(), 300)
			s.log.Warn().Str("check", res.name).Str("profile", res.profile).Err(res.err).Msg("ready check failed")
		}
		if res.profile == "" {
			if res.err != nil {
				ok = false
			}
			out[res.name] = v
			continue
		}
		pr := profiles[res.profile]
		if pr == nil {
			pr = &profileReport{Status: "ok", Checks: map[string]string{}}
			profiles[res.profile] = pr
		}
		pr.Checks[res.name] = v
		if res.err != nil {
			pr.Status = "unavailable"
		}
		if single {
			out[res.name] = v
		}
	}
	down := 0
	for _, pr := range profiles {
		if pr.Status != "ok" {
			down++
		}
	}
	status, code := "ok", http.StatusOK
	switch {
	case !ok || len(profiles) > 0 && down == len(profiles):
		status, code = "unavailable", http.StatusServiceUnavailable
	case down > 0:
		status = "degraded"
	}
	body := map[string]any{"status": status, "checks": out}
	if len(profiles) > 0 {
		body["profiles"] = profiles
	}
	httpjson.Compact(w, code, body)
}

// runCheck runs fn but returns when ctx expires even if fn ignores ctx
// (fn's goroutine then finishes on its own; its result is discarded).
func runCheck(ctx context.Context, fn func(context.Context) error) (err error) {
	ch := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- errors.New("check panicked")
			}
		}()
		ch <- fn(ctx)
	}()
	select {
	case err = <-ch:
		return err
	case <-ctx.Done():
		return errors.New("timed out")
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// bearer is the API authentication middleware.
func (s *Server) bearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Verifier == nil {
			s.authFailures.WithLabelValues("not_configured").Inc()
			writeError(w, http.StatusServiceUnavailable, "authentication is not configured")
			return
		}
		token, ok := BearerToken(r)
		s.mu.Lock()
		web := s.web
		s.mu.Unlock()
		if !ok && web != nil && len(r.Header.Values("Authorization")) == 0 {
			// A signed-in browser: its session cookie, and for anything
			// but a read the CSRF token the page got from /ui/session.
			if _, ws := web.lookup(r); ws != nil {
				if r.Method != http.MethodGet && r.Method != http.MethodHead && !checkCSRF(r, ws) {
					s.authFailures.WithLabelValues("csrf").Inc()
					writeError(w, http.StatusForbidden, "missing or wrong CSRF token ("+csrfHeader+")")
					return
				}
				r.Body = http.MaxBytesReader(w, r.Body, maxAPIBodyBytes)
				w.Header().Set("Cache-Control", "no-store")
				next.ServeHTTP(w, r.WithContext(identity.WithPrincipal(r.Context(), ws.principal)))
				return
			}
		}
		if !ok {
			s.authFailures.WithLabelValues(string(identity.ReasonMissing)).Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden"`)
			writeError(w, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer <token>)")
			return
		}
		p, err := s.opts.Verifier.Verify(r.Context(), token, "")
		if err != nil {
			reason, short := identity.Reason("error"), "invalid token"
			if ref, ok := identity.AsRefusal(err); ok {
				reason, short = ref.Reason, ref.Short()
			}
			s.authFailures.WithLabelValues(string(reason)).Inc()
			s.log.Info().Str("reason", string(reason)).Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Err(err).Msg("admin API token refused")
			if reason == identity.ReasonUnavailable {
				w.Header().Set("Retry-After", "5")
				writeError(w, http.StatusServiceUnavailable, short)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden", error="invalid_token", error_description="`+short+`"`)
			writeError(w, http.StatusUnauthorized, short)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxAPIBodyBytes)
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r.WithContext(identity.WithPrincipal(r.Context(), p)))
	})
}

// BearerToken extracts the token of a single "Authorization: Bearer" header
// (the MCP endpoint authenticates the same way).
func BearerToken(r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// instrument counts requests by route pattern (bounded cardinality) and
// sets headers every response gets.
func (s *Server) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush etc. of the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeError(w http.ResponseWriter, code int, msg string) {
	httpjson.Compact(w, code, map[string]string{"error": msg})
}

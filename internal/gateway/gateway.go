// Package gateway assembles a running pgwarden from its configuration: the
// Postgres listener (pgwire) with identity verification and credential
// minting, and, per session, the hooks that join policy (sqlpolicy),
// approvals, masking and recording (sessions) to the relay; plus the admin
// HTTP listener with health, metrics and the approvals/sessions APIs.
//
// It owns the protocol tracking that ties a server response to the client
// request it answers (track.go). It never parses wire bytes itself (pgwire
// does) and never decides policy itself (sqlpolicy does).
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/pgwarden/pgwarden/internal/analysis"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/boltstore"
	"github.com/pgwarden/pgwarden/approvals/pgstore"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/identity/gwtoken"
	"github.com/pgwarden/pgwarden/mcp"
	"github.com/pgwarden/pgwarden/pgwire"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

// Options are what the caller (the CLI) supplies beyond the config.
type Options struct {
	Log zerolog.Logger
	// Public handlers mounted on the admin listener (e.g. the development issuer).
	PublicHandlers map[string]http.Handler
	// Verifier overrides the OIDC verifier built from auth.oidc (tests).
	Verifier identity.Verifier
	// IssuerServedHere: the OIDC issuer is one of PublicHandlers (pgwarden dev).
	IssuerServedHere bool
	// Version is the binary's version (the MCP server reports it).
	Version string
}

// Gateway is a configured, not yet listening pgwarden.
type Gateway struct {
	cfg *config.Config
	log zerolog.Logger
	reg *prometheus.Registry

	verifier   identity.Verifier
	classifier *sqlpolicy.Classifier
	profiles   map[string]*profile // by name: upstream, credentials, policy, masking of each
	recorder   *sessions.Recorder
	store      *sessions.Store
	approvals  *approvals.Manager
	apStore    approvals.Store
	shared     *sharedstore.Store // store.dsn, nil for the file store
	routes     cancelRoutes       // armed in Serve with the shared store

	wire     *pgwire.Server
	wireAddr atomic.Value // string: the Postgres listener's address, once serving
	admin    *admin.Server
	mcp      *mcp.Server    // mcp.enabled; nil otherwise
	origins  pgwire.Origins // the MCP sessions' agents, by their loopback connections

	liveMu sync.Mutex
	live   map[string]*hooks // session id -> hooks, for approval events decided elsewhere

	closeOnce sync.Once
}

// New builds every component from cfg. On error, whatever was built is closed.
func New(ctx context.Context, cfg *config.Config, opt Options) (g *Gateway, err error) {
	g = &Gateway{cfg: cfg, log: opt.Log, reg: prometheus.NewRegistry(), live: map[string]*hooks{}}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if opt.Verifier != nil {
		g.verifier = opt.Verifier
	} else {
		dctx := ctx
		if opt.IssuerServedHere {
			// The issuer is served by our own admin listener, which is not up
			// yet: skip the first discovery; it happens on first use.
			c, cancel := context.WithCancel(ctx)
			cancel()
			dctx = c
		}
		v, err := identity.NewOIDC(dctx, cfg.Auth.OIDC, identity.WithLogger(g.log))
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		g.verifier = v
	}
	var tokens *gwtoken.Issuer
	if cfg.Auth.SAML.Configured() {
		// After a SAML sign-in pgwarden issues its own token; the listener
		// and the API accept it next to the IdP's (routed by "iss").
		if tokens, err = newTokenIssuer(cfg); err != nil {
			return nil, fmt.Errorf("gateway tokens: %w", err)
		}
		g.verifier = identity.Multi(map[string]identity.Verifier{tokens.IssuerURL(): tokens.Verifier()}, g.verifier)
	}
	g.classifier = sqlpolicy.NewClassifier(4096)
	g.profiles = map[string]*profile{}
	var targets []pgwire.Target
	for _, pc := range cfg.Profiles() {
		p, err := newProfile(ctx, pc, g.log)
		if err != nil {
			return nil, err
		}
		g.profiles[p.name] = p
		targets = append(targets, p.target())
	}
	if cfg.Store.DSN != "" {
		// The shared store: approvals and session events of every gateway.
		gw := cfg.Cluster.ID()
		if g.shared, err = sharedstore.Open(ctx, cfg.Store.DSN, "pgwarden "+gw, cfg.Store.Migrate == "auto"); err != nil {
			return nil, fmt.Errorf("shared store %s: %w", sharedstore.Redact(cfg.Store.DSN), err)
		}
		if g.recorder, err = sessions.OpenShared(cfg.Recording, g.shared, gw, g.log, g.reg); err != nil {
			return nil, fmt.Errorf("recording: %w", err)
		}
		g.store = sessions.OpenSharedStore(g.shared)
		if g.apStore, err = pgstore.Open(ctx, g.shared, gw, g.log); err != nil {
			return nil, fmt.Errorf("approvals store: %w", err)
		}
	} else {
		if g.recorder, err = sessions.Open(cfg.Recording, cfg.Store, g.log, g.reg); err != nil {
			return nil, fmt.Errorf("recording: %w", err)
		}
		if g.store, err = sessions.OpenStore(cfg.Store.Dir); err != nil {
			return nil, fmt.Errorf("recording store: %w", err)
		}
		if g.apStore, err = boltstore.Open(cfg.Store.Dir); err != nil {
			return nil, fmt.Errorf("approvals store: %w", err)
		}
	}
	apOpts := []approvals.Option{approvals.WithObserver(g.observeApproval)}
	for _, pc := range cfg.Profiles() {
		apOpts = append(apOpts, approvals.WithProfileRules(pc.Name, pc.Policy.Approval))
	}
	g.approvals = approvals.New(cfg.Policy.Approval, g.apStore, g.log, apOpts...)

	tlsCfg, err := tlsConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	g.wire, err = pgwire.NewServer(pgwire.Config{
		Listen:          cfg.Listen,
		TLS:             tlsCfg,
		RequireTLS:      cfg.TLS.Require,
		Targets:         targets,
		MaxConnections:  cfg.Limits.MaxConnections,
		MaxMessageBytes: cfg.Limits.MaxMessageBytes,
		StartupTimeout:  cfg.Limits.StartupTimeout,
		Verifier:        g.verifier,
		StartupParam:    sqlpolicy.StartupParam,
		Hooks:           g.newHooks,
		CancelRoutes:    g.cancelRoutes(),
		Origins:         &g.origins,
		Logger:          g.log,
		Registerer:      g.reg,
	})
	if err != nil {
		return nil, err
	}

	g.admin = admin.New(admin.Options{Listen: cfg.Admin.Listen, Verifier: g.verifier, Registry: g.reg, Logger: g.log})
	if tokens != nil {
		s := cfg.Auth.SAML
		hc, err := identity.NewHTTPClient(cfg.Auth.OIDC.CAFile)
		if err != nil {
			return nil, err
		}
		g.admin.Handle("/.well-known/jwks.json", tokens.JWKSHandler())
		if err := g.admin.EnableSAML(admin.SAMLOptions{
			EntityID: s.EntityID, MetadataURL: s.IDPMetadataURL, MetadataFile: s.IDPMetadataFile,
			UsernameAttr: s.UsernameAttribute, GroupsAttr: s.GroupsAttribute,
			CertFile: s.CertFile, KeyFile: s.KeyFile, PublicURL: cfg.Admin.BrowserURL(),
			HTTPClient: hc, Tokens: tokens,
		}); err != nil {
			return nil, fmt.Errorf("saml: %w", err)
		}
	}
	if o := cfg.Auth.OIDC; o.ClientID != "" {
		hc, err := identity.NewHTTPClient(o.CAFile)
		if err != nil {
			return nil, err
		}
		if err := g.admin.EnableWebLogin(admin.WebLogin{
			Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Audience: o.Audience,
			PublicURL: cfg.Admin.BrowserURL(), HTTPClient: hc,
		}); err != nil {
			return nil, err
		}
	}
	for pattern, h := range opt.PublicHandlers {
		g.admin.Handle(pattern, h)
	}
	g.admin.HandleAPI("/approvals", g.approvals.APIHandler())
	g.admin.HandleAPI("/sessions", g.store.APIHandler())
	g.admin.HandleAPI("GET /sessions/verify", g.verifyHandler())
	g.admin.HandleAPI("/live", g.liveAPI()) // live.go: open sessions, end session
	g.admin.Handle("/ui/", approvals.UIHandler())
	if cfg.MCP.Enabled {
		g.enableMCP(tlsCfg, opt.Version) // mcp.go: /mcp, through the Postgres listener
	}
	g.admin.AddReadyCheck("issuer", g.verifier.Check)
	// One check per profile and part: a profile whose server is down is
	// reported by name and does not stop the others' sessions (pgwire
	// routes each session to its own profile's server).
	for _, name := range sortedKeys(g.profiles) {
		p := g.profiles[name]
		g.admin.AddProfileCheck(name, "credentials", p.provider.Check)
		g.admin.AddProfileCheck(name, "upstream", p.checkUpstream)
	}
	g.admin.AddReadyCheck("recording", func(context.Context) error { return g.recorder.Healthy() })
	if g.shared != nil {
		g.admin.AddReadyCheck("store", g.shared.Check)
	}
	return g, nil
}

// cancelRoutes is what pgwire gets: nil without a shared store.
func (g *Gateway) cancelRoutes() pgwire.CancelRoutes {
	if g.shared == nil {
		return nil
	}
	return &g.routes
}

func newProvider(ctx context.Context, c config.Credentials, log zerolog.Logger) (credentials.Provider, error) {
	switch c.Provider {
	case "native":
		return credentials.NewNative(ctx, c.Native, c.TTL, log)
	case "vault":
		return credentials.NewVault(ctx, c.Vault, log)
	case "static":
		return credentials.NewStatic(c.Static, log), nil
	}
	return nil, fmt.Errorf("unknown provider %q", c.Provider)
}

// newTokenIssuer opens the signer of gateway-issued tokens (issuer
// admin.public_url, the IdP's audience and claim names).
func newTokenIssuer(cfg *config.Config) (*gwtoken.Issuer, error) {
	key := cfg.Auth.GatewayTokens.KeyFile
	if key == "" {
		if err := os.MkdirAll(cfg.Store.Dir, 0o700); err != nil {
			return nil, err
		}
		key = filepath.Join(cfg.Store.Dir, "gateway-token.key")
	}
	o := cfg.Auth.OIDC
	return gwtoken.Open(gwtoken.Options{
		Issuer: cfg.Admin.BrowserURL(), Audience: o.Audience, UsernameClaim: o.UsernameClaim, GroupsClaim: o.GroupsClaim,
		TTL: cfg.Auth.GatewayTokens.TTL, KeyFile: key,
	})
}

func tlsConfig(c config.TLS) (*tls.Config, error) {
	switch {
	case c.CertFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, &config.Error{Path: "tls.cert_file", Msg: err.Error()}
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
	case c.SelfSigned:
		return pgwire.SelfSignedTLS("localhost", "127.0.0.1")
	}
	return nil, nil
}

// observeApproval writes approval state changes into the requesting
// session's record (decisions happen on another goroutine, often in
// another session's absence).
func (g *Gateway) observeApproval(ev approvals.Event) {
	a := ev.Approval
	// The approvals manager logs every change itself. "executed" is recorded
	// by the session that ran the statement, once it completed (in retry mode
	// that is not the session that held it).
	if a == nil || ev.Type == "executed" {
		return
	}
	g.liveMu.Lock()
	h := g.live[a.Session]
	g.liveMu.Unlock()
	if h == nil {
		return
	}
	state := ev.Type
	if state == "hold" {
		state = "pending"
	}
	h.recordApproval(sessions.ApprovalEvent{ID: a.ID, State: state, SQL: a.SQL, Actions: []string{a.Action}, DecidedBy: a.DecidedBy, DecidedByActor: a.DecidedByActor, Reason: a.Comment})
}

// Run listens on the configured addresses until ctx is cancelled.
func (g *Gateway) Run(ctx context.Context) error {
	wl, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", g.cfg.Listen, err)
	}
	var al net.Listener
	if g.cfg.Admin.Listen != "" {
		if al, err = net.Listen("tcp", g.cfg.Admin.Listen); err != nil {
			wl.Close()
			return fmt.Errorf("admin listen %s: %w", g.cfg.Admin.Listen, err)
		}
	}
	return g.Serve(ctx, wl, al)
}

// Serve serves on the given listeners (al may be nil) until ctx is cancelled.
func (g *Gateway) Serve(ctx context.Context, wl, al net.Listener) error {
	cctx, stopCluster := context.WithCancel(ctx)
	clusterDone, err := g.joinCluster(cctx, wl)
	defer func() { stopCluster(); <-clusterDone }()
	if err != nil {
		return fmt.Errorf("joining the gateways of the shared store: %w", err)
	}
	g.wireAddr.Store(wl.Addr().String())
	errc := make(chan error, 2)
	n := 1
	go func() { errc <- g.wire.Serve(ctx, wl) }()
	if al != nil {
		n++
		go func() { errc <- g.admin.Serve(ctx, al) }()
	}
	g.log.Info().Str("listen", wl.Addr().String()).Msg("pgwarden serving")
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		n--
	}
	if g.mcp != nil {
		g.mcp.Close() // its calls end and its gateway sessions close before the listener waits for them
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = g.wire.Shutdown(sctx)
	if al != nil {
		_ = g.admin.Shutdown(sctx)
	}
	for ; n > 0; n-- {
		if err := <-errc; err != nil && first == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, pgwire.ErrServerClosed) {
			first = err
		}
	}
	g.Close()
	return first
}

// Close releases stores and pools. Safe to call more than once.
func (g *Gateway) Close() {
	g.closeOnce.Do(func() {
		if g.mcp != nil {
			g.mcp.Close()
		}
		if g.approvals != nil {
			g.approvals.Close()
		}
		if g.apStore != nil {
			_ = g.apStore.Close()
		}
		if g.shared != nil && g.routes.r.Load() != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := g.shared.Leave(ctx, g.cfg.Cluster.ID()); err != nil {
				g.log.Warn().Err(err).Msg("recording this gateway's stop in the shared store failed")
			}
			cancel()
		}
		if g.recorder != nil {
			_ = g.recorder.Close()
		}
		if g.shared != nil {
			g.shared.Close()
		}
		for _, p := range g.profiles {
			p.close()
		}
	})
}

// newFunctionCatalog translates policy.functions into the analysis
// package's options. It reads pg_proc through the catalog connection
// (masking.catalog_dsn, else the native provider's admin_dsn); without
// one, statements are classified with the built-in PostgreSQL 15 +
// pgvector snapshot and every user-defined function is unknown (admin).
func newFunctionCatalog(fc config.Functions, dsn string, log zerolog.Logger) (*analysis.Catalog, error) {
	opt := analysis.CatalogOptions{
		Functions: analysis.Options{Allow: fc.Allow, VolatileAction: fc.VolatileAction},
		MaxAge:    fc.CatalogMaxAge,
		Timeout:   fc.CatalogTimeout,
		OnError: func(db string, err error) {
			log.Warn().Str("database", db).Err(err).Msg("function catalog (pg_proc) could not be loaded: user-defined functions are refused until it can")
		},
	}
	if dsn == "" {
		return analysis.NewCatalog(nil, opt, "no catalog connection is configured (masking.catalog_dsn)"), nil
	}
	load, err := analysis.DSNLoader(dsn)
	if err != nil {
		return nil, fmt.Errorf("policy.functions: %w", err)
	}
	return analysis.NewCatalog(load, opt, ""), nil
}

package pgwire

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Upstream is the PostgreSQL server pgwarden connects to.
type Upstream struct {
	Host           string
	Port           int
	SSLMode        string        // disable | prefer | require | verify-full ("" = prefer)
	ConnectTimeout time.Duration // 0 = 5s
}

// Target is one connection profile: the databases routed to it, the
// server they live on and how a session's credential for it is minted.
type Target struct {
	Name      string   // the profile's name (SessionInfo.Profile, metrics label)
	Databases []string // startup database names routed here; empty: any database no other target names
	Upstream  Upstream
	Provider  credentials.Provider
	// DBRoles maps the principal's groups to the database roles its
	// credential gets (deduplicated, sorted by the caller). nil: none.
	DBRoles func(groups []string) []string
}

// Config configures a Server. Verifier and Targets are required.
type Config struct {
	Listen     string      // informational (Serve takes the listener)
	TLS        *tls.Config // nil: SSLRequest is answered 'N'
	RequireTLS bool        // refuse (28000) clients that did not negotiate TLS, before asking for a password
	// Targets are the connection profiles; the startup database picks one
	// (none: FATAL 28000 after the token is verified, naming no other
	// database).
	Targets         []Target
	MaxConnections  int // concurrent sessions; 0 = 1000
	MaxMessageBytes int // largest client message (and decoded server message); 0 = 64 MiB
	StartupTimeout  time.Duration
	Verifier        identity.Verifier
	// StartupParam decides each startup parameter passed upstream (all
	// but user, database, options, replication, role,
	// session_authorization and _pq_.*; name as the client sent it):
	// !ok refuses the connection with FATAL 42501 and reason, before the
	// token is asked for. Settings that change how the server lexes SQL
	// (internal/parsesafe) are refused whatever it says. nil: no more.
	StartupParam func(name, value string) (reason string, ok bool)
	// Hooks creates each session's hooks; nil relays plainly.
	Hooks HookFactory
	// CancelRoutes shares cancel keys with the other gateways of a shared
	// store; nil: a CancelRequest cancels only sessions of this server.
	CancelRoutes CancelRoutes
	// Origins attributes this process's own connections to the listener
	// (MCP sessions) to their agents' addresses; nil: none.
	Origins    *Origins
	Logger     zerolog.Logger
	Registerer prometheus.Registerer // nil: metrics are kept but not registered
}

// Server is the PostgreSQL wire-protocol listener: it accepts clients,
// runs each connection's handshake and relay on its own goroutines and
// ends them all on Shutdown.
type Server struct {
	cfg     Config
	targets router
	log     zerolog.Logger
	m       *metrics
	cancels cancelRegistry

	baseCtx    context.Context
	baseCancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // connections still in the startup phase
	sessions  map[*session]struct{}
	nSessions int
	nConns    int
	closing   bool
	wg        sync.WaitGroup
}

// NewServer validates cfg, fills in defaults and registers the metrics.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("pgwire: Config.Verifier is required")
	}
	targets, err := newRouter(cfg.Targets)
	if err != nil {
		return nil, err
	}
	if cfg.RequireTLS && cfg.TLS == nil {
		return nil, errors.New("pgwire: RequireTLS without a TLS config")
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 1000
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.StartupTimeout <= 0 {
		cfg.StartupTimeout = 10 * time.Second
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, targets: targets, log: cfg.Logger.With().Str("component", "pgwire").Logger(), m: m,
		cancels: cancelRegistry{m: map[uint32]*session{}, routes: cfg.CancelRoutes, log: cfg.Logger},
		baseCtx: ctx, baseCancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}, sessions: map[*session]struct{}{},
	}, nil
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pgwire: server closed")

// Serve accepts connections on l until l fails, ctx is cancelled (the
// listener is closed; sessions keep running until Shutdown) or Shutdown
// is called. Each connection runs on its own goroutines.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer func() {
		stop()
		l.Close()
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		s.wg.Done()
	}()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return err
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			continue
		}
		go s.handleConn(c)
	}
}

// track registers a new startup-phase connection (false when closing or
// when far more connections are open than sessions are allowed).
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Handshaking connections are bounded too (each has a deadline), so a
	// flood of silent connections cannot exhaust file descriptors; cancel
	// requests still get through at max sessions thanks to the slack.
	if s.closing || s.nConns >= 2*s.cfg.MaxConnections+64 {
		return false
	}
	s.nConns++
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.m.conns.Inc()
	s.m.connsTotal.Inc()
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	s.nConns--
	delete(s.conns, c)
	s.mu.Unlock()
	s.m.conns.Dec()
	s.wg.Done()
}

// startupDone moves a connection from the startup phase to a session.
func (s *Server) startupDone(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// admit reserves a session slot (53300 when full).
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nSessions >= s.cfg.MaxConnections {
		return false
	}
	s.nSessions++
	return true
}

func (s *Server) release() {
	s.mu.Lock()
	s.nSessions--
	s.mu.Unlock()
}

// addSession registers a running session (false: the server is closing).
func (s *Server) addSession(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions[ss] = struct{}{}
	return true
}

func (s *Server) removeSession(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
}

var errShutdown = pgerr.Fatal(pgerr.AdminShutdown, "gateway shutting down")

// Shutdown stops accepting, ends every session with FATAL 57P01
// "pgwarden: gateway shutting down", aborts connections still in their
// handshake and waits for every goroutine (or ctx).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		_ = c.SetDeadline(time.Now())
	}
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.end(reasonShutdown, errShutdown, nil)
	}
	s.baseCancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ActiveSessions reports the number of authenticated sessions.
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

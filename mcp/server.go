package mcp

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Options configure a Server.
type Options struct {
	// ConnConfig returns the connection settings of the gateway's Postgres
	// listener for database: host, port, TLS. The server fills in the user,
	// the token as password and the application_name.
	ConnConfig func(database string) (*pgx.ConnConfig, error)
	// Attribute, when set, is given each connection the server dials with
	// the caller's Remote address and returns the connection to use: the
	// gateway then records the agent's address as the session's
	// client_addr instead of its own loopback (pgwire.Origins).
	Attribute func(c net.Conn, origin string) net.Conn
	MaxRows   int // rows a result returns at most
	MaxBytes  int // bytes of row JSON a result carries at most
	Limits    Limits
	Version   string
	Log       zerolog.Logger
	// Now is the limiter's clock (tests); default time.Now.
	Now func() time.Time
	// Registerer, when set, gets pgwarden_mcp_calls_total.
	Registerer prometheus.Registerer
}

// Caller is who an MCP session acts for and how it logs in to the gateway.
type Caller struct {
	User string // the startup user: the token's username claim
	// Actor is the agent acting for User (a token's RFC 8693 "act"), "" if none.
	Actor string
	// Database is the database the session opens.
	Database string
	// Token returns the token to present as the password: the current
	// request's (HTTP) or a fresh one from the login cache (stdio).
	Token func(ctx context.Context) (string, error)
	// Remote is where the MCP client connected from (HTTP): logged, and the
	// client_addr of the session's record (Options.Attribute).
	Remote string
}

// key is the identity limits count against.
func (c Caller) key() string {
	if c.Actor == "" {
		return c.User
	}
	return c.User + "\x00" + c.Actor
}

// Server is pgwarden's MCP server: the tools, the sessions they run in and
// the per-identity limits. One Server serves every HTTP session of the
// gateway, or the one stdio session of `pgwarden mcp`.
type Server struct {
	opts    Options
	sdk     *sdk.Server
	limiter *limiter
	log     zerolog.Logger
	calls   *prometheus.CounterVec // by tool and SQLSTATE (00000: success)

	// base ends with Close: calls in flight (a statement waiting for an
	// approval) are cancelled so that their sessions can close.
	base context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	sessions map[*sdk.ServerSession]*session
	stdio    *Caller // ServeStdio's caller; nil for HTTP (each request carries its own)
	closed   bool
	wg       sync.WaitGroup // one watcher per session (ends with it)
}

// supportedVersions are the MCP protocol versions served: those with the
// initialize handshake, so that an MCP session (and with it the gateway
// session, its recording and its transaction) spans many calls. A client
// of the sessionless 2026-07-28 revision falls back to initialize.
var supportedVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26"}

// New builds a Server.
func New(opts Options) *Server {
	s := &Server{opts: opts, log: opts.Log, limiter: newLimiter(opts.Limits, opts.Now), sessions: map[*sdk.ServerSession]*session{}}
	s.base, s.stop = context.WithCancel(context.Background())
	s.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgwarden_mcp_calls_total",
		Help: "MCP tool calls by tool and outcome SQLSTATE (00000: success).",
	}, []string{"tool", "sqlstate"})
	if opts.Registerer != nil {
		_ = opts.Registerer.Register(s.calls) // a second Server on one registry counts unregistered
	}
	s.sdk = sdk.NewServer(&sdk.Implementation{Name: "pgwarden", Title: "pgwarden: PostgreSQL + pgvector through a zero-trust gateway", Version: opts.Version},
		&sdk.ServerOptions{
			Instructions:              instructions,
			SupportedProtocolVersions: supportedVersions,
			Capabilities:              &sdk.ServerCapabilities{Tools: &sdk.ToolCapabilities{}},
		})
	s.addTools()
	return s
}

const instructions = `Tools for a PostgreSQL database with pgvector, reached through pgwarden, a gateway that acts as you: ` +
	`every statement is checked against your groups' policy, dangerous ones wait for a second person's approval, ` +
	`personal data in results is masked, and everything is recorded. Start with list_tables and describe_table; ` +
	`use similarity_search for nearest neighbours of a vector or of a row, query for SQL. ` +
	`A refusal is a tool error carrying the SQLSTATE and pgwarden's message: do not try to get around it.`

// Close ends every session (their gateway connections close) and waits
// for them. Later calls are refused.
func (s *Server) Close() {
	s.stop()
	s.mu.Lock()
	s.closed = true
	open := make([]*sdk.ServerSession, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	for _, ss := range open {
		_ = ss.Close()
	}
	s.wg.Wait()
}

// session is one MCP session's state: its caller and its connection
// through the gateway, opened on the first call that needs it. Calls of
// one session run one at a time (a pgx.Conn is not for concurrent use).
type session struct {
	srv    *Server
	caller Caller // who the session acts for (its Token is superseded by token)
	client string // MCP client name from initialize
	turn   chan struct{}
	// token is the newest request's token source (HTTP requests of a
	// session arrive on their own goroutines).
	token atomic.Pointer[func(context.Context) (string, error)]

	// with turn held
	conn    *pgx.Conn
	notices []*pgconn.Notice // received during the current call
	// progress, when the current call asked for progress notifications,
	// passes pgwarden's notices on as they arrive (a wait-mode hold:
	// "statement held for approval ..."), so the agent's client knows the
	// call waits for a person rather than hangs.
	progress func(msg string)
}

// onNotice runs on the call's goroutine while pgx reads the answer.
func (se *session) onNotice(n *pgconn.Notice) {
	se.notices = append(se.notices, n)
	if _, mask := parseMaskNotice(n); !mask && se.progress != nil && strings.HasPrefix(n.Message, pgerr.Prefix) {
		se.progress(n.Message)
	}
}

// sessionFor returns the state of req's session, creating it with caller.
func (s *Server) sessionFor(req *sdk.CallToolRequest, caller Caller) (*session, error) {
	ss := req.Session
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, pgerr.New(pgerr.AdminShutdown, "pgwarden: the MCP server is shutting down")
	}
	if se := s.sessions[ss]; se != nil {
		if se.caller.key() != caller.key() {
			return nil, pgerr.New(pgerr.InvalidAuthorization, "pgwarden: this MCP session belongs to another identity")
		}
		se.token.Store(&caller.Token)
		return se, nil
	}
	client := "client"
	if ip := ss.InitializeParams(); ip != nil && ip.ClientInfo != nil && ip.ClientInfo.Name != "" {
		client = ip.ClientInfo.Name
	}
	se := &session{srv: s, caller: caller, client: client, turn: make(chan struct{}, 1)}
	se.token.Store(&caller.Token)
	s.sessions[ss] = se
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = ss.Wait()
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
		se.close()
	}()
	return se, nil
}

// acquire takes the session's turn (ctx bounds the wait); release gives it back.
func (se *session) acquire(ctx context.Context) error {
	select {
	case se.turn <- struct{}{}:
		se.notices = se.notices[:0]
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (se *session) release() {
	se.progress = nil
	<-se.turn
}

// close closes the gateway connection (the gateway then ends its session,
// revokes its credential and closes its record).
func (se *session) close() {
	se.turn <- struct{}{}
	defer se.release()
	if se.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = se.conn.Close(ctx)
		cancel()
		se.conn = nil
	}
}

// applicationName is "mcp:" and the client's name, printable ASCII,
// within PostgreSQL's 63 bytes.
func applicationName(client string) string {
	b := []byte(ApplicationPrefix)
	for i := 0; i < len(client) && len(b) < maxIdentBytes; i++ {
		c := client[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}

// connect returns the session's connection through the gateway, opening it
// if there is none (or the last one broke). Called with the turn held.
func (se *session) connect(ctx context.Context) (*pgx.Conn, error) {
	if se.conn != nil && !se.conn.IsClosed() {
		return se.conn, nil
	}
	se.conn = nil
	c := se.caller
	cc, err := se.srv.opts.ConnConfig(c.Database)
	if err != nil {
		return nil, err
	}
	tok, err := (*se.token.Load())(ctx)
	if err != nil {
		return nil, pgerr.New(pgerr.InvalidPassword, "pgwarden: no token to log in to the gateway with: %s", safeText(err.Error()))
	}
	cc.User, cc.Password, cc.Database = c.User, tok, c.Database
	cc.RuntimeParams["application_name"] = applicationName(se.client)
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { se.onNotice(n) }
	cc.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	if attr := se.srv.opts.Attribute; attr != nil && c.Remote != "" {
		dial := cc.DialFunc
		cc.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return attr(conn, c.Remote), nil
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cc)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, pe // the gateway's refusal (28P01, 28000, 08001, ...)
		}
		return nil, err
	}
	se.conn = conn
	ev := se.srv.log.Info().Str("user", c.User)
	if c.Actor != "" {
		ev = ev.Str("actor", c.Actor)
	}
	ev.Str("database", c.Database).Str("client", se.client).Str("remote", c.Remote).Msg("mcp session connected through the gateway")
	return conn, nil
}

// takeNotices returns the call's notices and the masking notice's
// information for the last result described.
func (se *session) takeNotices() (texts []string, mi maskInfo, haveMask bool) {
	for _, n := range se.notices {
		if m, ok := parseMaskNotice(n); ok {
			mi, haveMask = m, true
			continue
		}
		texts = append(texts, strings.TrimSpace(n.Message))
	}
	se.notices = se.notices[:0]
	return texts, mi, haveMask
}

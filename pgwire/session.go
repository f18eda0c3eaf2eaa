package pgwire

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/parsesafe"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Session end reasons (Hooks.Close and the sessions_ended metric).
const (
	reasonClientClosed     = "client_closed"
	reasonClientTerminated = "client_terminated"
	reasonUpstreamLost     = "upstream_lost"
	reasonTerminated       = "terminated"
	reasonShutdown         = "shutdown"
	reasonError            = "error"
)

// Buffer sizes: 8 KiB each way (larger buffers measured no faster in
// BenchmarkRelay; big messages stream through). An idle session holds
// 16 KiB of buffers: the two read buffers (write buffers are pooled while
// empty, see lazyWriter).
const (
	clientReadBuf  = 8 << 10
	clientWriteBuf = 8 << 10
	upReadBuf      = 8 << 10
	upWriteBuf     = 8 << 10
	maxTokenBytes  = 1 << 20
	revokeTimeout  = 10 * time.Second
	finalWriteWait = time.Second
)

// session is one authenticated client connection relayed to its own
// upstream connection.
type session struct {
	srv    *Server
	target *Target
	info   SessionInfo
	log    zerolog.Logger
	hooks  Hooks
	lease  credentials.Lease

	ctx    context.Context
	cancel context.CancelFunc

	client net.Conn
	cr     *bufio.Reader
	cf     *framer
	cwMu   sync.Mutex // guards cw: whole messages only
	cw     *lazyWriter

	up net.Conn
	ur *bufio.Reader
	uf *framer
	uw *lazyWriter // client goroutine (and side queries from OnClient) only

	keyPID    uint32
	keySecret [4]byte
	upPID     uint32
	upSecret  []byte

	hookMu     sync.Mutex
	inHook     bool
	hookCtx    context.Context
	hookCancel context.CancelCauseFunc

	dlMu     sync.Mutex // the client's read deadline: end() and WatchClient
	endOnce  sync.Once
	endMu    sync.Mutex
	endWhy   string
	endErr   *pgerr.Error // sent to the client as the last message
	endCause error

	wg sync.WaitGroup

	// relay state, see relay.go
	relaying     atomic.Bool
	inOnClient   bool   // client goroutine only
	pending      []byte // client messages of the current batch (hooks only)
	pendingOwed  int    // ReadyForQuery-producing messages in pending
	batchOpen    bool   // extended-protocol messages since the last Sync (incl. pending)
	marker       string // "pgwarden_refused_<hex>_"
	seq          uint64
	rfqSent      uint64 // ReadyForQuery-producing messages queued or sent (client goroutine)
	nRefusals    atomic.Int32
	side         atomic.Pointer[sideQuery]
	upstreamDead atomic.Bool // the upstream sent FATAL: no extra 08006
	// clientTerminated: the client sent Terminate (set before it is forwarded)
	clientTerminated atomic.Bool

	tr   *Tracker      // protocol state, shared between the relay goroutines (tracker.go)
	idle chan struct{} // cap 1: state changed (owed, copyIn)

	fmsgs frontendMsgs
	bmsgs backendMsgs
	wbuf  []byte // encode buffer for rewritten server messages

	// byte/message counters, pushed to Prometheus at flush time
	c2sBytes, c2sMsgs int
	s2cBytes, s2cMsgs int
}

// handleConn runs one client connection: startup, authentication,
// credential, upstream, then the relay; and cleans up on every path.
func (s *Server) handleConn(raw net.Conn) {
	defer s.untrack(raw)
	defer raw.Close()
	log := s.log.With().Str("client_addr", s.clientAddr(raw)).Logger()
	outcome := s.runConn(raw, log)
	if outcome != "" {
		s.m.ended.WithLabelValues(outcome).Inc()
	}
}

// hsFail sends a FATAL error during the handshake (before the buffered writer exists).
func hsFail(w io.Writer, e *pgerr.Error) {
	buf, err := e.Response().Encode(nil)
	if err == nil {
		_, _ = w.Write(buf)
	}
}

func (s *Server) runConn(raw net.Conn, log zerolog.Logger) (outcome string) {
	start := time.Now()
	deadline := start.Add(s.cfg.StartupTimeout)
	_ = raw.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(s.baseCtx, deadline)
	defer cancel()

	var conn net.Conn = raw
	isTLS, gssAnswered := false, false
	var pkt startupPacket
	for i := 0; ; i++ {
		if i >= 3 {
			hsFail(conn, pgerr.Fatal(pgerr.ProtocolViolation, "too many startup packets"))
			return "bad_startup"
		}
		var err error
		pkt, err = readStartupPacket(conn)
		if err != nil {
			if pe, ok := pgerr.As(err); ok {
				log.Info().Err(err).Msg("malformed startup packet")
				hsFail(conn, pe)
				return "bad_startup"
			}
			return "" // client went away or timed out before saying anything useful
		}
		switch pkt.kind {
		case kindSSL:
			if isTLS {
				hsFail(conn, pgerr.Fatal(pgerr.ProtocolViolation, "SSL negotiation already done"))
				return "bad_startup"
			}
			if s.cfg.TLS == nil {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return ""
				}
				continue
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return ""
			}
			tc := tls.Server(raw, s.cfg.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				log.Info().Err(err).Msg("TLS handshake failed")
				return "tls_failed"
			}
			conn, isTLS = tc, true
			defer tc.Close()
		case kindGSS:
			if gssAnswered || isTLS {
				hsFail(conn, pgerr.Fatal(pgerr.ProtocolViolation, "unexpected GSSENCRequest"))
				return "bad_startup"
			}
			gssAnswered = true
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return ""
			}
		case kindCancel:
			s.handleCancel(&pkt.cancel)
			return ""
		case kindStartup:
			return s.startSession(ctx, raw, conn, isTLS, &pkt, log, start)
		}
	}
}

// clientParams are the startup parameters passed upstream.
func clientParams(p *startupPacket) map[string]string {
	out := map[string]string{}
	for _, kv := range p.params {
		if forwardedParam(kv.key) {
			out[kv.key] = kv.value
		}
	}
	return out
}

// forwardedParam reports whether startup parameter key is passed upstream
// (after checkStartupParams allowed it).
func forwardedParam(key string) bool {
	switch key {
	case "user", "database", "password", "replication", "options", "role", "session_authorization":
		// options could carry "-c role=..." past the policy; never forwarded
		return false
	}
	return !strings.HasPrefix(key, "_pq_.")
}

// checkStartupParams refuses (FATAL 42501) a startup parameter that would
// be forwarded upstream (see clientParams) and that changes how the server
// lexes SQL (internal/parsesafe, always) or that Config.StartupParam
// refuses. Startup parameters never meet the statement policy, so this is
// their SET policy; it runs before the token is asked for, so no
// credential is minted for a refused connection.
func (s *Server) checkStartupParams(p *startupPacket) *pgerr.Error {
	for _, kv := range p.params {
		if !forwardedParam(kv.key) {
			continue
		}
		reason, ok := parsesafe.Check(kv.key, kv.value)
		if ok && s.cfg.StartupParam != nil {
			reason, ok = s.cfg.StartupParam(kv.key, kv.value)
		}
		if !ok {
			return pgerr.Fatal(pgerr.InsufficientPrivilege, "startup parameter %q is not allowed: %s", kv.key, reason).
				WithHint("remove it from the connection string or the driver's runtime parameters")
		}
	}
	return nil
}

func (s *Server) startSession(ctx context.Context, raw, conn net.Conn, isTLS bool, pkt *startupPacket, log zerolog.Logger, start time.Time) string {
	cw := newLazyWriter(conn, clientWriteBuf)
	fail := func(e *pgerr.Error) {
		_, _ = cw.Write(mustEncode(e.Response()))
		_ = cw.Flush()
	}
	var unrecognized []string
	for _, kv := range pkt.params {
		if strings.HasPrefix(kv.key, "_pq_.") {
			unrecognized = append(unrecognized, kv.key)
		}
	}
	if pkt.minor > 0 || len(unrecognized) > 0 {
		_, _ = cw.Write(mustEncode(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unrecognized}))
	}
	if v, ok := pkt.get("replication"); ok {
		switch strings.ToLower(v) {
		case "false", "off", "no", "0":
		default:
			fail(pgerr.Fatal(pgerr.FeatureNotSupported, "replication connections are not supported"))
			return "refused"
		}
	}
	user, _ := pkt.get("user")
	if user == "" {
		fail(pgerr.Fatal(pgerr.ProtocolViolation, "no user name specified in startup packet"))
		return "bad_startup"
	}
	database, _ := pkt.get("database")
	if database == "" {
		database = user
	}
	appName, _ := pkt.get("application_name")
	log = log.With().Str("user", user).Str("database", database).Logger()
	if s.cfg.RequireTLS && !isTLS {
		fail(pgerr.Fatal(pgerr.InvalidAuthorization, "TLS is required; connect with sslmode=require").
			WithHint("pgwarden refuses unencrypted connections before asking for the token"))
		return "refused"
	}
	if perr := s.checkStartupParams(pkt); perr != nil {
		log.Warn().Str("reason", perr.Message).Msg("startup parameter refused")
		fail(perr)
		return "refused"
	}
	if !s.admit() {
		fail(pgerr.Fatal(pgerr.TooManyConnections, "too many connections"))
		return "too_many_connections"
	}
	admitted := true
	defer func() {
		if admitted {
			s.release()
		}
	}()

	// Token as password.
	_, _ = cw.Write(mustEncode(&pgproto3.AuthenticationCleartextPassword{}))
	if err := cw.Flush(); err != nil {
		return ""
	}
	cr := bufio.NewReaderSize(conn, clientReadBuf)
	pf := newFramer(cr, min(s.cfg.MaxMessageBytes, maxTokenBytes))
	typ, _, err := pf.next()
	if err != nil {
		if pe, ok := pgerr.As(err); ok {
			fail(pe)
			return "bad_startup"
		}
		return "" // e.g. psql closing to prompt for a password
	}
	if typ != 'p' {
		fail(pgerr.Fatal(pgerr.ProtocolViolation, "expected a password message"))
		return "bad_startup"
	}
	body, err := pf.body()
	if err != nil {
		if pe, ok := pgerr.As(err); ok {
			fail(pe)
			return "bad_startup"
		}
		return ""
	}
	var pw pgproto3.PasswordMessage
	if err := pw.Decode(body); err != nil {
		fail(pgerr.Fatal(pgerr.ProtocolViolation, "malformed password message"))
		return "bad_startup"
	}
	clear(body)
	pf.release()
	token := pw.Password
	pw.Password = ""

	principal, err := s.cfg.Verifier.Verify(ctx, token, user)
	if err != nil {
		reason := "error"
		msg := "token verification failed"
		if r, ok := identity.AsRefusal(err); ok {
			reason, msg = string(r.Reason), r.Short()
		}
		s.m.authFail.WithLabelValues(reason).Inc()
		log.Warn().Str("reason", reason).Err(err).Msg("authentication refused")
		fail(pgerr.Fatal(pgerr.InvalidPassword, "%s", msg))
		return "auth_failed"
	}
	lc := log.With().Strs("groups", principal.Groups)
	if principal.Actor != "" {
		lc = lc.Str("actor", principal.Actor) // delegated: groups are those both hold
	}
	log = lc.Logger()
	// The database picks the profile only now: before the token is
	// verified a stranger learns nothing about which databases exist.
	target := s.targets.route(database)
	if target == nil {
		log.Warn().Msg("no connection profile serves the database")
		fail(pgerr.Fatal(pgerr.InvalidAuthorization, "database %q is not served by this gateway", database).
			WithHint("check the dbname in your connection string"))
		return "refused"
	}
	log = log.With().Str("profile", target.Name).Logger()

	sessionID, err := newSessionID()
	if err != nil {
		fail(internalError(err))
		return reasonError
	}
	log = log.With().Str("session", sessionID).Logger()
	mintStart := time.Now()
	lease, err := target.Provider.Mint(ctx, credentials.Request{
		Principal: principal, Token: token, DBRoles: target.DBRoles(principal.Groups),
		Database: database, SessionID: sessionID,
	})
	s.m.mintSeconds.WithLabelValues(target.Name).Observe(time.Since(mintStart).Seconds())
	token = ""
	if err != nil {
		var me *credentials.MintError
		msg := "credential minting failed"
		if errors.As(err, &me) && me.Public != "" {
			msg += ": " + me.Public
		}
		log.Error().Err(err).Msg("credential minting failed")
		fail(pgerr.Fatal(pgerr.UnableToConnect, "%s", msg))
		return "mint_failed"
	}
	revokeLease := true
	defer func() {
		if revokeLease {
			s.revoke(lease, log)
		}
	}()

	// Upstream connection as the lease.
	pc, err := connectUpstream(ctx, target.Upstream, lease, database, clientParams(pkt))
	if err != nil {
		log.Error().Err(err).Msg("upstream connection failed")
		fail(pgerr.Fatal(pgerr.UnableToConnect, "upstream connection failed: %s", safeConnectReason(err)).WithCause(err))
		return "upstream_failed"
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		log.Error().Err(err).Msg("upstream hijack failed")
		fail(pgerr.Fatal(pgerr.UnableToConnect, "upstream connection failed"))
		return "upstream_failed"
	}
	up := hc.Conn
	// The session may start with standard_conforming_strings off or a
	// client_encoding pg_query cannot lex (SJIS, BIG5, ...) through a role
	// or database default (ALTER ROLE/DATABASE ... SET) or postgresql.conf,
	// which no startup parameter or statement of ours shows: the server's
	// own word decides before the client can send anything. A setting the
	// server did not report fails closed (Check of "").
	for _, name := range parsesafe.Settings {
		value := hc.ParameterStatuses[name]
		if reason, ok := parsesafe.Check(name, value); !ok {
			up.Close()
			log.Error().Str("setting", name).Str("value", value).Msg("upstream session starts with a setting pgwarden cannot parse under")
			fail(pgerr.Fatal(pgerr.InsufficientPrivilege, "the server starts this session with an unsafe setting; refusing: %s", reason).
				WithHint("check ALTER ROLE / ALTER DATABASE ... SET %s and postgresql.conf", name))
			return "refused"
		}
	}
	_ = up.SetDeadline(time.Time{})

	ss := &session{
		srv: s, target: target, lease: lease, client: conn, cr: cr, cw: cw, up: up,
		ur: bufio.NewReaderSize(up, upReadBuf), uw: newLazyWriter(up, upWriteBuf),
		upPID: hc.PID, upSecret: hc.SecretKey, idle: make(chan struct{}, 1), tr: NewTracker(),
		info: SessionInfo{
			ID: sessionID, Principal: principal, ClientAddr: s.clientAddr(raw),
			ApplicationName: appName, Database: database, Profile: target.Name, BackendUser: lease.Username(),
			BackendPID: hc.PID, StartedAt: start,
		},
	}
	ss.log = log.With().Str("backend_user", lease.Username()).Uint32("backend_pid", hc.PID).Logger()
	ss.cf = newClientFramer(cr, s.cfg.MaxMessageBytes)
	ss.uf = newFramer(ss.ur, s.cfg.MaxMessageBytes)
	ss.ctx, ss.cancel = context.WithCancel(s.baseCtx)
	defer ss.cancel()
	ss.hookCtx, ss.hookCancel = context.WithCancelCause(ss.ctx)
	var mk [8]byte
	if _, err := rand.Read(mk[:]); err != nil {
		up.Close()
		fail(internalError(err))
		return reasonError
	}
	ss.marker = "pgwarden_refused_" + hex.EncodeToString(mk[:]) + "_"
	if err := s.cancels.register(ss); err != nil {
		up.Close()
		fail(internalError(err))
		return reasonError
	}
	defer s.cancels.unregister(ss)

	if s.cfg.Hooks != nil {
		h, err := s.cfg.Hooks(ctx, ss)
		if err != nil {
			pe, ok := pgerr.As(err)
			if !ok {
				pe = pgerr.Fatal(pgerr.UnableToConnect, "session setup failed").WithCause(err)
			}
			log.Error().Err(err).Msg("session hooks refused the session")
			ss.closeUpstream()
			fail(asFatal(pe))
			return "hooks_failed"
		}
		ss.hooks = h
	}

	// Welcome: AuthenticationOk, the upstream's parameters, our own key, ready.
	_, _ = cw.Write(mustEncode(&pgproto3.AuthenticationOk{}))
	keys := make([]string, 0, len(hc.ParameterStatuses))
	for k := range hc.ParameterStatuses {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		_, _ = cw.Write(mustEncode(&pgproto3.ParameterStatus{Name: k, Value: hc.ParameterStatuses[k]}))
	}
	_, _ = cw.Write(mustEncode(&pgproto3.BackendKeyData{ProcessID: ss.keyPID, SecretKey: ss.keySecret[:]}))
	tx := hc.TxStatus
	if tx == 0 {
		tx = 'I'
	}
	_, _ = cw.Write(mustEncode(&pgproto3.ReadyForQuery{TxStatus: tx}))
	if err := cw.Flush(); err != nil {
		ss.closeUpstream()
		if ss.hooks != nil {
			ss.hooks.Close(reasonClientClosed, err)
		}
		return reasonClientClosed
	}
	_ = raw.SetDeadline(time.Time{})
	if !s.addSession(ss) {
		ss.closeUpstream()
		fail(errShutdown)
		if ss.hooks != nil {
			ss.hooks.Close(reasonShutdown, errShutdown)
		}
		return reasonShutdown
	}
	s.startupDone(raw)
	live := s.m.sessions.WithLabelValues(target.Name)
	live.Inc()
	ss.log.Info().Str("application_name", appName).Dur("connect", time.Since(start)).Msg("session started")

	ss.run()

	live.Dec()
	s.removeSession(ss)
	revokeLease = false
	admitted = false
	s.release()
	s.revoke(lease, ss.log)
	return ss.endWhy
}

func (s *Server) revoke(l credentials.Lease, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	if err := l.Revoke(ctx); err != nil {
		log.Error().Err(err).Msg("credential revoke failed")
	}
}

// sessionIDEncoding is lowercase base32 without padding: URL-safe, and an
// ID never begins with '-', so `pgwarden sessions show ID` cannot take it
// for a flag (base64url IDs did, one in 64).
var sessionIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newSessionID returns 24 characters (120 random bits).
func newSessionID() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return sessionIDEncoding.EncodeToString(b[:]), nil
}

func mustEncode(m pgproto3.Message) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic(fmt.Sprintf("pgwire: encoding %T: %v", m, err))
	}
	return b
}

// dsnQuoter is built once: a strings.Replacer's first use builds a 256-entry
// table (~3.5 KiB), which per call was ~14 KiB of garbage per connection.
var dsnQuoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// quoteDSN quotes a keyword/value connection-string value.
func quoteDSN(v string) string {
	return "'" + dsnQuoter.Replace(v) + "'"
}

func connectUpstream(ctx context.Context, u Upstream, lease credentials.Lease, database string, params map[string]string) (*pgconn.PgConn, error) {
	secs := max(int(u.ConnectTimeout/time.Second), 1)
	dsn := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=%s connect_timeout=%d",
		quoteDSN(u.Host), u.Port, quoteDSN(lease.Username()), quoteDSN(lease.Password()), quoteDSN(database), u.SSLMode, secs)
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("invalid upstream configuration") // never echo the DSN: it has the password
	}
	pc.RuntimeParams = params
	cctx, cancel := context.WithTimeout(ctx, u.ConnectTimeout)
	defer cancel()
	return pgconn.ConnectConfig(cctx, pc)
}

// safeConnectReason is the client-safe part of an upstream connect error.
func safeConnectReason(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "server unreachable"
}

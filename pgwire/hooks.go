package pgwire

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// SessionInfo describes an authenticated session to hooks.
type SessionInfo struct {
	ID              string // URL-safe, unique per gateway process and restart
	Principal       identity.Principal
	ClientAddr      string
	ApplicationName string
	Database        string
	Profile         string // the connection profile (Target) the database is routed to
	BackendUser     string // the minted role name (never its password)
	BackendPID      uint32 // upstream backend process id
	StartedAt       time.Time
}

// Session is the handle hooks use to act on their own session.
type Session interface {
	Info() SessionInfo
	// Notice sends a NoticeResponse to the client right away (e.g. "held for approval").
	Notice(n *pgproto3.NoticeResponse) error
	// Query runs one statement on the session's own upstream connection
	// (same role, search_path, temp tables) and returns its rows in text
	// format (NULL as ""). It may only be called from OnClient (or from the
	// HookFactory, before the relay starts); it waits until every
	// message already forwarded has been answered. It returns ErrBusy when
	// the upstream is inside an unsynced extended-protocol batch that has
	// already been flushed (or inside COPY) and so cannot take a side
	// query. An error in a side query aborts an open transaction, as it
	// would in PostgreSQL.
	Query(ctx context.Context, sql string, args ...string) ([][]string, error)
	// Terminate ends the session: the client receives err (FATAL) and both
	// connections are closed. Safe to call from any goroutine.
	Terminate(err *pgerr.Error)
	// Tracker is the session's protocol state: which request the server
	// answers now, the prepared statements and portals (tracker.go).
	Tracker() *Tracker
	// WatchClient may only be called from OnClient, before it blocks for
	// long (an approval hold): until stop is called, pgwire reads ahead on
	// the client connection, and when the client closes it or sends
	// Terminate the session ends at once and OnClient's ctx is cancelled
	// with cause ErrClientGone. Messages the client pipelined are kept for
	// after OnClient returns. stop must be called before OnClient returns.
	WatchClient() (stop func())
}

// ErrClientGone is the cause of the context passed to Hooks.OnClient when
// the client closed its connection or sent Terminate during WatchClient.
var ErrClientGone = errors.New("pgwire: client closed the connection")

// ErrBusy is returned by Session.Query when no side query can run now.
var ErrBusy = errors.New("pgwire: upstream busy inside an extended-protocol batch")

// Verdict is a hook's answer about one client message.
type Verdict struct {
	// Refuse, when set, keeps the message from PostgreSQL; the client
	// receives this error in protocol order, and the upstream is put into
	// the same error state PostgreSQL itself would be in (an open
	// transaction becomes aborted; the rest of an extended-protocol batch
	// is skipped until Sync).
	Refuse *pgerr.Error
	// Replace, when set (and Refuse is nil), is forwarded instead of the
	// original message.
	Replace pgproto3.FrontendMessage
	// Data is the hooks' own, kept with the forwarded message's Request
	// (Tracker.Head) and, for a Parse or Bind, with the Statement or
	// Portal it makes.
	Data any
	// Statements describes a Query's statements in order: what each does
	// to prepared statements, portals and the transaction once the server
	// confirms it (its CommandComplete), and the hooks' data for its result.
	// Without it the tracker knows nothing of the Query's PREPAREs,
	// DECLAREs, ... (a refused Query has none).
	Statements []QueryStatement
}

// Hooks sees one session's messages. OnClient runs on the client-reading
// goroutine, OnServer on the server-reading goroutine: an implementation
// synchronises any state it shares between the two. Messages passed in are
// only valid during the call (buffers are reused): copy what you keep.
type Hooks interface {
	// WantClient reports whether OnClient must see client messages of
	// this type byte ('Q', 'P', 'B', 'E', 'D', 'C', 'S', 'H', 'F', 'd', 'c', 'f').
	// Messages not wanted are forwarded without being decoded.
	WantClient(typ byte) bool
	// OnClient is called before the message is forwarded (nothing of a
	// batch reaches PostgreSQL before every message in it was decided).
	// It may block (approval hold); ctx is cancelled when the client sends
	// a CancelRequest for this session or the session ends.
	OnClient(ctx context.Context, msg pgproto3.FrontendMessage) Verdict
	// WantServer reports whether OnServer must see server messages of this
	// type byte. It is asked per message, so interest may change between
	// statements (e.g. DataRow only while a masking plan is active).
	WantServer(typ byte) bool
	// OnServer returns the message to send to the client: msg itself, a
	// rewritten message (whose buffers may be reused after the call), or
	// nil to drop it. A non-nil error ends the session; a *pgerr.Error is
	// sent to the client first (e.g. 08P01 for a row that cannot be masked).
	OnServer(msg pgproto3.BackendMessage) (pgproto3.BackendMessage, error)
	// Close is called once when the session ends, with the reason
	// ("client_closed", "client_terminated", "upstream_lost", "terminated",
	// "shutdown", "error") and the error if any.
	Close(reason string, err error)
}

// HookFactory creates the Hooks of a new session after authentication and
// upstream connection, before the client receives ReadyForQuery. An error
// refuses the session (a *pgerr.Error is sent to the client as is).
type HookFactory func(ctx context.Context, s Session) (Hooks, error)

// ErrCancelRequest is the cause (context.Cause) of the context passed to
// Hooks.OnClient when the client sent a CancelRequest for this session; a
// context ended because the session ended has another cause.
var ErrCancelRequest = errors.New("pgwire: client sent a CancelRequest")

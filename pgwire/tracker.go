package pgwire

import (
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The protocol tracker: which server response answers which client
// request, and which prepared statements and portals exist on the server.
//
// Every client message PostgreSQL answers is pushed on a FIFO of Requests
// when it is forwarded (the message actually sent: a replacement or a
// refusal's poison, not the client's original); every server message is
// matched against the FIFO's head. The statements and portals the tracker
// knows are the server's own: a Parse, Bind, Close, SQL PREPARE,
// DEALLOCATE [ALL], DECLARE, CLOSE, DISCARD ALL, COMMIT or ROLLBACK takes
// effect when the server confirms it (ParseComplete, BindComplete,
// CloseComplete, the statement's CommandComplete), never when it fails; a
// simple Query drops the unnamed statement; portals die when the
// transaction they were made in ends (ReadyForQuery with status idle),
// except cursors WITH HOLD whose transaction committed. So the server side
// of the tracker is exact. The client goroutine, deciding a message before
// the answers to earlier ones arrived, sees both what exists now and what
// the requests still in flight will make of a name (ClientStatement,
// ClientPortal).
//
// The tracker also holds the relay's own accounting: ReadyForQuery owed by
// the upstream, refusals waiting for their error, COPY IN and unsynced
// extended batches (what Session.Query must wait for).

// State is where the conversation with the server stands.
type State uint8

const (
	// StateIdle: every forwarded request has been answered.
	StateIdle State = iota
	// StateBusy: requests are in flight.
	StateBusy
	// StateSkipping: the server reported an error inside an extended
	// batch; it ignores every message until Sync, which the tracker does too.
	StateSkipping
	// StateCopyIn: the server waits for COPY data from the client.
	StateCopyIn
	// StateCopyOut: the server streams COPY data.
	StateCopyOut
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateBusy:
		return "busy"
	case StateSkipping:
		return "skipping"
	case StateCopyIn:
		return "copy_in"
	case StateCopyOut:
		return "copy_out"
	}
	return "unknown"
}

// RequestKind is the client message a Request stands for.
type RequestKind uint8

const (
	ReqQuery             RequestKind = iota + 1 // simple Query: results per statement, then ReadyForQuery
	ReqParse                                    // ParseComplete
	ReqBind                                     // BindComplete
	ReqDescribeStatement                        // ParameterDescription, then RowDescription | NoData
	ReqDescribePortal                           // RowDescription | NoData
	ReqExecute                                  // DataRow* then CommandComplete | EmptyQueryResponse | PortalSuspended (or Copy*)
	ReqClose                                    // CloseComplete
	ReqSync                                     // ReadyForQuery
	ReqFunctionCall                             // FunctionCallResponse, then ReadyForQuery
)

// Statement is a prepared statement (protocol Parse or SQL PREPARE).
type Statement struct {
	Name string
	SQL  string // the Parse text, or the statement of PREPARE name AS statement
	// Data is the hooks' own (Verdict.Data of the Parse, Effect.Data of a
	// PREPARE). The tracker never looks at it.
	Data any
}

// Portal is a bound portal (protocol Bind) or a cursor (SQL DECLARE).
type Portal struct {
	Name string
	// Stmt is the statement a Bind bound (as the server had it when it
	// confirmed the Bind); nil for a DECLAREd cursor.
	Stmt *Statement
	SQL  string // DECLARE: the cursor's query
	Hold bool   // DECLARE ... WITH HOLD: survives a committed transaction
	Data any    // Verdict.Data of the Bind, Effect.Data of a DECLARE

	inTx bool // made in the current transaction (hold: not yet committed)
}

// EffectKind is what a statement of a simple Query does to the prepared
// statements and portals, or to the transaction, once the server confirmed it.
type EffectKind uint8

const (
	EffectNone          EffectKind = iota
	EffectPrepare                  // PREPARE Name AS SQL
	EffectDeallocate               // DEALLOCATE Name
	EffectDeallocateAll            // DEALLOCATE ALL
	EffectDeclare                  // DECLARE Name CURSOR [WITH HOLD] FOR SQL
	EffectClosePortal              // CLOSE Name
	EffectCloseAll                 // CLOSE ALL
	EffectDiscardAll               // DISCARD ALL: every named statement and every portal
	EffectCommit                   // COMMIT / END (a failed transaction's COMMIT answers ROLLBACK)
	EffectRollback                 // ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT)
)

// Effect is one statement's effect (see EffectKind).
type Effect struct {
	Kind EffectKind
	Name string
	SQL  string
	Hold bool
	Data any // the new Statement's or Portal's Data

	stmt   *Statement // EffectPrepare: made when the Query is forwarded
	portal *Portal    // EffectDeclare
}

// QueryStatement is one statement of a simple Query, as the hooks
// described it in Verdict.Statements.
type QueryStatement struct {
	Effect Effect
	Data   any // the hooks' own (e.g. the statement's run)
}

// Request is one forwarded client message awaiting its answer.
type Request struct {
	Kind RequestKind
	// Name is the statement (Parse, DescribeStatement, Close 'S') or portal
	// (Bind, DescribePortal, Execute, Close 'P') named.
	Name string
	// Stmt: Parse: the statement it makes; DescribeStatement: the statement;
	// Bind, DescribePortal, Execute: the portal's statement. Portal: Bind:
	// the portal it makes; DescribePortal, Execute: the portal. Either is
	// nil when the server has no such thing. From the time the server
	// starts answering the request (Head) they are the server's own; before
	// that, what the client goroutine expected.
	Stmt   *Statement
	Portal *Portal
	Data   any // Verdict.Data
	// Statements are a Query's statements (Verdict.Statements) and Cur the
	// one answering now (len(Statements) once an error ended the rest).
	Statements []QueryStatement
	Cur        int

	stmtName  string // Bind: the statement bound
	closeKind byte   // Close: 'S' or 'P'
	resolved  bool   // Stmt/Portal re-read from the confirmed state
}

// Tracker is one session's protocol state. pgwire drives it; hooks read it
// (Session.Tracker). Head and Statement are for OnServer (the server
// goroutine), ClientStatement and ClientPortal for OnClient.
type Tracker struct {
	mu      sync.Mutex
	q       []*Request
	qbuf    []*Request // q's backing array from its front
	free    []*Request // answered requests for reuse (client goroutine takes, under mu)
	stmts   map[string]*Statement
	portals map[string]*Portal
	state   State
	tx      byte // transaction status of the last ReadyForQuery ('I', 'T', 'E')
	failed  bool // an ErrorResponse since the last ReadyForQuery

	// relay accounting
	owed            int  // ReadyForQuery owed by the upstream for forwarded messages
	unsyncedFlushed bool // extended messages reached the upstream without their Sync
	copyIn          bool
	rfqSeen         uint64
	refusals        []refusal
}

// NewTracker returns the tracker of a new session (idle, nothing prepared).
func NewTracker() *Tracker {
	return &Tracker{stmts: map[string]*Statement{}, portals: map[string]*Portal{}, tx: 'I'}
}

// State returns where the conversation stands.
func (t *Tracker) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == StateIdle && len(t.q) > 0 {
		return StateBusy
	}
	return t.state
}

// TxStatus is the transaction status of the last ReadyForQuery.
func (t *Tracker) TxStatus() byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tx
}

// Pending is the number of requests awaiting an answer.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.q)
}

// Head returns the request the server answers now (nil: none), with its
// Stmt and Portal as the server has them.
func (t *Tracker) Head() *Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.headLocked()
}

func (t *Tracker) headLocked() *Request {
	if len(t.q) == 0 {
		return nil
	}
	r := t.q[0]
	if !r.resolved {
		t.resolveLocked(r)
	}
	return r
}

// resolveLocked re-reads what a request names from the confirmed state:
// every request before it has been answered, so this is what the server uses.
func (t *Tracker) resolveLocked(r *Request) {
	r.resolved = true
	switch r.Kind {
	case ReqDescribeStatement:
		r.Stmt = t.stmts[r.Name]
	case ReqBind:
		r.Portal.Stmt = t.stmts[r.stmtName]
		r.Stmt = r.Portal.Stmt
	case ReqDescribePortal, ReqExecute:
		r.Portal = t.portals[r.Name]
		r.Stmt = nil
		if r.Portal != nil {
			r.Stmt = r.Portal.Stmt
		}
	}
}

// Skipped calls fn for the requests from the head up to (not including)
// the next Sync: those an ErrorResponse at the head makes the server skip.
// Call it from OnServer before the tracker sees the error.
func (t *Tracker) Skipped(fn func(*Request)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.q {
		if r.Kind == ReqSync {
			return
		}
		fn(r)
	}
}

// Statement returns the prepared statement name as the server has it now
// (server goroutine: at a server message, everything before it is applied).
func (t *Tracker) Statement(name string) *Statement {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stmts[name]
}

// Portal returns the portal name as the server has it now.
func (t *Tracker) Portal(name string) *Portal {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.portals[name]
}

// ClientStatement returns, for a decision on the client goroutine, the
// prepared statement name as the server will have it once every request
// in flight succeeded (latest), and as it has it now (current); either is
// nil for none. They differ only while a request in flight changes the
// name, and one of them may fail: decide for both.
func (t *Tracker) ClientStatement(name string) (latest, current *Statement) {
	t.mu.Lock()
	defer t.mu.Unlock()
	current = t.stmts[name]
	latest = current
	for _, r := range t.q {
		switch r.Kind {
		case ReqParse:
			if r.Name == name {
				latest = r.Stmt
			}
		case ReqClose:
			if r.closeKind == 'S' && r.Name == name {
				latest = nil
			}
		case ReqQuery, ReqExecute:
			if name == "" && r.Kind == ReqQuery {
				latest = nil // a simple Query drops the unnamed statement
			}
			for i := range r.Statements {
				e := &r.Statements[i].Effect
				switch e.Kind {
				case EffectPrepare:
					if e.Name == name {
						latest = e.stmt
					}
				case EffectDeallocate:
					if e.Name == name {
						latest = nil
					}
				case EffectDeallocateAll, EffectDiscardAll:
					if name != "" {
						latest = nil
					}
				}
			}
		}
	}
	return latest, current
}

// ClientPortal is ClientStatement for portals. A transaction end in
// flight is not predicted: latest may name a portal the server will have
// dropped (its Execute then fails at the server).
func (t *Tracker) ClientPortal(name string) (latest, current *Portal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	current = t.portals[name]
	latest = current
	for _, r := range t.q {
		switch r.Kind {
		case ReqBind:
			if r.Name == name {
				latest = r.Portal
			}
		case ReqClose:
			if r.closeKind == 'P' && r.Name == name {
				latest = nil
			}
		case ReqQuery, ReqExecute:
			for i := range r.Statements {
				e := &r.Statements[i].Effect
				switch e.Kind {
				case EffectDeclare:
					if e.Name == name {
						latest = e.portal
					}
				case EffectClosePortal:
					if e.Name == name {
						latest = nil
					}
				case EffectCloseAll, EffectDiscardAll:
					latest = nil
				}
			}
		}
	}
	return latest, current
}

// ---- client side (the client goroutine) -----------------------------------

// tracked reports the client message types the tracker must see decoded.
func tracked(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'D', 'E', 'C', 'S', 'F':
		return true
	}
	return false
}

// Client records a client message as forwarded (the message actually sent
// upstream: a replacement or poison, not the original) with the verdict
// that let it through. pgwire calls it; it is exported for tests of hooks
// that run without a relay.
func (t *Tracker) Client(msg pgproto3.FrontendMessage, v Verdict) {
	t.client(msg, &v)
}

func (t *Tracker) client(msg pgproto3.FrontendMessage, v *Verdict) {
	var r *Request
	switch m := msg.(type) {
	case *pgproto3.Query:
		r = t.newRequest()
		*r = Request{Kind: ReqQuery, Statements: v.Statements, Data: v.Data}
		t.makeEffects(r.Statements)
	case *pgproto3.Parse:
		r = t.newRequest()
		*r = Request{Kind: ReqParse, Name: m.Name, Stmt: &Statement{Name: m.Name, SQL: m.Query, Data: v.Data}, resolved: true}
	case *pgproto3.Bind:
		st, _ := t.ClientStatement(m.PreparedStatement)
		r = t.newRequest()
		*r = Request{Kind: ReqBind, Name: m.DestinationPortal, stmtName: m.PreparedStatement, Stmt: st,
			Portal: &Portal{Name: m.DestinationPortal, Stmt: st, Data: v.Data}}
	case *pgproto3.Describe:
		if m.ObjectType == 'S' {
			st, _ := t.ClientStatement(m.Name)
			r = t.newRequest()
			*r = Request{Kind: ReqDescribeStatement, Name: m.Name, Stmt: st, Data: v.Data}
		} else {
			pt, _ := t.ClientPortal(m.Name)
			r = t.newRequest()
			*r = Request{Kind: ReqDescribePortal, Name: m.Name, Portal: pt, Data: v.Data}
			if pt != nil {
				r.Stmt = pt.Stmt
			}
		}
	case *pgproto3.Execute:
		pt, _ := t.ClientPortal(m.Portal)
		r = t.newRequest()
		*r = Request{Kind: ReqExecute, Name: m.Portal, Portal: pt, Data: v.Data, Statements: v.Statements}
		t.makeEffects(r.Statements)
		if pt != nil {
			r.Stmt = pt.Stmt
		}
	case *pgproto3.Close:
		r = t.newRequest()
		*r = Request{Kind: ReqClose, Name: m.Name, closeKind: m.ObjectType, Data: v.Data}
	case *pgproto3.Sync:
		r = t.newRequest()
		*r = Request{Kind: ReqSync, Data: v.Data}
	case *pgproto3.FunctionCall:
		r = t.newRequest()
		*r = Request{Kind: ReqFunctionCall, Data: v.Data}
	default:
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == StateSkipping {
		if r.Kind != ReqSync {
			if r.Kind == ReqQuery || r.Kind == ReqFunctionCall {
				// not an extended message: the server answers it (it is a
				// protocol error inside a batch, but answered all the same)
				t.pushLocked(r)
			}
			return // skipped by the server: no answer comes
		}
		t.state = StateIdle
	}
	t.pushLocked(r)
}

// makeEffects makes the statements and portals that PREPAREs and DECLAREs
// will create once confirmed.
func (t *Tracker) makeEffects(qs []QueryStatement) {
	for i := range qs {
		e := &qs[i].Effect
		switch e.Kind {
		case EffectPrepare:
			e.stmt = &Statement{Name: e.Name, SQL: e.SQL, Data: e.Data}
		case EffectDeclare:
			e.portal = &Portal{Name: e.Name, SQL: e.SQL, Hold: e.Hold, Data: e.Data}
		}
	}
}

// pushLocked appends r to the FIFO. An empty FIFO starts again at the
// front of its backing array, so a session in the usual request/response
// rhythm appends without growing it.
func (t *Tracker) pushLocked(r *Request) {
	if len(t.q) == 0 && t.qbuf != nil {
		t.q = t.qbuf[:0]
	}
	c := cap(t.q)
	t.q = append(t.q, r)
	if cap(t.q) != c {
		t.qbuf = t.q[:0]
	}
	if t.state == StateIdle {
		t.state = StateBusy
	}
}

// maxFree bounds the answered requests kept for reuse.
const maxFree = 16

// newRequest returns a zero Request, reused when one is free: a request is
// only referenced from the FIFO (hooks must not keep a *Request past the
// call that gave it to them).
func (t *Tracker) newRequest() *Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.free); n > 0 {
		r := t.free[n-1]
		t.free[n-1] = nil
		t.free = t.free[:n-1]
		return r
	}
	return new(Request)
}

// popLocked removes the first n requests, clearing their slots so that a
// finished request's data is not kept alive.
func (t *Tracker) popLocked(n int) {
	for i := 0; i < n; i++ {
		if len(t.free) < maxFree {
			*t.q[i] = Request{}
			t.free = append(t.free, t.q[i])
		}
		t.q[i] = nil
	}
	t.q = t.q[n:]
	if len(t.q) > 0 && !t.q[0].resolved {
		t.resolveLocked(t.q[0])
	}
}

// ---- server side (the server goroutine) -----------------------------------

// Server records a server message after the hooks saw it. pgwire calls
// it; it is exported for tests of hooks that run without a relay.
func (t *Tracker) Server(msg pgproto3.BackendMessage) {
	switch m := msg.(type) {
	case *pgproto3.CommandComplete:
		t.server('C', m.CommandTag)
	case *pgproto3.ReadyForQuery:
		t.server('Z', []byte{m.TxStatus})
	case *pgproto3.ParseComplete:
		t.server('1', nil)
	case *pgproto3.BindComplete:
		t.server('2', nil)
	case *pgproto3.CloseComplete:
		t.server('3', nil)
	case *pgproto3.RowDescription:
		t.server('T', nil)
	case *pgproto3.NoData:
		t.server('n', nil)
	case *pgproto3.EmptyQueryResponse:
		t.server('I', nil)
	case *pgproto3.PortalSuspended:
		t.server('s', nil)
	case *pgproto3.ErrorResponse:
		t.server('E', nil)
	case *pgproto3.CopyInResponse:
		t.server('G', nil)
	case *pgproto3.CopyOutResponse:
		t.server('H', nil)
	case *pgproto3.CopyBothResponse:
		t.server('W', nil)
	}
}

// server records server message typ; body is needed for 'C' (the command
// tag, NUL-terminated or not) and 'Z' (the status byte).
func (t *Tracker) server(typ byte, body []byte) {
	if !serverTracked[typ] {
		return // a DataRow, NoticeResponse, ...: no state changes (and no lock per row)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.headLocked()
	switch typ {
	case '1': // ParseComplete
		if r != nil && r.Kind == ReqParse {
			t.stmts[r.Name] = r.Stmt
			t.popLocked(1)
		}
	case '2': // BindComplete
		if r != nil && r.Kind == ReqBind {
			r.Portal.inTx = true
			t.portals[r.Name] = r.Portal
			t.popLocked(1)
		}
	case '3': // CloseComplete
		if r != nil && r.Kind == ReqClose {
			if r.closeKind == 'S' {
				delete(t.stmts, r.Name)
			} else {
				delete(t.portals, r.Name)
			}
			t.popLocked(1)
		}
	case 'T': // RowDescription
		if r != nil && (r.Kind == ReqDescribeStatement || r.Kind == ReqDescribePortal) {
			t.popLocked(1)
		}
	case 'n': // NoData
		if r != nil && (r.Kind == ReqDescribeStatement || r.Kind == ReqDescribePortal) {
			t.popLocked(1)
		}
	case 'C': // CommandComplete
		if r == nil {
			break
		}
		switch r.Kind {
		case ReqQuery:
			if r.Cur < len(r.Statements) {
				t.applyLocked(&r.Statements[r.Cur].Effect, body)
				r.Cur++
			}
		case ReqExecute:
			if len(r.Statements) > 0 { // a PREPARE, DECLARE, COMMIT, ... sent through Parse
				t.applyLocked(&r.Statements[0].Effect, body)
			}
			t.popLocked(1)
		}
		if t.state == StateCopyOut || t.state == StateCopyIn {
			t.state = StateBusy
		}
	case 'I': // EmptyQueryResponse
		if r != nil && r.Kind == ReqExecute {
			t.popLocked(1)
		}
	case 's': // PortalSuspended
		if r != nil && r.Kind == ReqExecute {
			t.popLocked(1)
		}
	case 'E':
		t.failed = true
		if t.state == StateCopyOut || t.state == StateCopyIn {
			t.state = StateBusy
		}
		if r == nil {
			break
		}
		switch r.Kind {
		case ReqQuery, ReqFunctionCall:
			r.Cur = len(r.Statements)
		default:
			if r.Kind == ReqParse && r.Name == "" {
				delete(t.stmts, "") // PostgreSQL drops the old unnamed statement before it parses
			}
			// the server skips everything up to the next Sync
			i := 0
			for i < len(t.q) && t.q[i].Kind != ReqSync {
				i++
			}
			t.popLocked(i)
			if len(t.q) == 0 {
				t.state = StateSkipping
			}
		}
	case 'G', 'W': // CopyInResponse, CopyBothResponse
		t.state = StateCopyIn
		t.copyIn = true
	case 'H': // CopyOutResponse
		t.state = StateCopyOut
	case 'Z':
		t.readyLocked(body)
	}
}

// serverTracked are the server message types server acts on (its cases).
var serverTracked = func() (t [256]bool) {
	for _, c := range []byte("123TnCIsEGWHZ") {
		t[c] = true
	}
	return t
}()

// applyLocked applies a confirmed statement's effect (tag: its CommandComplete).
func (t *Tracker) applyLocked(e *Effect, tag []byte) {
	switch e.Kind {
	case EffectPrepare:
		t.stmts[e.Name] = e.stmt
	case EffectDeallocate:
		delete(t.stmts, e.Name)
	case EffectDeallocateAll:
		t.dropNamedLocked()
	case EffectDeclare:
		e.portal.inTx = true
		t.portals[e.Name] = e.portal
	case EffectClosePortal:
		delete(t.portals, e.Name)
	case EffectCloseAll:
		clear(t.portals)
	case EffectDiscardAll:
		t.dropNamedLocked()
		clear(t.portals)
	case EffectCommit:
		if isTag(tag, "ROLLBACK") { // COMMIT of a failed transaction
			t.rollbackLocked()
			break
		}
		for _, p := range t.portals {
			p.inTx = false // WITH HOLD cursors outlive it; the others die at ReadyForQuery
		}
	case EffectRollback:
		t.rollbackLocked()
	}
}

// dropNamedLocked forgets every named statement (DEALLOCATE ALL keeps the
// unnamed one, as PostgreSQL does).
func (t *Tracker) dropNamedLocked() {
	for name := range t.stmts {
		if name != "" {
			delete(t.stmts, name)
		}
	}
}

// rollbackLocked drops the portals the ended transaction made (WITH HOLD
// ones too: they are committed only with their transaction).
func (t *Tracker) rollbackLocked() {
	for name, p := range t.portals {
		if p.inTx || !p.Hold {
			delete(t.portals, name)
		}
	}
}

func isTag(body []byte, tag string) bool {
	if n := len(body); n > 0 && body[n-1] == 0 {
		body = body[:n-1]
	}
	return string(body) == tag
}

// readyLocked accounts for a ReadyForQuery: the requests it ends are done;
// at a transaction's end (status idle) its portals die; one fewer owed;
// refusals whose poison was skipped are dropped.
func (t *Tracker) readyLocked(body []byte) {
	for len(t.q) > 0 {
		k := t.q[0].Kind
		if k == ReqQuery {
			delete(t.stmts, "") // a simple Query drops the unnamed statement
		}
		t.popLocked(1)
		if k == ReqSync || k == ReqQuery || k == ReqFunctionCall {
			break
		}
	}
	if len(body) > 0 {
		t.tx = body[0]
	}
	if t.tx == 'I' {
		for name, p := range t.portals {
			if !p.Hold || p.inTx && t.failed {
				delete(t.portals, name)
			} else {
				p.inTx = false
			}
		}
	}
	t.failed = false
	t.state = StateIdle
	if t.owed > 0 {
		t.owed--
	}
	t.copyIn = false
	t.rfqSeen++
	if len(t.refusals) > 0 {
		k := 0
		for _, r := range t.refusals {
			if r.rfq > t.rfqSeen {
				t.refusals[k] = r
				k++
			}
		}
		clear(t.refusals[k:])
		t.refusals = t.refusals[:k]
	}
}

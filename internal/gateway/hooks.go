package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"github.com/pgwarden/pgwarden/internal/analysis"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/internal/parsesafe"
	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/mcp"
	"github.com/pgwarden/pgwarden/pgwire"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

// hooks is one session's policy, approval, masking and recording logic,
// plugged into the relay through pgwire.Hooks. OnClient runs on the
// client-reading goroutine and OnServer on the server-reading one; which
// request the server answers and which statements and portals exist is
// the session's pgwire.Tracker (tr), which the gateway's data hangs on.
type hooks struct {
	g      *Gateway
	p      *profile // the session's connection profile: policy, masking, functions
	v      *dbView  // the session database's masking engine and catalog
	s      pgwire.Session
	tr     *pgwire.Tracker
	info   pgwire.SessionInfo
	groups []string
	unmask bool
	// mcp: the session is the MCP server's (application_name mcp:...),
	// told before each row description which columns are masked.
	mcp bool
	rec *sessions.SessionRecorder
	// pol resolves EXECUTEs (client goroutine only): it is loaded with the
	// prepared statements the tracker knows right before each Resolve.
	pol *sqlpolicy.Session
	// funcs classifies the functions of the session's database (client
	// goroutine only; refreshed before each statement by useFunctions).
	funcs *analysis.Functions
	// srvFuncs is funcs for the server goroutine (masking plans trace
	// function calls with it).
	srvFuncs atomic.Pointer[analysis.Functions]

	mu        sync.Mutex
	reason    string // SET pgwarden.reason
	ddlSeen   bool   // a DDL statement ran: refresh the catalog at ReadyForQuery
	maxRows   int
	recording bool        // record result rows
	unflushed atomic.Bool // events recorded since the last ReadyForQuery

	types *pgtype.Map // binary parameter decoding (client goroutine only)

	// server goroutine only
	active *run

	// live sessions API (live.go): ending is set by the first terminate;
	// done is closed by Close, once the session's record has ended.
	ending atomic.Bool
	done   chan struct{}
}

func (g *Gateway) newHooks(ctx context.Context, s pgwire.Session) (pgwire.Hooks, error) {
	info := s.Info()
	p := g.profiles[info.Profile]
	if p == nil { // pgwire routes only to the targets we gave it
		return nil, pgerr.New(pgerr.InvalidAuthorization, "pgwarden: database %q is not served by this gateway", info.Database)
	}
	v, err := p.view(info.Database)
	if err != nil {
		return nil, pgerr.New(pgerr.UnableToConnect, "pgwarden: masking for this database could not be set up; refusing the session").WithCause(err)
	}
	h := &hooks{
		g:         g,
		p:         p,
		v:         v,
		s:         s,
		tr:        s.Tracker(),
		info:      info,
		groups:    info.Principal.Groups,
		unmask:    p.policy.Unmask(info.Principal.Groups),
		mcp:       strings.HasPrefix(info.ApplicationName, mcp.ApplicationPrefix),
		pol:       g.classifier.NewSession(),
		maxRows:   g.cfg.Recording.MaxRows,
		recording: g.cfg.Recording.Results && g.cfg.Recording.MaxRows > 0,
		done:      make(chan struct{}),
	}
	h.useFunctions(ctx)
	if g.recorder != nil {
		if err := g.recorder.Healthy(); err != nil && !g.recorder.FailOpen() {
			return nil, pgerr.New(pgerr.UnableToConnect, "pgwarden: session recording unavailable; refusing to run unrecorded").WithCause(err)
		}
		h.rec = g.recorder.Start(sessions.StartInfo{
			ID: info.ID, User: info.Principal.User, Groups: info.Principal.Groups,
			ClientAddr: info.ClientAddr, ApplicationName: info.ApplicationName,
			Database: info.Database, Profile: info.Profile, BackendUser: info.BackendUser,
		})
	}
	// Every session, recorded or not: approval events decided elsewhere
	// and the live sessions API (live.go) find it here until Close.
	g.liveMu.Lock()
	g.live[info.ID] = h
	g.liveMu.Unlock()
	return h, nil
}

// ---- client side ----------------------------------------------------------

func (h *hooks) WantClient(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'E', 'F':
		return true
	}
	return false
}

// useFunctions takes the current function classification of the
// session's database (cheap when the snapshot is fresh; a load after DDL
// is bounded by policy.functions.catalog_timeout).
func (h *hooks) useFunctions(ctx context.Context) {
	if fs := h.p.functions.Functions(ctx, h.info.Database); fs != h.funcs {
		h.funcs = fs
		h.srvFuncs.Store(fs)
		h.pol.SetFunctions(fs)
	}
}

// functionReloadEvery bounds how often a statement naming a function the
// snapshot does not know may reload the catalog (it may have been created
// outside the gateway since the last load).
const functionReloadEvery = 200 * time.Millisecond

// refreshFunctions reloads the session database's function catalog (rate
// limited) and reports whether the classification changed.
func (h *hooks) refreshFunctions(ctx context.Context) bool {
	fs := h.p.functions.Refresh(ctx, h.info.Database, functionReloadEvery)
	if fs == h.funcs {
		return false
	}
	h.funcs = fs
	h.srvFuncs.Store(fs)
	h.pol.SetFunctions(fs)
	return true
}

func unknownFunc(stmts []sqlpolicy.Statement) bool {
	for i := range stmts {
		if stmts[i].UnknownFunc {
			return true
		}
	}
	return false
}

func (h *hooks) OnClient(ctx context.Context, msg pgproto3.FrontendMessage) pgwire.Verdict {
	switch msg.(type) {
	case *pgproto3.Query, *pgproto3.Parse, *pgproto3.FunctionCall:
		h.useFunctions(ctx)
	}
	switch m := msg.(type) {
	case *pgproto3.Query:
		return h.onQuery(ctx, m)
	case *pgproto3.Parse:
		return h.onParse(ctx, m)
	case *pgproto3.Bind:
		return h.onBind(m)
	case *pgproto3.Execute:
		return h.onExecute(ctx, m)
	case *pgproto3.FunctionCall:
		if perr := h.recordingRefusal(); perr != nil {
			return pgwire.Verdict{Refuse: perr}
		}
		st := sqlpolicy.FunctionCall(m.Function, h.funcs)
		d := h.p.policy.Decide(h.groups, st)
		if d.Allowed && st.NonPure && !h.unmask && h.p.maskActive {
			d.Allowed, d.Err = false, pgerr.New(pgerr.InsufficientPrivilege,
				"pgwarden: %s reads or writes outside its result, and this session's results are masked; masked data may only leave through masked result rows", strings.TrimPrefix(strings.TrimSuffix(st.SQL, ">"), "<"))
		}
		if !d.Allowed || d.NeedsApproval {
			err := d.Err
			if err == nil {
				err = pgerr.New(pgerr.InsufficientPrivilege, "pgwarden: fast-path function calls need approval, which this protocol message cannot wait for")
			}
			h.recordRefusal(st.SQL, nil, []string{string(st.Action)}, "deny", err)
			return pgwire.Verdict{Refuse: err}
		}
	}
	return pgwire.Verdict{}
}

// recordingRefusal is non-nil when statements must not run because the
// record cannot be written (fail closed unless recording.fail_open).
func (h *hooks) recordingRefusal() *pgerr.Error {
	if h.rec == nil {
		return nil
	}
	if err := h.rec.Healthy(); err != nil && !h.g.recorder.FailOpen() {
		return pgerr.New(pgerr.UnableToConnect, "pgwarden: session recording unavailable; statement refused").WithCause(err)
	}
	return nil
}

// maskRefusal is the masking engine's statement-level refusal (derived:
// deny, deny_predicates, binary COPY of masked columns) for any of the
// statements, or nil.
func (h *hooks) maskRefusal(ctx context.Context, stmts []sqlpolicy.Statement) *pgerr.Error {
	if h.unmask {
		return nil
	}
	// With masking.derived: mask and without deny_predicates, Check
	// refuses statements that write values read from masked columns
	// (INSERT/UPDATE ... SELECT, SELECT INTO, CREATE TABLE AS) and those
	// that call a function that is not pure (reads hidden data, writes
	// state, VOLATILE, unknown) or read planner statistics. The classifier
	// walks the whole tree and reports the strongest action and whether any
	// call is not pure, so a read or search with only pure calls contains
	// none of those: skip the trace it costs (make bench: ~20% of
	// pgwarden's CPU on pgbench -S -M simple, where every query text is new).
	writesOnly := h.p.maskCfg.Derived == "mask" && !h.p.maskCfg.DenyPredicates
	for _, st := range stmts {
		if writesOnly && !st.NonPure && (st.Action == sqlpolicy.ActionRead || st.Action == sqlpolicy.ActionSearch) &&
			st.Prepare == nil && st.Execute == "" && st.Cursor == "" {
			continue
		}
		if perr := h.v.masker.Check(ctx, &masking.Query{SQL: st.SQL, Stmt: -1, Funcs: h.funcs}, h.unmask); perr != nil {
			return perr
		}
		// A COPY the masker refuses (binary format) is refused before it
		// runs: refused at CopyOutResponse it could only end the session.
		if st.Action == sqlpolicy.ActionExport && !h.unmask && h.p.maskActive {
			if _, err := h.v.masker.PlanCopy(ctx, st.SQL); err != nil {
				if perr, ok := pgerr.As(err); ok && perr.Code == pgerr.InsufficientPrivilege {
					return perr
				}
			}
		}
	}
	return nil
}

func actionStrings(as []sqlpolicy.Action, n int) []string {
	out := make([]string, 0, n)
	for _, a := range as {
		out = append(out, string(a))
	}
	return out
}

func stmtActions(stmts []sqlpolicy.Statement) []string {
	out := make([]string, len(stmts))
	for i, st := range stmts {
		out[i] = string(st.Action)
	}
	return out
}

func (h *hooks) onQuery(ctx context.Context, m *pgproto3.Query) pgwire.Verdict {
	sql := m.String
	if perr := h.recordingRefusal(); perr != nil {
		return pgwire.Verdict{Refuse: perr}
	}
	an, _ := h.g.classifier.ClassifyWith(sql, h.funcs) // unparseable: one admin statement (fail closed)
	if unknownFunc(an.Statements) && h.refreshFunctions(ctx) {
		an, _ = h.g.classifier.ClassifyWith(sql, h.funcs)
	}
	stmts := h.resolve(an.Statements, 0)
	d := h.p.policy.Evaluate(ctx, h.groups, stmts, nil, h.estimatorFor(an.Statements))
	actions := actionStrings(d.Actions, len(stmts))
	if len(actions) != len(stmts) {
		actions = stmtActions(stmts)
	}
	refuse := func(perr *pgerr.Error) pgwire.Verdict {
		h.recordRefusal(sql, nil, actions, "deny", perr)
		return pgwire.Verdict{Refuse: perr}
	}
	if !d.Allowed {
		return refuse(d.Err)
	}
	if perr := h.maskRefusal(ctx, stmts); perr != nil {
		return refuse(perr)
	}
	decision, approvalID := "allow", ""
	if d.NeedsApproval {
		id, perr := h.hold(ctx, sql, nil, actions, d)
		if perr != nil {
			return pgwire.Verdict{Refuse: perr}
		}
		decision, approvalID = "approved", id
	}
	now := time.Now()
	qs := make([]pgwire.QueryStatement, len(stmts))
	for i, st := range stmts {
		if st.IsDDL {
			h.mu.Lock()
			h.ddlSeen = true
			h.mu.Unlock()
		}
		if st.Action == sqlpolicy.ActionSession && strings.Contains(st.SQL, "pgwarden.reason") {
			if v, ok := reasonSetting(st.SQL); ok {
				h.mu.Lock()
				h.reason = v
				h.mu.Unlock()
			}
		}
		// EXECUTE: its rows are traced with the prepared statement (execName)
		r := &run{sql: st.SQL, full: sql, idx: i, execName: st.Execute, actions: []string{actions[i]}, decision: decision, approval: approvalID, start: now}
		qs[i] = pgwire.QueryStatement{Effect: h.effect(an.Statements[i], []string{actions[i]}), Data: r}
	}
	return pgwire.Verdict{Statements: qs}
}

// reasonSetting returns the value of `SET pgwarden.reason = '...'` (the
// requester's justification for held statements), read from the parse tree.
func reasonSetting(sql string) (string, bool) {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return "", false
	}
	set := tree.Stmts[0].Stmt.GetVariableSetStmt()
	if set == nil || set.Name != "pgwarden.reason" {
		return "", false
	}
	if set.Kind == pg_query.VariableSetKind_VAR_RESET {
		return "", true
	}
	var parts []string
	for _, a := range set.Args {
		if c := a.GetAConst(); c != nil {
			if sv := c.GetSval(); sv != nil {
				parts = append(parts, sv.Sval)
			}
		}
	}
	return strings.Join(parts, ", "), len(parts) > 0
}

func (h *hooks) onParse(ctx context.Context, m *pgproto3.Parse) pgwire.Verdict {
	if perr := h.recordingRefusal(); perr != nil {
		return pgwire.Verdict{Refuse: perr}
	}
	// The statement as PostgreSQL will prepare it (one statement; several
	// are refused by the server, and here need all their actions).
	an, _ := h.pol.Parse("", m.Query)
	if unknownFunc(an.Statements) && h.refreshFunctions(ctx) {
		an, _ = h.pol.Parse("", m.Query)
	}
	combined, _ := h.pol.Lookup("")
	// A Parse of SQL-level EXECUTE/PREPARE/DEALLOCATE (some drivers send
	// every statement through Parse): EXECUTE is what its prepared statement does.
	stmts := h.resolve(an.Statements, 0)
	p := &prepared{policy: combined, actions: stmtActions(stmts), paramOIDs: append([]uint32(nil), m.ParameterOIDs...)}
	// Decided now with the unrefined statements, so a statement that can
	// never run is refused at once; every Execute is decided again, with
	// its parameters and the prepared statements of that moment.
	d := h.p.policy.DecideAll(h.groups, stmts)
	perr := d.Err
	if d.Allowed {
		perr = h.maskRefusal(ctx, stmts)
	}
	if !d.Allowed || perr != nil {
		h.recordRefusal(m.Query, nil, p.actions, "deny", perr)
		return pgwire.Verdict{Refuse: perr}
	}
	for _, st := range stmts {
		if st.IsDDL {
			h.mu.Lock()
			h.ddlSeen = true
			h.mu.Unlock()
		}
	}
	return pgwire.Verdict{Data: p}
}

func (h *hooks) onBind(m *pgproto3.Bind) pgwire.Verdict {
	var oids []uint32
	st, _ := h.tr.ClientStatement(m.PreparedStatement)
	if p := prep(st); p != nil {
		oids = p.paramOIDs
	}
	pt := &portal{formats: append([]int16(nil), m.ResultFormatCodes...)}
	pt.params = h.textParams(m, oids, pt)
	return pgwire.Verdict{Data: pt}
}

// prep is the gateway's data of a tracked statement (nil: none, or a
// refused message's poison).
func prep(st *pgwire.Statement) *prepared {
	if st == nil {
		return nil
	}
	p, _ := st.Data.(*prepared)
	return p
}

// portalData is the gateway's data of a tracked portal.
func portalData(pt *pgwire.Portal) *portal {
	if pt == nil {
		return nil
	}
	p, _ := pt.Data.(*portal)
	return p
}

// textParams copies bind parameters out of the reused message buffer, in
// text form: binary values of a known parameter type (from Parse or the
// server's ParameterDescription) are decoded and re-encoded as text, so the
// planner estimate and approvers see the value; others become \x hex.
// nil is SQL NULL. Up to len(pt.inline) parameters live in pt itself, and
// the text values share one copy: a Bind of text parameters costs one
// allocation (none without parameters) beside the portal.
func (h *hooks) textParams(m *pgproto3.Bind, oids []uint32, pt *portal) []*string {
	n := len(m.Parameters)
	if n == 0 {
		return nil
	}
	var vals []string
	var out []*string
	if n <= len(pt.inline) {
		vals, out = pt.inline[:n], pt.inlinePtr[:n]
	} else {
		vals, out = make([]string, n), make([]*string, n)
	}
	text := 0
	for i, v := range m.Parameters {
		if v != nil && formatOf(m.ParameterFormatCodes, i) != 1 {
			text += len(v)
		}
	}
	var arena []byte // the text values' one copy; never written after
	if text > 0 {
		arena = make([]byte, 0, text)
	}
	for i, v := range m.Parameters {
		if v == nil {
			continue
		}
		if formatOf(m.ParameterFormatCodes, i) == 1 {
			var ok bool
			if i < len(oids) && oids[i] != 0 {
				vals[i], ok = h.binaryToText(oids[i], v)
			}
			if !ok {
				vals[i] = `\x` + hex.EncodeToString(v)
			}
		} else if len(v) > 0 {
			start := len(arena)
			arena = append(arena, v...)
			vals[i] = unsafe.String(&arena[start], len(v))
		}
		out[i] = &vals[i]
	}
	return out
}

// binaryToText converts one binary-format value of type oid to its text form.
func (h *hooks) binaryToText(oid uint32, v []byte) (string, bool) {
	if h.types == nil {
		h.types = pgtype.NewMap()
	}
	t, ok := h.types.TypeForOID(oid)
	if !ok {
		return "", false
	}
	val, err := t.Codec.DecodeValue(h.types, oid, pgtype.BinaryFormatCode, v)
	if err != nil {
		return "", false
	}
	buf, err := h.types.Encode(oid, pgtype.TextFormatCode, val, nil)
	if err != nil || buf == nil {
		return "", false
	}
	return string(buf), true
}

func plainParams(ps []*string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		if p == nil {
			out[i] = `\N`
		} else {
			out[i] = *p
		}
	}
	return out
}

func (h *hooks) onExecute(ctx context.Context, m *pgproto3.Execute) pgwire.Verdict {
	if h.tr.State() == pgwire.StateSkipping {
		return pgwire.Verdict{} // the server skips it until Sync: nothing runs
	}
	// A statement prepared while the store was healthy runs here without a
	// new Parse: check again (fail closed).
	if perr := h.recordingRefusal(); perr != nil {
		return pgwire.Verdict{Refuse: perr}
	}
	// Every Execute is decided now, for the statement its portal runs as
	// the server will have it (and, while a request in flight may change
	// it, as it has it now): an EXECUTE's prepared statement may have been
	// deallocated and prepared again since the Parse.
	latest, current := h.tr.ClientPortal(m.Portal)
	r := &run{decision: "allow", start: time.Now()}
	var worst sqlpolicy.Decision // valid when decided (a value: no allocation per Execute)
	decided := false
	var effect pgwire.Effect
	for i, pt := range [2]*pgwire.Portal{latest, current} {
		if pt == nil || i == 1 && pt == latest {
			continue
		}
		pd := portalData(pt)
		if pt.Stmt == nil { // a DECLAREd cursor: Execute is its FETCH, checked at DECLARE
			if i == 0 {
				r.sql = pt.SQL
				if pd != nil {
					r.actions = pd.actions
				}
			}
			continue
		}
		p := prep(pt.Stmt)
		if p == nil {
			continue // a poison: the server refuses it
		}
		var params []*string
		if pd != nil {
			params = pd.params
		}
		if i == 0 {
			r.sql, r.params, r.actions = pt.Stmt.SQL, params, p.actions
			effect = h.effect(p.policy, p.actions)
		}
		var d sqlpolicy.Decision
		if p.policy.Execute == "" && !p.policy.NeedsEstimate {
			d = h.p.policy.Decide(h.groups, p.policy) // the common case: no allocation
		} else {
			stmts := h.resolve([]sqlpolicy.Statement{p.policy}, 0)
			d = h.p.policy.Evaluate(ctx, h.groups, stmts, plainParams(params), h.estimatorFor(nil))
			if i == 0 {
				r.actions = actionStrings(d.Actions, 1)
			}
		}
		if !decided || !d.Allowed || d.NeedsApproval && worst.Allowed && !worst.NeedsApproval {
			worst, decided = d, true
		}
	}
	if !decided && latest == nil && current == nil {
		// A portal pgwarden does not know: fail closed (the server would
		// not know it either).
		st, _ := h.pol.Portal(m.Portal)
		worst, decided = h.p.policy.Decide(h.groups, st), true
		r.sql, r.actions = st.SQL, []string{string(st.Action)}
	}
	if decided {
		if !worst.Allowed {
			h.recordRefusal(r.sql, r.params, r.actions, "deny", worst.Err)
			return pgwire.Verdict{Refuse: worst.Err}
		}
		if worst.NeedsApproval {
			id, perr := h.hold(ctx, r.sql, r.params, r.actions, worst)
			if perr != nil {
				return pgwire.Verdict{Refuse: perr}
			}
			r.decision, r.approval = "approved", id
		}
	}
	v := pgwire.Verdict{Data: r}
	if effect.Kind != pgwire.EffectNone {
		v.Statements = []pgwire.QueryStatement{{Effect: effect, Data: r}}
	}
	return v
}

// resolve returns stmts with every EXECUTE replaced by what its prepared
// statement does: as the server will have it once the requests in flight
// are done and, where that differs, as it has it now (both must be
// allowed), and with the PREPAREs and DEALLOCATEs earlier in stmts.
func (h *hooks) resolve(stmts []sqlpolicy.Statement, depth int) []sqlpolicy.Statement {
	type version struct {
		name string
		st   sqlpolicy.Statement
	}
	var vs []version
	for _, st := range stmts {
		if st.Execute == "" {
			continue
		}
		latest, current := h.tr.ClientStatement(st.Execute)
		for i, s := range [2]*pgwire.Statement{latest, current} {
			p := prep(s)
			if p == nil || i == 1 && s == latest {
				continue
			}
			ps := p.policy
			if ps.Execute != "" { // a Parse of "EXECUTE other"
				if depth >= 3 {
					continue // unknown: fail closed
				}
				ps = h.resolve([]sqlpolicy.Statement{ps}, depth+1)[0]
			}
			vs = append(vs, version{st.Execute, ps})
		}
	}
	if vs == nil {
		if len(stmts) == 1 && stmts[0].Execute != "" {
			h.pol.Apply([]sqlpolicy.Statement{{DeallocateAll: true}})
			return h.pol.Resolve(&sqlpolicy.Analysis{Statements: stmts}) // unknown: admin
		}
		for _, st := range stmts {
			if st.Execute != "" || st.Prepare != nil {
				h.pol.Apply([]sqlpolicy.Statement{{DeallocateAll: true}})
				return h.pol.Resolve(&sqlpolicy.Analysis{Statements: stmts})
			}
		}
		return stmts
	}
	h.pol.Apply([]sqlpolicy.Statement{{DeallocateAll: true}})
	for _, v := range vs {
		// two versions of one name: the registry keeps the union
		h.pol.Apply([]sqlpolicy.Statement{{Prepare: &sqlpolicy.PrepareInfo{Name: v.name, Statement: v.st}}})
	}
	return h.pol.Resolve(&sqlpolicy.Analysis{Statements: stmts})
}

// effect is what statement st does to prepared statements, portals or the
// transaction once the server confirms it (pgwire.Effect).
func (h *hooks) effect(st sqlpolicy.Statement, actions []string) pgwire.Effect {
	switch {
	case st.Prepare != nil:
		p := &prepared{policy: st.Prepare.Statement, actions: []string{string(st.Prepare.Statement.Action)}}
		return pgwire.Effect{Kind: pgwire.EffectPrepare, Name: st.Prepare.Name, SQL: st.SQL, Data: p}
	case st.DeallocateAll && st.CloseAll:
		return pgwire.Effect{Kind: pgwire.EffectDiscardAll}
	case st.DeallocateAll:
		return pgwire.Effect{Kind: pgwire.EffectDeallocateAll}
	case st.Deallocate != "":
		return pgwire.Effect{Kind: pgwire.EffectDeallocate, Name: st.Deallocate}
	case st.Cursor != "":
		return pgwire.Effect{Kind: pgwire.EffectDeclare, Name: st.Cursor, SQL: st.SQL, Hold: withHold(st.SQL), Data: &portal{actions: actions}}
	case st.CloseAll:
		return pgwire.Effect{Kind: pgwire.EffectCloseAll}
	case st.ClosePortal != "":
		return pgwire.Effect{Kind: pgwire.EffectClosePortal, Name: st.ClosePortal}
	case st.Tx == sqlpolicy.TxCommit:
		return pgwire.Effect{Kind: pgwire.EffectCommit}
	case st.Tx == sqlpolicy.TxRollback:
		return pgwire.Effect{Kind: pgwire.EffectRollback}
	}
	return pgwire.Effect{}
}

// withHold reports whether sql is a DECLARE ... WITH HOLD.
func withHold(sql string) bool {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return false
	}
	d := tree.Stmts[0].Stmt.GetDeclareCursorStmt()
	return d != nil && d.Options&0x0020 != 0 // CURSOR_OPT_HOLD
}

// hold runs the approval workflow for a statement that needs a second
// person. It returns the approval ID when the statement may run now, or the
// error the client gets.
func (h *hooks) hold(ctx context.Context, sql string, params []*string, actions []string, d sqlpolicy.Decision) (string, *pgerr.Error) {
	mgr := h.g.approvals
	if mgr == nil {
		err := pgerr.New(pgerr.InsufficientPrivilege, "pgwarden: action %s needs approval, and no approval workflow is configured", d.Action)
		h.recordRefusal(sql, params, actions, "deny", err)
		return "", err
	}
	h.mu.Lock()
	reason := h.reason
	h.mu.Unlock()
	est := int64(-1)
	if d.EstimateRows >= 0 {
		est = int64(d.EstimateRows)
	}
	pp := plainParams(params)
	norm := normalize(sql)
	user := h.info.Principal.User
	if mgr.ModeFor(h.p.name) == "retry" {
		if a, ok := mgr.ClaimFor(h.p.name, user, h.info.Database, norm, pp); ok {
			return a.ID, nil
		}
	}
	a, err := mgr.Hold(ctx, approvals.Request{
		Requester: user, Groups: h.groups, Session: h.info.ID, Database: h.info.Database, Profile: h.p.name,
		SQL: sql, NormSQL: norm, Params: pp, Action: string(d.Action), EstimateRows: est, Reason: reason,
	})
	if err != nil {
		perr, ok := pgerr.As(err)
		if !ok {
			perr = storeRefusal(err, pgerr.New(pgerr.InsufficientPrivilege, "pgwarden: statement needs approval but the request could not be stored"))
		}
		h.recordRefusal(sql, params, actions, "deny", perr)
		return "", perr
	}
	h.recordStatement(sessions.StatementEvent{SQL: sql, Params: params, Actions: actions, Decision: "hold", ApprovalID: a.ID})
	if mgr.ModeFor(h.p.name) == "retry" {
		return "", approvals.RetryError(a, mgr.TimeoutFor(h.p.name))
	}
	if err := h.s.Notice(approvals.HeldNotice(a)); err != nil {
		return "", pgerr.New(pgerr.QueryCanceled, "pgwarden: client gone while statement was held").WithCause(err)
	}
	// The client's CancelRequest, or the client closing its connection or
	// sending Terminate while it waits (pgwire keeps reading it:
	// WatchClient), withdraws the request; the session ending otherwise
	// (gateway stopping) expires it instead. A client that left ends its
	// session at once, so its credential is revoked now, not at the timeout.
	wctx, wcancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() {
		if c := context.Cause(ctx); errors.Is(c, pgwire.ErrCancelRequest) || errors.Is(c, pgwire.ErrClientGone) {
			wcancel()
		} else {
			mgr.SessionEnded(h.info.ID)
		}
	})
	unwatch := h.s.WatchClient()
	out, err := mgr.Wait(wctx, a.ID)
	unwatch()
	stop()
	wcancel()
	if err != nil && out.State == "" {
		return "", storeRefusal(err, pgerr.New(pgerr.QueryCanceled, "pgwarden: approval %s could not be awaited", a.ID))
	}
	if perr := out.Err(); perr != nil {
		h.recordStatement(sessions.StatementEvent{SQL: sql, Params: params, Actions: actions, Decision: "denied", ApprovalID: a.ID, Error: perr.Message})
		return "", perr
	}
	if err := mgr.MarkExecuted(a.ID); err != nil {
		return "", storeRefusal(err, pgerr.New(pgerr.QueryCanceled, "pgwarden: approval %s was already used", a.ID))
	}
	return a.ID, nil
}

// storeRefusal is the error for a failed approvals-store call: 08001 when
// the shared store cannot be reached (the SPEC's answer for an unreachable
// store; the statement did not run), else otherwise.
func storeRefusal(err error, otherwise *pgerr.Error) *pgerr.Error {
	if errors.Is(err, sharedstore.ErrUnreachable) {
		return pgerr.New(pgerr.UnableToConnect, "pgwarden: the shared store is unreachable; the statement was not run").WithCause(err)
	}
	return otherwise.WithCause(err)
}

// normalize is the statement's canonical text for matching a retry-mode
// re-run: the deparsed parse tree (formatting and case of keywords do not
// matter; literals do).
func normalize(sql string) string {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return strings.TrimSpace(sql)
	}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return strings.TrimSpace(sql)
	}
	return out
}

// estimator asks the planner on the user's own session. A statement that
// does not run itself is estimated for what it runs: EXPLAIN ANALYZE for
// its inner statement (EXPLAIN of an EXPLAIN is a syntax error), EXECUTE
// for its prepared statement with the EXECUTE's arguments — the one a
// PREPARE earlier in the same query string makes (the server does not have
// it yet), else every version the tracker knows (the largest estimate wins).
type estimator struct {
	h       *hooks
	inQuery []sqlpolicy.Statement // the statements of the query string being decided
}

func (h *hooks) estimatorFor(inQuery []sqlpolicy.Statement) estimator {
	return estimator{h: h, inQuery: inQuery}
}

func (e estimator) EstimateRows(ctx context.Context, sql string, params []string) (float64, error) {
	targets, err := e.expand(sql, params, 0)
	if err != nil {
		return 0, err
	}
	best := -1.0
	for _, t := range targets {
		args := make([]string, len(t.params))
		copy(args, t.params)
		rows, err := e.h.s.Query(ctx, "EXPLAIN (FORMAT JSON) "+t.sql, args...)
		if err != nil {
			return 0, err
		}
		if len(rows) == 0 || len(rows[0]) == 0 {
			return 0, errors.New("empty EXPLAIN output")
		}
		n, err := sqlpolicy.ParseExplainRows([]byte(rows[0][0]))
		if err != nil {
			return 0, err
		}
		best = max(best, n)
	}
	return best, nil
}

// estimateTarget is a statement text to EXPLAIN with its parameters.
type estimateTarget struct {
	sql    string
	params []string
}

// expand returns the statements sql runs, as texts EXPLAIN accepts.
func (e estimator) expand(sql string, params []string, depth int) ([]estimateTarget, error) {
	if depth > 3 {
		return nil, errors.New("gateway: EXECUTE nested too deep to estimate")
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, err
	}
	if len(tree.Stmts) != 1 {
		return nil, errors.New("gateway: cannot estimate several statements at once")
	}
	node := tree.Stmts[0].Stmt
	inner := false
	for node.GetExplainStmt() != nil {
		node, inner = node.GetExplainStmt().GetQuery(), true
	}
	ex := node.GetExecuteStmt()
	if ex == nil {
		if !inner {
			return []estimateTarget{{sql, params}}, nil
		}
		text, err := pg_query.Deparse(&pg_query.ParseResult{Version: tree.Version, Stmts: []*pg_query.RawStmt{{Stmt: node}}})
		if err != nil {
			return nil, err
		}
		return []estimateTarget{{text, params}}, nil
	}
	args := make([]string, len(ex.GetParams()))
	for i, p := range ex.GetParams() {
		v, ok := constText(p, params)
		if !ok {
			return nil, errors.New("gateway: EXECUTE argument is not a constant: cannot estimate")
		}
		args[i] = v
	}
	var texts []string
	for _, st := range e.inQuery {
		if st.Prepare != nil && st.Prepare.Name == ex.GetName() {
			texts = append(texts, st.SQL)
			break
		}
	}
	if texts == nil {
		latest, current := e.h.tr.ClientStatement(ex.GetName())
		for i, s := range [2]*pgwire.Statement{latest, current} {
			if s != nil && prep(s) != nil && (i == 0 || s != latest) {
				texts = append(texts, s.SQL)
			}
		}
	}
	if texts == nil {
		return nil, errors.New("gateway: EXECUTE of an unknown prepared statement")
	}
	var out []estimateTarget
	for _, text := range texts {
		t, err := pg_query.Parse(text)
		if err != nil || len(t.Stmts) != 1 {
			return nil, errors.New("gateway: prepared statement cannot be estimated")
		}
		body := text
		if ps := t.Stmts[0].Stmt.GetPrepareStmt(); ps != nil {
			if body, err = pg_query.Deparse(&pg_query.ParseResult{Version: t.Version, Stmts: []*pg_query.RawStmt{{Stmt: ps.GetQuery()}}}); err != nil {
				return nil, err
			}
		}
		ts, err := e.expand(body, args, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// constText is the text value of an EXECUTE argument: a constant (maybe
// cast), or a parameter of the Bind that runs the EXECUTE.
func constText(n *pg_query.Node, params []string) (string, bool) {
	if tc := n.GetTypeCast(); tc != nil {
		return constText(tc.GetArg(), params)
	}
	if pr := n.GetParamRef(); pr != nil {
		i := int(pr.GetNumber()) - 1
		if i < 0 || i >= len(params) {
			return "", false
		}
		return params[i], true
	}
	c := n.GetAConst()
	if c == nil || c.GetIsnull() {
		return "", false
	}
	switch {
	case c.GetIval() != nil:
		return strconv.FormatInt(int64(c.GetIval().GetIval()), 10), true
	case c.GetFval() != nil:
		return c.GetFval().GetFval(), true
	case c.GetSval() != nil:
		return c.GetSval().GetSval(), true
	case c.GetBoolval() != nil:
		return strconv.FormatBool(c.GetBoolval().GetBoolval()), true
	}
	return "", false
}

// ---- server side ----------------------------------------------------------

func (h *hooks) WantServer(typ byte) bool {
	switch typ {
	case 'D': // DataRow
		if h.active == nil {
			h.activateHead()
		}
		r := h.active
		if r == nil || !r.described {
			// Rows nobody described cannot be masked: look at them (and refuse).
			return h.p.maskActive && !h.unmask
		}
		return r.plan != nil || (h.recording && r.rows.Len() < h.maxRows)
	case 'd': // CopyData (out): only while a COPY TO plan masks something
		return h.active != nil && h.active.copyPlan != nil
	case 'c', 'W', 'v': // CopyDone, CopyBothResponse, NegotiateProtocolVersion
		return false
	case '1', '2', '3', 'n': // ParseComplete, BindComplete, CloseComplete, NoData: the tracker's
		return false
	}
	return true
}

func (h *hooks) OnServer(msg pgproto3.BackendMessage) (pgproto3.BackendMessage, error) {
	switch m := msg.(type) {
	case *pgproto3.DataRow:
		return h.onDataRow(m)
	case *pgproto3.RowDescription:
		return m, h.onRowDescription(m)
	case *pgproto3.CommandComplete:
		h.finish(m.CommandTag, "")
	case *pgproto3.EmptyQueryResponse:
		h.finish(nil, "")
	case *pgproto3.PortalSuspended:
		h.finish(nil, "")
	case *pgproto3.ParameterDescription:
		if e := h.tr.Head(); e != nil && e.Kind == pgwire.ReqDescribeStatement {
			if p := prep(e.Stmt); p != nil {
				p.paramOIDs = append([]uint32(nil), m.ParameterOIDs...)
			}
		}
	// The relay forwards the original bytes when OnServer returns msg
	// itself: a masked message must be a new one.
	case *pgproto3.ErrorResponse:
		masked := *m
		if h.withholdText(h.failedRun()) {
			withholdError(&masked)
		} else {
			h.v.masker.MaskError(&masked)
		}
		h.onError(&masked) // the record gets the masked text, unmask or not
		if !h.unmask {
			return &masked, nil
		}
	case *pgproto3.NoticeResponse:
		if !h.unmask {
			masked := *m
			if h.withholdText(h.failedRun()) {
				withholdNotice(&masked)
			} else {
				h.v.masker.MaskNotice(&masked)
			}
			return &masked, nil
		}
	case *pgproto3.NotificationResponse:
		if !h.unmask {
			masked := *m
			h.v.masker.MaskNotification(&masked)
			return &masked, nil
		}
	case *pgproto3.ReadyForQuery:
		if err := h.onReady(); err != nil {
			return nil, err
		}
	case *pgproto3.ParameterStatus:
		// PostgreSQL reports standard_conforming_strings and
		// client_encoding (GUC_REPORT) whenever they change. The policy
		// refuses every way we know to make them unsafe (internal/
		// parsesafe); if the server reports an unsafe value anyway (a
		// function that sets it, anything unforeseen), pgwarden's parse no longer
		// matches the server's and no later statement of this session can
		// be judged: end the session rather than refuse statement by
		// statement, so a pool drops the connection instead of handing a
		// useless one to its next user, and the upstream is closed. This
		// is after the fact: statements the client pipelined behind the one
		// that changed the setting were judged and forwarded before this
		// report arrives, so it is a backstop, not the guard.
		if reason, ok := parsesafe.Check(m.Name, m.Value); !ok {
			return nil, pgerr.Fatal(pgerr.InsufficientPrivilege,
				"pgwarden: the server reports %s changed for this session, so its statements can no longer be checked; session closed: %s",
				m.Name, reason)
		}
		// A reported setting (application_name) may carry a value set by
		// set_config; masked values cannot get there (masking refuses them
		// into functions that write state): the detectors are a last net.
		if !h.unmask && h.p.maskActive {
			if v := h.v.masker.MaskText(m.Value); v != m.Value {
				return &pgproto3.ParameterStatus{Name: m.Name, Value: v}, nil
			}
		}
	case *pgproto3.CopyOutResponse:
		return h.onCopyOut(m)
	case *pgproto3.CopyData:
		if r := h.active; r != nil && r.copyPlan != nil {
			out, err := r.copyPlan.Apply(m.Data)
			if err != nil {
				return nil, pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: COPY data could not be masked; session closed").WithCause(err)
			}
			return &pgproto3.CopyData{Data: out}, nil
		}
	}
	return msg, nil
}

// activateHead makes the Execute at the head of the queue the active run
// (its rows are about to stream).
func (h *hooks) activateHead() {
	e := h.tr.Head()
	if e == nil || e.Kind != pgwire.ReqExecute {
		return
	}
	if r, ok := e.Data.(*run); ok {
		h.activate(r, e.Portal)
	}
}

// activate makes r the run whose rows stream next, with the row description
// of its portal (Describe P) or statement (Describe S / Parse), as the
// server has them now.
func (h *hooks) activate(r *run, pt *pgwire.Portal) {
	h.active = r
	if pt == nil {
		return
	}
	pd := portalData(pt)
	var rd *rowDesc
	var formats []int16
	if pd != nil {
		rd, formats = pd.rd, pd.formats
	}
	if rd == nil {
		if p := prep(pt.Stmt); p != nil {
			rd = p.rd
		}
	}
	if rd == nil || !h.fits(rd, pt.Stmt) {
		return // undescribed: rows are refused if they need masking
	}
	r.described = true
	r.columns, r.plan, r.recPlan, r.formats = rd.columns, rd.plan, rd.recPlan, formats
}

// fits reports whether rd, built when st was described, still describes
// its rows: for a statement whose text is an EXECUTE, only while the
// prepared statement it runs is the one it ran then.
func (h *hooks) fits(rd *rowDesc, st *pgwire.Statement) bool {
	p := prep(st)
	if p == nil || p.policy.Execute == "" {
		return true
	}
	return rd.target != nil && h.tr.Statement(p.policy.Execute) == rd.target
}

// traceSQL is the SQL masking traces for rows of st (a Parse or PREPARE),
// and for a statement whose text is an EXECUTE the prepared statement it
// runs now (nil when unknown: masking then treats expression columns as
// unknown and masks them).
func (h *hooks) traceSQL(st *pgwire.Statement) (string, *pgwire.Statement) {
	p := prep(st)
	if p == nil {
		if st != nil {
			return st.SQL, nil
		}
		return "", nil
	}
	if p.policy.Execute == "" {
		return st.SQL, nil
	}
	t := h.tr.Statement(p.policy.Execute)
	if t == nil {
		return "", nil
	}
	return t.SQL, t
}

func (h *hooks) describe(m *pgproto3.RowDescription, sql string, idx int) (*rowDesc, error) {
	rd := &rowDesc{columns: make([]string, len(m.Fields))}
	for i, f := range m.Fields {
		rd.columns[i] = string(f.Name)
	}
	q := &masking.Query{SQL: sql, Stmt: idx, Funcs: h.srvFuncs.Load()}
	planFn := h.v.masker.Plan
	if h.unmask {
		planFn = h.v.masker.PlanRecord // only for the record: never refuses (derived: deny)
	}
	plan, err := planFn(context.Background(), m, q)
	if err != nil {
		return nil, err
	}
	rd.recPlan = plan
	if !h.unmask {
		rd.plan = plan
	} else if plan != nil {
		rd.recPlan = plan.Clone() // the recorder's copy: plans keep per-use scratch
	}
	return rd, nil
}

func (h *hooks) onRowDescription(m *pgproto3.RowDescription) error {
	e := h.tr.Head()
	if e == nil {
		return pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: unexpected row description from the server; session closed")
	}
	switch e.Kind {
	case pgwire.ReqDescribeStatement, pgwire.ReqDescribePortal:
		st := e.Stmt
		var sql string
		var target *pgwire.Statement
		if st != nil {
			sql, target = h.traceSQL(st)
		} else if e.Portal != nil {
			sql = e.Portal.SQL // a DECLAREd cursor
		}
		p := prep(st)
		gen := h.v.generation()
		var rd *rowDesc
		if p != nil && p.lastRD.matches(m, gen, sql) && p.lastRD.rd.target == target {
			rd = p.lastRD.rd // same description, same catalog: the plans describe would build again
		} else {
			var err error
			if rd, err = h.describe(m, sql, 0); err != nil {
				return err
			}
			rd.target = target
			if p != nil {
				p.lastRD = newRDCache(m, gen, sql, rd)
			}
		}
		h.noticeMasks(rd)
		if e.Kind == pgwire.ReqDescribeStatement {
			if p != nil {
				p.rd = rd
			}
		} else if pd := portalData(e.Portal); pd != nil {
			pd.rd = rd
		}
	case pgwire.ReqQuery:
		if e.Cur >= len(e.Statements) {
			return pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: more results than statements; session closed")
		}
		r, _ := e.Statements[e.Cur].Data.(*run)
		if r == nil {
			return pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: row description out of protocol order; session closed")
		}
		full, idx := r.full, r.idx
		if r.execName != "" { // EXECUTE: trace the prepared statement the server runs now
			full, idx = "", 0
			if t := h.tr.Statement(r.execName); t != nil {
				full = t.SQL
			}
		}
		rd, err := h.describe(m, full, idx)
		if err != nil {
			return err
		}
		h.noticeMasks(rd)
		// A simple Query's rows come in the formats its RowDescription
		// names (binary for FETCH from a BINARY CURSOR).
		r.columns, r.plan, r.recPlan, r.formats = rd.columns, rd.plan, rd.recPlan, fieldFormats(m)
		r.described = true
		h.active = r
	default:
		return pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: row description out of protocol order; session closed")
	}
	return nil
}

// noticeMasks tells an MCP session which columns of the rows about to be
// described are masked (mcp.MaskNotice), so its tools can say so without
// a copy of the rules. Groups with unmask get raw rows and no notice. A
// failed write surfaces on the RowDescription that follows.
func (h *hooks) noticeMasks(rd *rowDesc) {
	if !h.mcp || rd.plan == nil {
		return
	}
	var masked, scanned []int
	for i := range rd.columns {
		switch {
		case rd.plan.DetectOnly(i):
			scanned = append(scanned, i)
		case rd.plan.Masked(i):
			masked = append(masked, i)
		}
	}
	if n := mcp.MaskNotice(rd.columns, masked, scanned); n != nil {
		_ = h.s.Notice(n)
	}
}

func (h *hooks) onDataRow(m *pgproto3.DataRow) (pgproto3.BackendMessage, error) {
	r := h.active
	if r == nil || !r.described {
		if h.p.maskActive && !h.unmask {
			// Rows whose description we never saw cannot be masked: fail closed.
			return nil, pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: result rows without a known row description cannot be masked; session closed")
		}
		return m, nil
	}
	out := m
	if r.plan != nil {
		masked, err := r.plan.Apply(m, r.formats)
		if err != nil {
			return nil, pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: a result row could not be masked; session closed").WithCause(err)
		}
		out = masked
	}
	if h.recording && r.rows.Len() < h.maxRows {
		rec := out
		if r.plan == nil && r.recPlan != nil {
			masked, err := r.recPlan.Apply(m, r.formats)
			if err != nil {
				return nil, pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: a result row could not be masked for the record; session closed").WithCause(err)
			}
			rec = masked
		}
		if r.rows == nil {
			r.rows = rowsPool.Get().(*sessions.ResultRows)
		}
		r.rows.AppendRow(rec.Values, r.formats) // copies: the message buffer is reused
	}
	return out, nil
}

// rowsPool holds the buffers statements' recorded rows are kept in until
// their event is written (sessions.ResultRows: no allocation per row).
var rowsPool = sync.Pool{New: func() any { return new(sessions.ResultRows) }}

// maxPooledRows bounds what a pooled rows buffer may hold on to: a rare
// statement with large rows does not pin its buffer.
const maxPooledRows = 64 << 10

// putRows returns a run's rows buffer to the pool once its event is written.
func putRows(rr *sessions.ResultRows) {
	if rr == nil || rr.Cap() > maxPooledRows {
		return
	}
	rr.Reset()
	rowsPool.Put(rr)
}

// fieldFormats is the format codes of m's fields, nil when all are text
// (no allocation for the common case).
func fieldFormats(m *pgproto3.RowDescription) []int16 {
	for i, f := range m.Fields {
		if f.Format != 0 {
			out := make([]int16, len(m.Fields))
			for j := i; j < len(m.Fields); j++ {
				out[j] = m.Fields[j].Format
			}
			return out
		}
	}
	return nil
}

// formatOf is the format code of column (or parameter) i under the
// protocol's rule: no codes = text, one code = all, else one per column.
func formatOf(formats []int16, i int) int16 {
	switch len(formats) {
	case 0:
		return 0
	case 1:
		return formats[0]
	}
	if i < len(formats) {
		return formats[i]
	}
	return 0
}

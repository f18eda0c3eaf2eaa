package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/internal/parsesafe"
	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/pgwire"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

// hooks is one session's policy, approval, masking and recording logic,
// plugged into the relay through pgwire.Hooks. OnClient runs on the
// client-reading goroutine and OnServer on the server-reading one; the
// expectation FIFO and the statement/portal maps are shared under mu.
type hooks struct {
	g      *Gateway
	s      pgwire.Session
	info   pgwire.SessionInfo
	groups []string
	unmask bool
	rec    *sessions.SessionRecorder
	pol    *sqlpolicy.Session

	mu        sync.Mutex
	q         []*expect
	qbuf      []*expect // q's backing array from its front (pushLocked)
	skipping  bool      // an extended-protocol error was seen; messages until Sync get no answer
	stmts     map[string]*prepared
	portals   map[string]*portal
	reason    string // SET pgwarden.reason
	ddlSeen   bool   // a DDL statement ran: refresh the catalog at ReadyForQuery
	maxRows   int
	recording bool        // record result rows
	unflushed atomic.Bool // events recorded since the last ReadyForQuery

	types *pgtype.Map // binary parameter decoding (client goroutine only)

	// server goroutine only
	active *run
}

func (g *Gateway) newHooks(ctx context.Context, s pgwire.Session) (pgwire.Hooks, error) {
	info := s.Info()
	h := &hooks{
		g:         g,
		s:         s,
		info:      info,
		groups:    info.Principal.Groups,
		unmask:    g.policy.Unmask(info.Principal.Groups),
		pol:       g.classifier.NewSession(),
		stmts:     map[string]*prepared{},
		portals:   map[string]*portal{},
		maxRows:   g.cfg.Recording.MaxRows,
		recording: g.cfg.Recording.Results && g.cfg.Recording.MaxRows > 0,
	}
	if g.recorder != nil {
		if err := g.recorder.Healthy(); err != nil && !g.recorder.FailOpen() {
			return nil, pgerr.New(pgerr.UnableToConnect, "pgwarden: session recording unavailable; refusing to run unrecorded").WithCause(err)
		}
		h.rec = g.recorder.Start(sessions.StartInfo{
			ID: info.ID, User: info.Principal.User, Groups: info.Principal.Groups,
			ClientAddr: info.ClientAddr, ApplicationName: info.ApplicationName,
			Database: info.Database, BackendUser: info.BackendUser,
		})
		g.liveMu.Lock()
		g.live[info.ID] = h
		g.liveMu.Unlock()
	}
	return h, nil
}

// ---- client side ----------------------------------------------------------

func (h *hooks) WantClient(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'E', 'D', 'C', 'S', 'F':
		return true
	}
	return false
}

func (h *hooks) OnClient(ctx context.Context, msg pgproto3.FrontendMessage) pgwire.Verdict {
	switch m := msg.(type) {
	case *pgproto3.Query:
		return h.onQuery(ctx, m)
	case *pgproto3.Parse:
		return h.onParse(ctx, m)
	case *pgproto3.Bind:
		return h.onBind(m)
	case *pgproto3.Execute:
		return h.onExecute(ctx, m)
	case *pgproto3.Describe:
		h.mu.Lock()
		if !h.skipping {
			if m.ObjectType == 'S' {
				st := h.stmts[m.Name]
				if st == nil {
					st = &prepared{name: m.Name} // unknown to us: PostgreSQL answers with an error
				}
				h.pushLocked(&expect{kind: expDescS, name: m.Name, stmt: st})
			} else {
				h.pushLocked(&expect{kind: expDescP, name: m.Name, portal: h.portals[m.Name]})
			}
		}
		h.mu.Unlock()
	case *pgproto3.Close:
		h.pol.Close(m.ObjectType, m.Name)
		h.mu.Lock()
		if m.ObjectType == 'S' {
			delete(h.stmts, m.Name)
		} else {
			delete(h.portals, m.Name)
		}
		if !h.skipping {
			h.pushLocked(&expect{kind: expClose})
		}
		h.mu.Unlock()
	case *pgproto3.Sync:
		h.mu.Lock()
		h.skipping = false
		h.pushLocked(&expect{kind: expSync})
		h.mu.Unlock()
	case *pgproto3.FunctionCall:
		if perr := h.recordingRefusal(); perr != nil {
			h.push(&expect{kind: expFunc})
			return pgwire.Verdict{Refuse: perr}
		}
		st := sqlpolicy.FunctionCall(m.Function)
		d := h.g.policy.Decide(h.groups, st)
		h.push(&expect{kind: expFunc})
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

func (h *hooks) push(e *expect) {
	h.mu.Lock()
	h.pushLocked(e)
	h.mu.Unlock()
}

// pushLocked appends e to the expectation FIFO (h.mu held). An empty FIFO
// starts again at the front of its backing array, so a session in the
// usual request/response rhythm appends without growing it.
func (h *hooks) pushLocked(e *expect) {
	if len(h.q) == 0 && h.qbuf != nil {
		h.q = h.qbuf[:0]
	}
	c := cap(h.q)
	h.q = append(h.q, e)
	if cap(h.q) != c { // a new backing array
		h.qbuf = h.q[:0]
	}
}

// popLocked removes the first n expectations (h.mu held), clearing their
// slots so that a finished statement's run and rows are not kept alive.
func (h *hooks) popLocked(n int) {
	for i := 0; i < n; i++ {
		h.q[i] = nil
	}
	h.q = h.q[n:]
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
	// With masking.derived: mask and without deny_predicates, CheckQuery
	// refuses only statements that write values read from masked columns
	// (INSERT/UPDATE ... SELECT, SELECT INTO, CREATE TABLE AS). The
	// classifier walks the whole tree and reports the strongest action, so
	// a statement whose strongest action is read or search contains none of
	// those: skip the second parse its trace costs (make bench: ~20% of
	// pgwarden's CPU on pgbench -S -M simple, where every query text is new).
	writesOnly := h.g.cfg.Masking.Derived == "mask" && !h.g.cfg.Masking.DenyPredicates
	for _, st := range stmts {
		if writesOnly && (st.Action == sqlpolicy.ActionRead || st.Action == sqlpolicy.ActionSearch) &&
			st.Prepare == nil && st.Execute == "" && st.Cursor == "" {
			continue
		}
		if perr := h.g.masker.CheckQuery(st.SQL, h.unmask); perr != nil {
			return perr
		}
		// A COPY the masker refuses (binary format) is refused before it
		// runs: refused at CopyOutResponse it could only end the session.
		if st.Action == sqlpolicy.ActionExport && !h.unmask && h.g.maskActive {
			if _, err := h.g.masker.PlanCopy(ctx, st.SQL); err != nil {
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
		h.push(&expect{kind: expQuery})
		return pgwire.Verdict{Refuse: perr}
	}
	an, _ := h.g.classifier.Classify(sql) // unparseable: one admin statement (fail closed)
	stmts := h.pol.Resolve(an)
	d := h.g.policy.Evaluate(ctx, h.groups, stmts, nil, estimator{h})
	actions := actionStrings(d.Actions, len(stmts))
	if len(actions) != len(stmts) {
		actions = stmtActions(stmts)
	}
	refuse := func(perr *pgerr.Error) pgwire.Verdict {
		h.push(&expect{kind: expQuery})
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
			h.push(&expect{kind: expQuery})
			return pgwire.Verdict{Refuse: perr}
		}
		decision, approvalID = "approved", id
	}
	h.pol.Apply(stmts)
	now := time.Now()
	runs := make([]*run, len(stmts))
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
		runs[i] = &run{sql: st.SQL, full: sql, idx: i, actions: []string{actions[i]}, decision: decision, approval: approvalID, start: now}
		if ms := h.maskSQLFor(st); ms != "" {
			runs[i].full, runs[i].idx = ms, 0 // EXECUTE: trace the prepared statement
		}
	}
	h.push(&expect{kind: expQuery, runs: runs})
	return pgwire.Verdict{}
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
	an, _ := h.pol.Parse(m.Name, m.Query)
	// A Parse of SQL-level EXECUTE/PREPARE/DEALLOCATE (some drivers send
	// every statement through Parse): EXECUTE is what its prepared statement does.
	stmts := h.pol.Resolve(an)
	p := &prepared{name: m.Name, sql: m.Query, actions: stmtActions(stmts), paramOIDs: append([]uint32(nil), m.ParameterOIDs...)}
	// Decided now with the unrefined statements; the planner estimate
	// (bulk_delete) and approvals wait for Execute and its parameters.
	d := h.g.policy.DecideAll(h.groups, stmts)
	perr := d.Err
	if d.Allowed {
		perr = h.maskRefusal(ctx, stmts)
	}
	if !d.Allowed || perr != nil {
		h.recordRefusal(m.Query, nil, p.actions, "deny", perr)
		h.pol.Close('S', m.Name)
		return pgwire.Verdict{Refuse: perr}
	}
	for _, st := range stmts {
		if st.NeedsEstimate {
			p.deferred = true
		}
		if st.IsDDL {
			h.mu.Lock()
			h.ddlSeen = true
			h.mu.Unlock()
		}
	}
	p.deferred = p.deferred || d.NeedsApproval
	h.pol.Apply(stmts) // a PREPARE/DEALLOCATE sent through Parse
	if len(stmts) == 1 {
		p.maskSQL = h.maskSQLFor(stmts[0])
	}
	h.mu.Lock()
	h.stmts[m.Name] = p
	if !h.skipping {
		h.pushLocked(&expect{kind: expParse, name: m.Name, stmt: p})
	}
	h.mu.Unlock()
	return pgwire.Verdict{}
}

func (h *hooks) onBind(m *pgproto3.Bind) pgwire.Verdict {
	h.pol.Bind(m.DestinationPortal, m.PreparedStatement)
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stmts[m.PreparedStatement]
	if st == nil {
		st = &prepared{name: m.PreparedStatement} // PostgreSQL will refuse it
	}
	pt := &portal{name: m.DestinationPortal, stmt: st, params: h.textParams(m, st.paramOIDs), formats: append([]int16(nil), m.ResultFormatCodes...)}
	h.portals[m.DestinationPortal] = pt
	if !h.skipping {
		h.pushLocked(&expect{kind: expBind, name: m.DestinationPortal, portal: pt})
	}
	return pgwire.Verdict{}
}

// textParams copies bind parameters out of the reused message buffer, in
// text form: binary values of a known parameter type (from Parse or the
// server's ParameterDescription) are decoded and re-encoded as text, so the
// planner estimate and approvers see the value; others become \x hex.
// nil is SQL NULL.
func (h *hooks) textParams(m *pgproto3.Bind, oids []uint32) []*string {
	out := make([]*string, len(m.Parameters))
	for i, v := range m.Parameters {
		if v == nil {
			continue
		}
		var s string
		if formatOf(m.ParameterFormatCodes, i) == 1 {
			var ok bool
			if i < len(oids) && oids[i] != 0 {
				s, ok = h.binaryToText(oids[i], v)
			}
			if !ok {
				s = `\x` + hex.EncodeToString(v)
			}
		} else {
			s = string(v)
		}
		out[i] = &s
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
	h.mu.Lock()
	pt := h.portals[m.Portal]
	skipping := h.skipping
	h.mu.Unlock()
	if skipping {
		return pgwire.Verdict{}
	}
	// A statement prepared while the store was healthy runs here without a
	// new Parse: check again (fail closed).
	if perr := h.recordingRefusal(); perr != nil {
		return pgwire.Verdict{Refuse: perr}
	}
	r := &run{decision: "allow", start: time.Now()}
	if pt != nil && pt.stmt != nil {
		r.sql, r.full, r.params, r.actions = pt.stmt.sql, pt.stmt.traceSQL(), pt.params, pt.stmt.actions
		if pt.stmt.deferred {
			st, _ := h.pol.Portal(m.Portal)
			stmts := h.pol.Resolve(&sqlpolicy.Analysis{Statements: []sqlpolicy.Statement{st}})
			d := h.g.policy.Evaluate(ctx, h.groups, stmts, plainParams(pt.params), estimator{h})
			r.actions = actionStrings(d.Actions, 1)
			if !d.Allowed {
				h.recordRefusal(pt.stmt.sql, pt.params, r.actions, "deny", d.Err)
				return pgwire.Verdict{Refuse: d.Err}
			}
			if d.NeedsApproval {
				id, perr := h.hold(ctx, pt.stmt.sql, pt.params, r.actions, d)
				if perr != nil {
					return pgwire.Verdict{Refuse: perr}
				}
				r.decision, r.approval = "approved", id
			}
		}
	}
	h.push(&expect{kind: expExecute, name: m.Portal, run: r, portal: pt})
	return pgwire.Verdict{}
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
	if mgr.Mode() == "retry" {
		if a, ok := mgr.Claim(user, h.info.Database, norm, pp); ok {
			return a.ID, nil
		}
	}
	a, err := mgr.Hold(ctx, approvals.Request{
		Requester: user, Groups: h.groups, Session: h.info.ID, Database: h.info.Database,
		SQL: sql, NormSQL: norm, Params: pp, Action: string(d.Action), EstimateRows: est, Reason: reason,
	})
	if err != nil {
		perr, ok := pgerr.As(err)
		if !ok {
			perr = pgerr.New(pgerr.InsufficientPrivilege, "pgwarden: statement needs approval but the request could not be stored").WithCause(err)
		}
		h.recordRefusal(sql, params, actions, "deny", perr)
		return "", perr
	}
	h.recordStatement(sessions.StatementEvent{SQL: sql, Params: params, Actions: actions, Decision: "hold", ApprovalID: a.ID})
	if mgr.Mode() == "retry" {
		return "", approvals.RetryError(a, mgr.Timeout())
	}
	if err := h.s.Notice(approvals.HeldNotice(a)); err != nil {
		return "", pgerr.New(pgerr.QueryCanceled, "pgwarden: client gone while statement was held").WithCause(err)
	}
	// Only the client's CancelRequest withdraws the request; the session
	// ending (client gone, gateway stopping) expires it instead.
	wctx, wcancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(context.Cause(ctx), pgwire.ErrCancelRequest) {
			wcancel()
		} else {
			mgr.SessionEnded(h.info.ID)
		}
	})
	out, err := mgr.Wait(wctx, a.ID)
	stop()
	wcancel()
	if err != nil && out.State == "" {
		return "", pgerr.New(pgerr.QueryCanceled, "pgwarden: approval %s could not be awaited", a.ID).WithCause(err)
	}
	if perr := out.Err(); perr != nil {
		h.recordStatement(sessions.StatementEvent{SQL: sql, Params: params, Actions: actions, Decision: "denied", ApprovalID: a.ID, Error: perr.Message})
		return "", perr
	}
	if err := mgr.MarkExecuted(a.ID); err != nil {
		return "", pgerr.New(pgerr.QueryCanceled, "pgwarden: approval %s was already used", a.ID).WithCause(err)
	}
	return a.ID, nil
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

// estimator asks the planner on the user's own session.
type estimator struct{ h *hooks }

func (e estimator) EstimateRows(ctx context.Context, sql string, params []string) (float64, error) {
	args := make([]string, len(params))
	copy(args, params)
	rows, err := e.h.s.Query(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return 0, errors.New("empty EXPLAIN output")
	}
	return sqlpolicy.ParseExplainRows([]byte(rows[0][0]))
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
			return h.g.maskActive && !h.unmask
		}
		return r.plan != nil || (h.recording && r.rows.Len() < h.maxRows)
	case 'd': // CopyData (out): only while a COPY TO plan masks something
		return h.active != nil && h.active.copyPlan != nil
	case 'c', 'W', 'v': // CopyDone, CopyBothResponse, NegotiateProtocolVersion
		return false
	}
	return true
}

func (h *hooks) head() *expect {
	if len(h.q) == 0 {
		return nil
	}
	return h.q[0]
}

func (h *hooks) popKind(kinds ...expectKind) *expect {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.head()
	if e == nil {
		return nil
	}
	for _, k := range kinds {
		if e.kind == k {
			h.popLocked(1)
			return e
		}
	}
	return nil
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
	case *pgproto3.ParseComplete:
		h.popKind(expParse)
	case *pgproto3.BindComplete:
		h.popKind(expBind)
	case *pgproto3.CloseComplete:
		h.popKind(expClose)
	case *pgproto3.ParameterDescription:
		h.mu.Lock()
		if e := h.head(); e != nil && e.kind == expDescS && e.stmt != nil {
			e.stmt.paramOIDs = append([]uint32(nil), m.ParameterOIDs...)
		}
		h.mu.Unlock()
	case *pgproto3.NoData:
		h.popKind(expDescS, expDescP)
	// The relay forwards the original bytes when OnServer returns msg
	// itself: a masked message must be a new one.
	case *pgproto3.ErrorResponse:
		masked := *m
		h.g.masker.MaskError(&masked)
		h.onError(&masked) // the record gets the masked text, unmask or not
		if !h.unmask {
			return &masked, nil
		}
	case *pgproto3.NoticeResponse:
		if !h.unmask {
			masked := *m
			h.g.masker.MaskNotice(&masked)
			return &masked, nil
		}
	case *pgproto3.NotificationResponse:
		if !h.unmask {
			masked := *m
			h.g.masker.MaskNotification(&masked)
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
	h.mu.Lock()
	e := h.head()
	h.mu.Unlock()
	if e != nil && e.kind == expExecute && e.run != nil {
		h.activate(e.run, e.portal)
	}
}

// activate makes r the run whose rows stream next, with the row description
// of its portal (Describe P) or statement (Describe S / Parse).
func (h *hooks) activate(r *run, pt *portal) {
	h.active = r
	if pt == nil {
		return
	}
	rd := pt.rd
	formats := pt.formats
	if rd == nil && pt.stmt != nil {
		rd = pt.stmt.rd
	}
	if rd == nil {
		return
	}
	r.described = true
	r.columns, r.plan, r.recPlan, r.formats = rd.columns, rd.plan, rd.recPlan, formats
}

// catalogGeneration changes whenever the masking catalog cache is dropped
// (DDL through the gateway, or expiry): cached row descriptions die with it.
func (g *Gateway) catalogGeneration() uint64 {
	if g.pgCatalog == nil {
		return 0
	}
	return g.pgCatalog.Generation()
}

func (h *hooks) describe(m *pgproto3.RowDescription, sql string, idx int) (*rowDesc, error) {
	rd := &rowDesc{columns: make([]string, len(m.Fields))}
	for i, f := range m.Fields {
		rd.columns[i] = string(f.Name)
	}
	q := &masking.Query{SQL: sql, Stmt: idx}
	planFn := h.g.masker.Plan
	if h.unmask {
		planFn = h.g.masker.PlanRecord // only for the record: never refuses (derived: deny)
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
	h.mu.Lock()
	e := h.head()
	h.mu.Unlock()
	if e == nil {
		return pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: unexpected row description from the server; session closed")
	}
	switch e.kind {
	case expDescS, expDescP:
		st := e.stmt
		if st == nil && e.portal != nil {
			st = e.portal.stmt
		}
		sql := ""
		if st != nil {
			sql = st.traceSQL()
		}
		gen := h.g.catalogGeneration()
		var rd *rowDesc
		if st != nil && st.lastRD.matches(m, gen) {
			rd = st.lastRD.rd // same description, same catalog: the plans describe would build again
		} else {
			var err error
			if rd, err = h.describe(m, sql, 0); err != nil {
				return err
			}
			if st != nil {
				st.lastRD = newRDCache(m, gen, rd)
			}
		}
		if e.kind == expDescS && e.stmt != nil {
			e.stmt.rd = rd
		} else if e.portal != nil {
			e.portal.rd = rd
		}
		h.popKind(expDescS, expDescP)
	case expQuery:
		if e.cur >= len(e.runs) {
			return pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: more results than statements; session closed")
		}
		r := e.runs[e.cur]
		rd, err := h.describe(m, r.full, r.idx)
		if err != nil {
			return err
		}
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

func (h *hooks) onDataRow(m *pgproto3.DataRow) (pgproto3.BackendMessage, error) {
	r := h.active
	if r == nil || !r.described {
		if h.g.maskActive && !h.unmask {
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

// maskSQLFor is the SQL masking must trace for a resolved EXECUTE: the
// PREPARE of its prepared statement ("" when st is no EXECUTE or unknown:
// masking then treats expression columns as unknown and masks them).
func (h *hooks) maskSQLFor(st sqlpolicy.Statement) string {
	if st.Execute == "" {
		return ""
	}
	if p, ok := h.pol.Lookup(st.Execute); ok {
		return p.SQL
	}
	return ""
}

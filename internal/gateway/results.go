package gateway

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/pgwire"
	"github.com/pgwarden/pgwarden/sessions"
)

// finish closes the statement whose result just completed and records it
// (the tracker moves on after OnServer).
func (h *hooks) finish(tag []byte, errText string) {
	h.active = nil
	if r := h.answering(h.tr.Head()); r != nil {
		h.recordRun(r, tag, errText)
	}
}

// answering is the run whose result request e is receiving now.
func (h *hooks) answering(e *pgwire.Request) *run {
	if e == nil {
		return nil
	}
	switch e.Kind {
	case pgwire.ReqQuery:
		if e.Cur < len(e.Statements) {
			r, _ := e.Statements[e.Cur].Data.(*run)
			return r
		}
	case pgwire.ReqExecute:
		r, _ := e.Data.(*run)
		return r
	}
	return nil
}

func (h *hooks) recordRun(r *run, tag []byte, errText string) {
	if h.rec == nil {
		return
	}
	total := rowsFromTag(tag)
	if total < 0 {
		total = int64(r.rows.Len())
	}
	h.recordStatement(sessions.StatementEvent{
		SQL: r.sql, Params: r.params, Actions: r.actions, Decision: r.decision,
		Columns: r.columns, Rows: r.rows, RowsTotal: total,
		Duration: time.Since(r.start), Error: errText, ApprovalID: r.approval,
	})
	putRows(r.rows) // written (or dropped): the recorder keeps nothing of it
	r.rows = nil
	if r.approval != "" {
		h.recordApproval(sessions.ApprovalEvent{ID: r.approval, State: "executed", SQL: r.sql, Actions: r.actions})
	}
}

// rowsFromTag extracts the row count of a command tag ("SELECT 5",
// "INSERT 0 3", "COPY 10"); -1 when the tag has none.
func rowsFromTag(tag []byte) int64 {
	i := bytes.LastIndexByte(tag, ' ')
	if i < 0 {
		return -1
	}
	n, err := strconv.ParseInt(string(tag[i+1:]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// onError accounts for an ErrorResponse: in a simple Query the remaining
// statements do not run; in the extended protocol PostgreSQL skips every
// message until Sync (the tracker drops them after OnServer): the first
// Execute among them is the statement that failed.
func (h *hooks) onError(m *pgproto3.ErrorResponse) {
	failed := h.failedRun()
	h.active = nil
	if failed != nil {
		h.recordRun(failed, nil, m.Severity+" "+m.Code+": "+m.Message)
	}
}

// failedRun is the statement an ErrorResponse (or NoticeResponse) the
// server sends now belongs to, or nil (a Parse or Bind, outside any).
func (h *hooks) failedRun() *run {
	e := h.tr.Head()
	var failed *run
	switch {
	case e == nil:
	case e.Kind == pgwire.ReqQuery || e.Kind == pgwire.ReqFunctionCall:
		failed = h.answering(e)
	default:
		h.tr.Skipped(func(r *pgwire.Request) {
			if failed == nil && r.Kind == pgwire.ReqExecute {
				failed, _ = r.Data.(*run)
			}
		})
	}
	return failed
}

// withholdText: the text of an error or notice raised by r may not reach a
// session without unmask, because r reads masked data (a cast error quotes
// the value it could not cast, a RAISE may print one). Detectors are a
// last net, not a mechanism.
func (h *hooks) withholdText(r *run) bool {
	if h.unmask || !h.p.maskActive || r == nil {
		return false
	}
	sql, idx := r.full, r.idx
	if sql == "" {
		sql, idx = r.sql, 0
	}
	if r.execName != "" { // EXECUTE: the prepared statement the server runs now
		sql, idx = "", 0
		if t := h.tr.Statement(r.execName); t != nil {
			sql = t.SQL
		}
	}
	if sql == "" {
		return true // nothing known of the statement: fail closed
	}
	return h.v.masker.ReadsMasked(context.Background(), &masking.Query{SQL: sql, Stmt: idx, Funcs: h.srvFuncs.Load()})
}

// withheldText replaces an error's or notice's message; the SQLSTATE,
// severity and position stay, so clients and tools still see what kind of
// error it was.
const withheldText = "pgwarden: %s text withheld: the statement reads masked data (SQLSTATE %s)"

func withholdError(m *pgproto3.ErrorResponse) {
	m.Message = fmt.Sprintf(withheldText, "error", m.Code)
	m.Detail, m.Hint, m.Where, m.InternalQuery, m.InternalPosition = "", "", "", "", 0
	m.SchemaName, m.TableName, m.ColumnName, m.DataTypeName, m.ConstraintName = "", "", "", "", ""
	m.UnknownFields = nil
}

func withholdNotice(m *pgproto3.NoticeResponse) {
	m.Message = fmt.Sprintf(withheldText, "notice", m.Code)
	m.Detail, m.Hint, m.Where, m.InternalQuery, m.InternalPosition = "", "", "", "", 0
	m.SchemaName, m.TableName, m.ColumnName, m.DataTypeName, m.ConstraintName = "", "", "", "", ""
	m.UnknownFields = nil
}

// onReady accounts for a ReadyForQuery. An error means the client must not
// get it: an event of the statements it ends could not be written.
func (h *hooks) onReady() error {
	if h.rec != nil && h.unflushed.Swap(false) {
		// Before the client learns its statement is done, the record of it is
		// written (write(2): it survives a kill -9 of the gateway). The
		// recording calls wrote it (and logged a failure); if one failed,
		// fail closed: end the session instead of telling the client its
		// unrecorded statement is done (unless recording.fail_open).
		if err := h.rec.Written(); err != nil && !h.g.recorder.FailOpen() {
			return pgerr.Fatal(pgerr.UnableToConnect, "pgwarden: session recording unavailable; the last statement's record could not be written; session closed").WithCause(err)
		}
	}
	h.mu.Lock()
	ddl := h.ddlSeen
	h.ddlSeen = false
	h.mu.Unlock()
	h.active = nil
	if ddl {
		h.p.functions.Invalidate() // CREATE/ALTER/DROP FUNCTION, CREATE EXTENSION
		h.v.invalidate()
	}
	return nil
}

func (h *hooks) onCopyOut(m *pgproto3.CopyOutResponse) (pgproto3.BackendMessage, error) {
	r := h.answering(h.tr.Head())
	if r == nil {
		if h.p.maskActive && !h.unmask {
			return nil, pgerr.Fatal(pgerr.ProtocolViolation, "pgwarden: COPY out of protocol order cannot be masked; session closed")
		}
		return m, nil
	}
	h.active = r
	if h.unmask {
		return m, nil
	}
	cp, err := h.v.masker.PlanCopy(context.Background(), r.sql)
	if err != nil {
		return nil, err // *pgerr.Error: e.g. binary COPY of masked columns
	}
	r.copyPlan = cp
	return m, nil
}

func (h *hooks) Close(reason string, err error) {
	if h.g.approvals != nil {
		h.g.approvals.SessionEnded(h.info.ID)
	}
	if h.rec != nil {
		_ = h.rec.End(reason)
	}
	h.g.liveMu.Lock()
	if h.g.live[h.info.ID] == h {
		delete(h.g.live, h.info.ID)
	}
	h.g.liveMu.Unlock()
	if h.done != nil {
		close(h.done)
	}
}

// ---- recording helpers -----------------------------------------------------

func (h *hooks) recordStatement(ev sessions.StatementEvent) {
	if h.rec == nil {
		return
	}
	h.unflushed.Store(true)
	if err := h.rec.Statement(ev); err != nil {
		h.g.log.Error().Err(err).Str("session", h.info.ID).Msg("recording a statement failed")
	}
}

func (h *hooks) recordRefusal(sql string, params []*string, actions []string, decision string, perr *pgerr.Error) {
	h.recordStatement(sessions.StatementEvent{SQL: sql, Params: params, Actions: actions, Decision: decision, Error: perr.Message})
}

// recordApproval records an approval state change in this session (from
// either goroutine, or the approvals manager's); the next ReadyForQuery
// waits until it is written.
func (h *hooks) recordApproval(ev sessions.ApprovalEvent) {
	if h.rec == nil {
		return
	}
	h.unflushed.Store(true)
	if err := h.rec.Approval(ev); err != nil {
		h.g.log.Error().Err(err).Str("session", h.info.ID).Msg("recording an approval event failed")
	}
}

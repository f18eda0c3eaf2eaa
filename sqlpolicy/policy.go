package sqlpolicy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Policy maps groups to the actions they may take. It is immutable after
// NewPolicy and safe for concurrent use.
type Policy struct {
	roles    map[string]roleEntry
	approval actionSet
	bulkRows float64
}

type roleEntry struct {
	actions actionSet
	dbRole  string
	unmask  bool
}

// NewPolicy builds a Policy from the (validated) configuration. Unknown
// action names grant nothing.
func NewPolicy(cfg config.Policy) *Policy {
	p := &Policy{roles: make(map[string]roleEntry, len(cfg.Roles)), bulkRows: float64(cfg.Approval.BulkRows)}
	for g, r := range cfg.Roles {
		var s actionSet
		for _, a := range r.Actions {
			if a == All {
				s = allActions
				continue
			}
			if act, ok := ParseAction(a); ok {
				s = s.with(act)
			}
		}
		p.roles[g] = roleEntry{actions: s, dbRole: r.DBRole, unmask: r.Unmask}
	}
	for _, a := range cfg.Approval.Actions {
		if act, ok := ParseAction(a); ok {
			p.approval = p.approval.with(act)
		}
	}
	p.approval &^= setOf(ActionSession) // session statements are always allowed
	return p
}

// Decision is the policy's answer for a statement (or a query string).
type Decision struct {
	Allowed bool // every action needed is granted to one of the groups
	// NeedsApproval: allowed, but an action is in policy.approval.actions,
	// so the statement must be held for a second person.
	NeedsApproval bool
	Action        Action // the action that decided: the denied one, else the one needing approval, else the strongest
	Statement     int    // index of the statement that decided (DecideAll, Evaluate)
	// Actions holds the effective action of each statement (DecideAll,
	// Evaluate) — for the session record.
	Actions []Action
	// EstimateRows is the planner's estimate when one was asked for, else -1.
	EstimateRows float64
	Err          *pgerr.Error // 42501 when !Allowed
}

func (p *Policy) granted(groups []string) actionSet {
	s := setOf(ActionSession)
	for _, g := range groups {
		if r, ok := p.roles[g]; ok {
			s |= r.actions
		}
	}
	return s
}

// required returns the actions st needs.
func (st *Statement) required() []Action {
	if len(st.Requires) > 0 {
		return st.Requires
	}
	if st.Action == "" {
		return []Action{ActionAdmin}
	}
	return []Action{st.Action}
}

// Decide decides one statement for a user in groups (the union of the
// groups' actions; "all" allows every action; session is always allowed).
func (p *Policy) Decide(groups []string, st Statement) Decision {
	g := p.granted(groups)
	d := Decision{Allowed: true, Action: st.Action, EstimateRows: -1}
	if d.Action == "" {
		d.Action = ActionAdmin
	}
	for _, a := range st.required() {
		if !g.has(a) {
			d.Allowed, d.Action = false, a
			d.Err = denyError(a, groups, st)
			return d
		}
	}
	for _, a := range st.required() {
		if p.approval.has(a) {
			d.NeedsApproval, d.Action = true, a
			break
		}
	}
	return d
}

// DecideAll decides a whole query string: every statement must be
// allowed; the first denied statement denies the string (and names itself
// in the message). It needs approval when any statement does.
func (p *Policy) DecideAll(groups []string, stmts []Statement) Decision {
	d := Decision{Allowed: true, Action: ActionSession, EstimateRows: -1, Actions: make([]Action, len(stmts))}
	strongest := -1
	for i := range stmts {
		sd := p.Decide(groups, stmts[i])
		d.Actions[i] = stmts[i].Action
		if !sd.Allowed {
			sd.Actions, sd.Statement = d.Actions, i
			for j := i + 1; j < len(stmts); j++ {
				sd.Actions[j] = stmts[j].Action
			}
			return sd
		}
		if sd.NeedsApproval && !d.NeedsApproval {
			d.NeedsApproval, d.Action, d.Statement = true, sd.Action, i
		}
		if !d.NeedsApproval && sd.Action.rank() > strongest {
			strongest, d.Action, d.Statement = sd.Action.rank(), sd.Action, i
		}
	}
	return d
}

// Estimator asks the planner how many rows a statement would touch. The
// glue implements it with EXPLAIN (FORMAT JSON) on the user's own upstream
// session with the same parameters (see QueryEstimator).
type Estimator interface {
	EstimateRows(ctx context.Context, sql string, params []string) (float64, error)
}

// Refine returns the statement's action after asking the planner: a
// DELETE/UPDATE (st.NeedsEstimate) whose estimate exceeds
// policy.approval.bulk_rows is bulk_delete. An estimation error fails
// closed (bulk_delete, with the error for the log).
func (p *Policy) Refine(ctx context.Context, st Statement, params []string, est Estimator) (Action, error) {
	r, _, err := p.refine(ctx, st, params, est)
	return r.Action, err
}

func (p *Policy) refine(ctx context.Context, st Statement, params []string, est Estimator) (Statement, float64, error) {
	if !st.NeedsEstimate {
		return st, -1, nil
	}
	if est == nil {
		return asBulk(st, "no planner estimate available: fail closed"), -1, errors.New("sqlpolicy: no estimator")
	}
	rows, err := est.EstimateRows(ctx, st.SQL, params)
	if err != nil {
		return asBulk(st, "the planner estimate failed: fail closed"), -1, err
	}
	if rows > p.bulkRows {
		return asBulk(st, fmt.Sprintf("the planner estimates %.0f rows, more than bulk_rows %.0f", rows, p.bulkRows)), rows, nil
	}
	return st, rows, nil
}

// asBulk returns st with its delete/update requirements replaced by
// bulk_delete.
func asBulk(st Statement, why string) Statement {
	var s actionSet
	for _, a := range st.required() {
		if a == ActionDelete || a == ActionUpdate {
			a = ActionBulkDelete
		}
		s = s.with(a)
	}
	st.Requires = s.list()
	st.Action = s.strongest()
	if st.Action == ActionBulkDelete {
		st.Reason = why
	}
	st.NeedsEstimate = false
	return st
}

// Evaluate is the one call the relay glue needs per client message: it
// refines the statements that need a planner estimate — only when the
// estimate can change the outcome for these groups — and decides them all.
// params are the Bind parameters (text) of an extended-protocol statement,
// nil for a simple Query.
func (p *Policy) Evaluate(ctx context.Context, groups []string, stmts []Statement, params []string, est Estimator) Decision {
	var refined []Statement
	estimate := -1.0
	for i := range stmts {
		st := stmts[i]
		if !st.NeedsEstimate {
			continue
		}
		small, big := p.Decide(groups, st), p.Decide(groups, asBulk(st, ""))
		if small.Allowed == big.Allowed && small.NeedsApproval == big.NeedsApproval {
			continue // the estimate cannot change the answer
		}
		r, rows, _ := p.refine(ctx, st, params, est)
		if refined == nil {
			refined = append([]Statement(nil), stmts...)
		}
		refined[i] = r
		if rows > estimate {
			estimate = rows
		}
	}
	if refined != nil {
		stmts = refined
	}
	d := p.DecideAll(groups, stmts)
	d.EstimateRows = estimate
	return d
}

// Unmask reports whether any of the groups may see unmasked values.
func (p *Policy) Unmask(groups []string) bool {
	for _, g := range groups {
		if p.roles[g].unmask {
			return true
		}
	}
	return false
}

// DBRoles returns the sorted, deduplicated db_role of the groups.
func (p *Policy) DBRoles(groups []string) []string {
	var out []string
	for _, g := range groups {
		r, ok := p.roles[g]
		if !ok || r.dbRole == "" {
			continue
		}
		out = append(out, r.dbRole)
	}
	sort.Strings(out)
	j := 0
	for i, r := range out {
		if i == 0 || r != out[j-1] {
			out[j] = r
			j++
		}
	}
	return out[:j]
}

// maxMessageSQL bounds the statement text quoted in a denial.
const maxMessageSQL = 160

func denyError(a Action, groups []string, st Statement) *pgerr.Error {
	e := pgerr.New(pgerr.InsufficientPrivilege, "action %s not allowed for groups [%s]: %s",
		a, strings.Join(groups, " "), messageSQL(st.SQL))
	if st.Reason != "" {
		e = e.WithDetail("%s", st.Reason)
	}
	return e
}

// messageSQL is the statement as quoted in messages: constants replaced by
// $n (so a password in ALTER ROLE or a dblink connection string never
// reaches a message or a log), truncated.
func messageSQL(sql string) string {
	norm, err := pg.Normalize(sql)
	if err != nil {
		norm, err = pg.NormalizeUtility(sql)
	}
	if err != nil {
		return "(statement not shown: it cannot be parsed)"
	}
	norm = strings.Join(strings.Fields(norm), " ")
	if len(norm) > maxMessageSQL {
		cut := maxMessageSQL
		for cut > 0 && !utf8.RuneStart(norm[cut]) {
			cut--
		}
		norm = norm[:cut] + "…"
	}
	return norm
}

// QueryEstimator implements Estimator with a function that runs one
// statement with text parameters on the user's own upstream session and
// returns text rows — the signature of pgwire.Session.Query.
type QueryEstimator func(ctx context.Context, sql string, args ...string) ([][]string, error)

// EstimateRows runs EXPLAIN (FORMAT JSON) of the statement.
func (q QueryEstimator) EstimateRows(ctx context.Context, sql string, params []string) (float64, error) {
	rows, err := q(ctx, "EXPLAIN (FORMAT JSON) "+sql, params...)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 {
		return 0, errors.New("sqlpolicy: EXPLAIN returned an unexpected shape")
	}
	return ParseExplainRows([]byte(rows[0][0]))
}

type explainNode struct {
	NodeType string         `json:"Node Type"`
	Rows     *float64       `json:"Plan Rows"`
	Parent   string         `json:"Parent Relationship"`
	Plans    []*explainNode `json:"Plans"`
}

// ParseExplainRows reads the output of EXPLAIN (FORMAT JSON) of a
// data-modifying statement and returns the rows its ModifyTable nodes
// would touch: for each, the larger of its own estimate and its input
// plan's (PostgreSQL reports 0 rows for a ModifyTable without RETURNING),
// summed over all of them (data-modifying CTEs). A plan without a
// ModifyTable node is an error (callers fail closed).
func ParseExplainRows(data []byte) (float64, error) {
	var out []struct {
		Plan *explainNode `json:"Plan"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("sqlpolicy: EXPLAIN output: %w", err)
	}
	if len(out) == 0 || out[0].Plan == nil {
		return 0, errors.New("sqlpolicy: EXPLAIN output has no plan")
	}
	total, found := 0.0, false
	var walk func(n *explainNode, depth int) error
	walk = func(n *explainNode, depth int) error {
		if depth > 1000 {
			return errors.New("sqlpolicy: EXPLAIN plan too deep")
		}
		if n.NodeType == "ModifyTable" {
			found = true
			rows := 0.0
			if n.Rows != nil {
				rows = *n.Rows
			}
			for _, c := range n.Plans {
				if c != nil && c.Rows != nil && (c.Parent == "Outer" || c.Parent == "") && *c.Rows > rows {
					rows = *c.Rows
				}
			}
			if rows < 0 || rows != rows {
				return errors.New("sqlpolicy: EXPLAIN plan has an invalid row estimate")
			}
			total += rows
		}
		for _, c := range n.Plans {
			if c != nil {
				if err := walk(c, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(out[0].Plan, 0); err != nil {
		return 0, err
	}
	if !found {
		return 0, errors.New("sqlpolicy: EXPLAIN plan has no ModifyTable node")
	}
	return total, nil
}

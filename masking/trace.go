package masking

import (
	"context"
	"strings"
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgwarden/pgwarden/internal/analysis"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Derived tracing: which output expressions of a statement read a masked
// column. It works on names from the parse tree (pg_query), resolving FROM
// items, aliases, subqueries, CTEs, set operations and views (through the
// catalog's view definitions). Whenever it cannot prove an expression
// clean, it reports it tainted (fail closed).

type level uint8

const (
	lvlClean level = iota
	lvlJSON        // reads only json_keys columns, through accessors that keep JSON shape
	lvlFull        // reads a masked value
)

type taint struct {
	lvl    level
	what   string // the first masked column it reads (for messages)
	direct *rule  // exactly one rule's column, unmodified
}

func (a taint) or(b taint) taint {
	r := a
	if b.lvl > r.lvl {
		r.lvl, r.what = b.lvl, b.what
	} else if r.what == "" {
		r.what = b.what
	}
	switch {
	case b.lvl == lvlClean && b.direct == nil:
		r.direct = a.direct
	case a.lvl == lvlClean && a.direct == nil:
		r.direct = b.direct
	case a.direct == b.direct:
		r.direct = a.direct
	default:
		r.direct = nil
	}
	return r
}

func (a taint) derived() taint {
	a.direct = nil
	return a
}

func (a taint) full() taint {
	a.direct = nil
	if a.lvl == lvlJSON {
		a.lvl = lvlFull
	}
	return a
}

type outCol struct {
	name string
	t    taint
	star *source // a star over a base relation: columns unknown
}

type source struct {
	alias         string
	schema, rel   string
	base          bool // a table (not view/subquery/CTE)
	cols          []outCol
	exact         bool  // cols is the complete list
	all           taint // any column when cols are unknown (functions in FROM)
	wholeOverride *taint
	e             *Engine
	ancestors     []string // "schema.table" parents of a base table
}

func (s *source) eng() *Engine { return s.e }

type scope struct {
	srcs   []*source
	parent *scope
	ctes   map[string]*cteDef
}

type cteDef struct {
	q        *pg.CommonTableExpr
	outs     []outCol
	exact    bool
	done     bool
	inFlight bool
}

type tracer struct {
	e      *Engine
	ctx    context.Context
	fs     *analysis.Functions // the closed world of functions (never nil)
	views  int                 // depth inside view definitions (predicates there are not the user's)
	depth  int                 // nesting of SQL text run by functions (query_to_xml)
	pred   taint
	write  taint // values written into tables (INSERT ... SELECT, UPDATE SET, CREATE TABLE AS)
	unsure bool
	// refusal is the first reason the statement cannot be made safe for a
	// group without unmask: a function that reads what the trace cannot
	// see, a masked value passed to a function that writes state.
	refusal *pgerr.Error
	// touched: some expression read a masked column or key (then the
	// statement's error and notice texts may carry masked values).
	touched bool
	// constRead: the trace looked at a constant's value (an ORDER BY
	// ordinal, a JSON key, a relation named by a string): a text that
	// differs only in constants may trace differently, so the shape cache
	// does not reuse this trace (TestConstReadsAreMarked in sqlpolicy
	// keeps every A_Const read behind readsConst).
	constRead bool
}

// readsConst marks the trace as depending on constant values.
func (t *tracer) readsConst() { t.constRead = true }

// defaultFuncs is the closed world when the glue passes none: the built-in
// PostgreSQL 15 + pgvector snapshot (every user-defined function unknown,
// so opaque).
var defaultFuncs = sync.OnceValue(func() *analysis.Functions {
	return analysis.BuiltinFunctions(analysis.Options{}, "")
})

func (t *tracer) refuse(err *pgerr.Error) {
	if t.refusal == nil {
		t.refusal = err
	}
}

// traceResult is the analysis of one SQL string.
type traceResult struct {
	stmts []stmtTrace
	all   bool // no SQL, or unparseable: every expression is suspect
	e     *Engine
	// constRead: some statement's trace looked at a constant's value.
	constRead bool
}

type stmtTrace struct {
	outs    []outCol
	exact   bool
	unsure  bool // EXECUTE/FETCH: outputs unknown
	pred    taint
	write   taint
	refusal *pgerr.Error
	touched bool
}

// readsMasked: the statement read a masked value somewhere (outputs,
// predicates, writes, function arguments) or cannot be traced.
func (st *stmtTrace) readsMasked() bool {
	if st.touched || st.unsure || st.refusal != nil || st.pred.lvl > lvlClean || st.write.lvl > lvlClean {
		return true
	}
	for _, o := range st.outs {
		if o.t.lvl > lvlClean {
			return true
		}
	}
	return false
}

func (e *Engine) traceQuery(ctx context.Context, q *Query) *traceResult {
	tr := &traceResult{e: e}
	if q == nil || q.SQL == "" {
		tr.all = true
		return tr
	}
	res, err := analysis.Parse(q.SQL)
	if err != nil {
		tr.all = true
		return tr
	}
	fs := q.Funcs
	if fs == nil {
		fs = defaultFuncs()
	}
	for _, rs := range res.Stmts {
		t := &tracer{e: e, ctx: ctx, fs: fs}
		outs, exact := t.stmt(rs.Stmt, nil)
		tr.stmts = append(tr.stmts, stmtTrace{outs: outs, exact: exact, unsure: t.unsure, pred: t.pred, write: t.write,
			refusal: t.refusal, touched: t.touched})
		tr.constRead = tr.constRead || t.constRead
	}
	return tr
}

// fieldTaint is the taint of expression field i (of n) named name.
func (tr *traceResult) fieldTaint(q *Query, i, n int, name []byte) taint {
	if tr.all {
		if tr.e.anyRules {
			return taint{lvl: lvlFull, what: "(statement not traced)"}
		}
		return taint{}
	}
	stmts := tr.stmts
	if q != nil && q.Stmt >= 0 && q.Stmt < len(stmts) {
		stmts = stmts[q.Stmt : q.Stmt+1]
	}
	if len(stmts) == 1 {
		st := stmts[0]
		if st.unsure {
			if tr.e.anyRules {
				return taint{lvl: lvlFull, what: "(EXECUTE/FETCH: statement not known)"}
			}
			return taint{}
		}
		if st.exact && len(st.outs) == n {
			return st.outs[i].t
		}
		var t taint
		found := false
		for _, o := range st.outs {
			if o.star == nil && strings.EqualFold(o.name, string(name)) {
				t, found = t.or(o.t), true
			}
		}
		if found {
			return t
		}
	}
	var t taint
	for _, st := range stmts {
		if st.unsure && tr.e.anyRules {
			return taint{lvl: lvlFull, what: "(EXECUTE/FETCH: statement not known)"}
		}
		for _, o := range st.outs {
			t = t.or(o.t.derived())
		}
	}
	return t
}

func (t *tracer) stmt(n *pg.Node, sc *scope) ([]outCol, bool) {
	if n == nil {
		return nil, true
	}
	switch x := n.Node.(type) {
	case *pg.Node_SelectStmt:
		outs, exact := t.selectStmt(x.SelectStmt, sc)
		if x.SelectStmt.IntoClause != nil {
			t.write = t.write.or(anyTaint(outs))
		}
		return outs, exact
	case *pg.Node_InsertStmt:
		s := x.InsertStmt
		sc = t.withScope(s.WithClause, sc)
		if s.SelectStmt != nil {
			outs, _ := t.stmt(s.SelectStmt, sc)
			t.write = t.write.or(anyTaint(outs))
		}
		inner := &scope{parent: sc}
		inner.srcs = append(inner.srcs, t.rangeVar(s.Relation, sc))
		if s.OnConflictClause != nil {
			t.walkGeneric(s.OnConflictClause.ProtoReflect(), inner, &t.write)
		}
		return t.targets(s.ReturningList, inner)
	case *pg.Node_UpdateStmt:
		s := x.UpdateStmt
		sc = t.withScope(s.WithClause, sc)
		inner := &scope{parent: sc}
		inner.srcs = append(inner.srcs, t.rangeVar(s.Relation, sc))
		t.from(s.FromClause, inner)
		for _, tl := range s.TargetList {
			if rt, ok := tl.Node.(*pg.Node_ResTarget); ok {
				t.write = t.write.or(t.expr(rt.ResTarget.Val, inner))
			}
		}
		t.predicate(s.WhereClause, inner)
		return t.targets(s.ReturningList, inner)
	case *pg.Node_DeleteStmt:
		s := x.DeleteStmt
		sc = t.withScope(s.WithClause, sc)
		inner := &scope{parent: sc}
		inner.srcs = append(inner.srcs, t.rangeVar(s.Relation, sc))
		t.from(s.UsingClause, inner)
		t.predicate(s.WhereClause, inner)
		return t.targets(s.ReturningList, inner)
	case *pg.Node_ExplainStmt:
		t.stmt(x.ExplainStmt.Query, sc)
		return []outCol{{name: "QUERY PLAN"}}, true
	case *pg.Node_CreateTableAsStmt:
		outs, _ := t.stmt(x.CreateTableAsStmt.Query, sc)
		t.write = t.write.or(anyTaint(outs))
		return nil, true
	case *pg.Node_DeclareCursorStmt:
		// its rows come later through FETCH (untraceable): the query's
		// columns are checked now (CheckQuery: derived: deny)
		return t.stmt(x.DeclareCursorStmt.Query, sc)
	case *pg.Node_PrepareStmt:
		return t.stmt(x.PrepareStmt.Query, sc) // likewise for EXECUTE
	case *pg.Node_ExecuteStmt, *pg.Node_FetchStmt:
		t.unsure = true
		return nil, false
	case *pg.Node_CopyStmt:
		c := x.CopyStmt
		if c.Query != nil {
			return t.stmt(c.Query, sc)
		}
		src := t.rangeVar(c.Relation, sc)
		sc2 := &scope{parent: sc, srcs: []*source{src}}
		t.predicate(c.WhereClause, sc2)
		if len(c.Attlist) == 0 {
			return src.expand(), src.exact
		}
		var outs []outCol
		for _, a := range c.Attlist {
			name := strVal(a)
			outs = append(outs, outCol{name: name, t: src.col(name)})
		}
		return outs, true
	case *pg.Node_CallStmt:
		// a procedure is a function call whose arguments may carry masked
		// values into its body (an unvouched user-defined procedure is
		// refused as opaque); its OUT parameters are not traced: masked
		if fc := x.CallStmt.Funccall; fc != nil {
			t.funcCall(fc, sc)
		}
		t.unsure = true
		return nil, false
	}
	// SHOW, SET, utility statements: no data columns.
	return nil, true
}

func anyTaint(outs []outCol) taint {
	var t taint
	for _, o := range outs {
		t = t.or(o.t)
	}
	return t.derived()
}

func (t *tracer) predicate(n *pg.Node, sc *scope) {
	if n == nil {
		return
	}
	p := t.expr(n, sc)
	if t.views == 0 {
		t.pred = t.pred.or(p.full())
	}
}

func (t *tracer) withScope(w *pg.WithClause, sc *scope) *scope {
	if w == nil || len(w.Ctes) == 0 {
		return sc
	}
	ns := &scope{parent: sc, ctes: map[string]*cteDef{}}
	for _, c := range w.Ctes {
		if cte, ok := c.Node.(*pg.Node_CommonTableExpr); ok {
			ns.ctes[strings.ToLower(cte.CommonTableExpr.Ctename)] = &cteDef{q: cte.CommonTableExpr}
		}
	}
	// Trace every CTE (data-modifying CTEs and predicates inside them count
	// even when the main query does not read them).
	for _, c := range w.Ctes {
		if cte, ok := c.Node.(*pg.Node_CommonTableExpr); ok {
			t.cte(ns, ns.ctes[strings.ToLower(cte.CommonTableExpr.Ctename)])
		}
	}
	return ns
}

func (t *tracer) cte(sc *scope, d *cteDef) {
	if d.done || d.inFlight {
		return
	}
	d.inFlight = true
	outs, exact := t.stmt(d.q.Ctequery, sc)
	rename := func() {
		for i, a := range d.q.Aliascolnames {
			if i < len(outs) {
				outs[i].name = strVal(a)
			}
		}
	}
	rename()
	if selfReferencing(d) {
		// Trace again with the self-reference carrying the last pass's
		// taint until no column's taint grows (a fixed point: a recursive
		// term may rotate a value across columns one step per pass). Taint
		// only grows and has three levels, so 2*columns+2 passes reach it;
		// if not, every column is taken as masked (fail closed).
		converged := false
		for pass := 0; pass < 2*len(outs)+2; pass++ {
			d.outs, d.exact = outs, exact
			next, nexact := t.stmt(d.q.Ctequery, sc)
			for i, a := range d.q.Aliascolnames {
				if i < len(next) {
					next[i].name = strVal(a)
				}
			}
			grew := len(next) != len(outs)
			if !grew {
				for i := range next {
					j := next[i].t.or(outs[i].t)
					if j.lvl != outs[i].t.lvl || j.direct != outs[i].t.direct {
						grew = true
					}
					next[i].t = j
				}
			}
			outs, exact = next, nexact
			if !grew {
				converged = true
				break
			}
		}
		if !converged {
			all := anyTaint(outs).or(taint{lvl: lvlFull, what: "(recursive query not traced)"})
			for i := range outs {
				outs[i].t = all
			}
		}
	}
	d.outs, d.exact, d.done, d.inFlight = outs, exact, true, false
}

// selfReferencing: a recursive CTE (WITH RECURSIVE marks every CTE of the
// clause; re-tracing a non-recursive one is merely redundant).
func selfReferencing(d *cteDef) bool {
	s, ok := d.q.Ctequery.GetNode().(*pg.Node_SelectStmt)
	return ok && s.SelectStmt.Op != pg.SetOperation_SETOP_NONE && s.SelectStmt.Op != pg.SetOperation_SET_OPERATION_UNDEFINED
}

func (sc *scope) findCTE(name string) (*scope, *cteDef) {
	for s := sc; s != nil; s = s.parent {
		if d, ok := s.ctes[name]; ok {
			return s, d
		}
	}
	return nil, nil
}

func (t *tracer) selectStmt(s *pg.SelectStmt, sc *scope) ([]outCol, bool) {
	if s == nil {
		return nil, true
	}
	sc = t.withScope(s.WithClause, sc)
	if s.Op != pg.SetOperation_SETOP_NONE && s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		l, le := t.selectStmt(s.Larg, sc)
		r, re := t.selectStmt(s.Rarg, sc)
		out := make([]outCol, len(l))
		copy(out, l)
		if !le || !re || len(l) != len(r) {
			all := anyTaint(l).or(anyTaint(r))
			for i := range out {
				out[i] = outCol{name: out[i].name, t: all}
			}
			return out, le && re
		}
		for i := range out {
			out[i].star = nil
			out[i].t = l[i].t.or(r[i].t)
		}
		inner := &scope{parent: sc}
		t.sorts(s.SortClause, inner, out)
		return out, true
	}
	if len(s.ValuesLists) > 0 {
		var out []outCol
		for _, row := range s.ValuesLists {
			l, ok := row.Node.(*pg.Node_List)
			if !ok {
				continue
			}
			for i, it := range l.List.Items {
				tt := t.expr(it, sc)
				if i >= len(out) {
					out = append(out, outCol{name: "column" + itoa(i+1)})
				}
				out[i].t = out[i].t.or(tt)
			}
		}
		return out, true
	}
	inner := &scope{parent: sc}
	t.from(s.FromClause, inner)
	t.predicate(s.WhereClause, inner)
	t.predicate(s.HavingClause, inner)
	for _, w := range s.WindowClause {
		t.predicate(w, inner)
	}
	outs, exact := t.targets(s.TargetList, inner)
	t.sorts(s.SortClause, inner, outs)
	for _, d := range s.DistinctClause {
		if d != nil {
			t.predicate(d, inner)
		}
	}
	return outs, exact
}

func (t *tracer) sorts(list []*pg.Node, sc *scope, outs []outCol) {
	for _, n := range list {
		sb, ok := n.Node.(*pg.Node_SortBy)
		if !ok {
			t.predicate(n, sc)
			continue
		}
		e := sb.SortBy.Node
		if _, isConst := e.GetNode().(*pg.Node_AConst); !isConst {
			// not a constant: no ordinal, and nothing to mark
		} else if k, ok := t.ordinal(e); ok {
			k--
			if k >= 0 && k < len(outs) && t.views == 0 {
				t.pred = t.pred.or(outs[k].t.full())
			}
			continue
		}
		if cr, ok := e.GetNode().(*pg.Node_ColumnRef); ok && len(cr.ColumnRef.Fields) == 1 {
			name := strVal(cr.ColumnRef.Fields[0])
			for _, o := range outs {
				if o.star == nil && strings.EqualFold(o.name, name) && t.views == 0 {
					t.pred = t.pred.or(o.t.full())
				}
			}
		}
		t.predicate(e, sc)
	}
}

func (t *tracer) targets(list []*pg.Node, sc *scope) ([]outCol, bool) {
	var outs []outCol
	exact := true
	for _, n := range list {
		rt, ok := n.Node.(*pg.Node_ResTarget)
		if !ok {
			continue
		}
		v := rt.ResTarget.Val
		if cr, ok := v.GetNode().(*pg.Node_ColumnRef); ok && isStar(cr.ColumnRef) {
			f := cr.ColumnRef.Fields
			if len(f) == 1 {
				for _, s := range sc.srcs {
					outs = append(outs, s.expand()...)
					exact = exact && s.exact
				}
			} else {
				rel := strVal(f[len(f)-2])
				found := false
				for _, s := range sc.srcs {
					if strings.EqualFold(s.alias, rel) {
						outs = append(outs, s.expand()...)
						exact = exact && s.exact
						found = true
					}
				}
				if !found {
					outs = append(outs, outCol{name: "*", t: t.colRef(cr.ColumnRef, sc)})
					exact = false
				}
			}
			continue
		}
		name := rt.ResTarget.Name
		if name == "" {
			name = colName(v)
		}
		tt := t.expr(v, sc)
		if len(rt.ResTarget.Indirection) > 0 {
			tt = tt.derived()
		}
		outs = append(outs, outCol{name: name, t: tt})
	}
	return outs, exact
}

func isStar(c *pg.ColumnRef) bool {
	if len(c.Fields) == 0 {
		return false
	}
	_, ok := c.Fields[len(c.Fields)-1].Node.(*pg.Node_AStar)
	return ok
}

func (s *source) expand() []outCol {
	if s.base && len(s.cols) == 0 {
		return []outCol{{name: "*", t: s.whole(), star: s}}
	}
	if len(s.cols) == 0 {
		return []outCol{{name: "*", t: s.all}}
	}
	out := make([]outCol, len(s.cols))
	copy(out, s.cols)
	return out
}

func (t *tracer) from(items []*pg.Node, sc *scope) {
	for _, it := range items {
		t.fromItem(it, sc)
	}
}

func (t *tracer) fromItem(n *pg.Node, sc *scope) {
	switch x := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		sc.srcs = append(sc.srcs, t.rangeVar(x.RangeVar, sc))
	case *pg.Node_RangeSubselect:
		outs, exact := t.stmt(x.RangeSubselect.Subquery, sc)
		src := &source{cols: outs, exact: exact}
		if a := x.RangeSubselect.Alias; a != nil {
			src.alias = a.Aliasname
			renameCols(src, a.Colnames)
		}
		sc.srcs = append(sc.srcs, src)
	case *pg.Node_JoinExpr:
		j := x.JoinExpr
		t.fromItem(j.Larg, sc)
		t.fromItem(j.Rarg, sc)
		t.predicate(j.Quals, sc)
		for _, u := range j.UsingClause {
			name := strVal(u)
			var tt taint
			for _, s := range sc.srcs {
				tt = tt.or(s.col(name))
			}
			if t.views == 0 {
				t.pred = t.pred.or(tt.full())
			}
		}
		if j.Alias != nil {
			// a join alias names the union of both sides
			var all taint
			for _, s := range sc.srcs {
				all = all.or(s.whole())
			}
			sc.srcs = append(sc.srcs, &source{alias: j.Alias.Aliasname, all: all})
		}
	case *pg.Node_RangeFunction:
		var all taint
		t.walkGeneric(x.RangeFunction.ProtoReflect(), sc, &all)
		src := &source{all: all.full()}
		if a := x.RangeFunction.Alias; a != nil {
			src.alias = a.Aliasname
			for _, c := range a.Colnames {
				src.cols = append(src.cols, outCol{name: strVal(c), t: src.all})
			}
		}
		if len(x.RangeFunction.Functions) > 0 && src.alias == "" {
			src.alias = colName(firstFunc(x.RangeFunction))
		}
		sc.srcs = append(sc.srcs, src)
	default:
		var all taint
		if n != nil {
			t.walkGeneric(n.ProtoReflect(), sc, &all)
		}
		sc.srcs = append(sc.srcs, &source{all: all.full()})
	}
}

func firstFunc(r *pg.RangeFunction) *pg.Node {
	if l, ok := r.Functions[0].Node.(*pg.Node_List); ok && len(l.List.Items) > 0 {
		return l.List.Items[0]
	}
	return nil
}

func renameCols(src *source, names []*pg.Node) {
	for i, c := range names {
		if i < len(src.cols) {
			src.cols[i].name = strVal(c)
		}
	}
}

func (t *tracer) rangeVar(rv *pg.RangeVar, sc *scope) *source {
	if rv == nil {
		return &source{}
	}
	alias := rv.Relname
	if rv.Alias != nil {
		alias = rv.Alias.Aliasname
	}
	if rv.Schemaname == "" {
		if s, d := sc.findCTE(strings.ToLower(rv.Relname)); d != nil {
			if !d.done {
				if d.inFlight {
					return &source{alias: alias, cols: d.outs, exact: d.exact, all: anyTaint(d.outs)}
				}
				t.cte(s, d)
			}
			src := &source{alias: alias, cols: append([]outCol(nil), d.outs...), exact: d.exact}
			if rv.Alias != nil {
				renameCols(src, rv.Alias.Colnames)
			}
			return src
		}
	}
	src := &source{alias: alias, schema: strings.ToLower(rv.Schemaname), rel: strings.ToLower(rv.Relname), base: true, e: t.e}
	if analysis.HiddenRelations[src.rel] && (src.schema == "" || src.schema == "pg_catalog" || src.schema == "public") {
		// planner statistics: values of every column the role may read
		src.base = false
		src.all = taint{lvl: lvlFull, what: "(" + src.rel + ")"}
		t.touched = true
		if t.views == 0 && t.e.anyRules {
			t.refuse(pgerr.New(pgerr.InsufficientPrivilege,
				"%s is not allowed for groups without unmask: it carries values of masked columns (planner statistics, other statements)", src.rel).
				WithHint("masked data may only leave through masked result rows"))
		}
		return src
	}
	if vr, ok := t.e.cat.(ViewResolver); ok && t.e.cat != nil {
		defs, err := vr.ViewsNamed(t.ctx, src.schema, src.rel)
		switch {
		case err != nil:
			src.base = false
			src.all = taint{lvl: lvlFull, what: "(view lookup failed: " + src.rel + ")"}
		case len(defs) > 0:
			src.base = false
			src.exact = true
			for _, def := range defs {
				outs, exact := t.view(def)
				if !exact {
					src.exact = false
				}
				if len(src.cols) == 0 {
					src.cols = outs
				} else {
					for i := range outs {
						if i < len(src.cols) {
							src.cols[i].t = src.cols[i].t.or(outs[i].t)
						} else {
							src.cols = append(src.cols, outs[i])
						}
					}
				}
			}
			// a rule on the view's own column applies too
			for i := range src.cols {
				if r := t.e.ruleFor(src.schema, src.rel, src.cols[i].name); r != nil {
					src.cols[i].t = src.cols[i].t.or(taint{lvl: lvlFull, what: r.name()}).derived()
					src.cols[i].t.direct = r
				}
			}
			if rv.Alias != nil {
				renameCols(src, rv.Alias.Colnames)
			}
		}
	}
	if ar, ok := t.e.cat.(AncestorResolver); ok && src.base {
		anc, err := ar.Ancestors(t.ctx, src.schema, src.rel)
		if err != nil {
			src.base = false
			src.all = taint{lvl: lvlFull, what: "(catalog lookup failed: " + src.rel + ")"}
		}
		src.ancestors = anc
	}
	if cl, ok := t.e.cat.(ColumnLister); ok && src.base {
		if names, err := cl.TableColumns(t.ctx, src.schema, src.rel); err == nil && len(names) > 0 {
			for _, n := range names {
				src.cols = append(src.cols, outCol{name: n, t: src.baseCol(n)})
			}
			src.exact = true
		}
	}
	if src.base && rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
		// renamed base columns: names no longer identify columns
		src.base = false
		src.all = src.whole()
		src.wholeOverride = &src.all
	}
	return src
}

const maxViewDepth = 16

// view traces a view definition's output columns.
func (t *tracer) view(def string) ([]outCol, bool) {
	if t.views >= maxViewDepth {
		return []outCol{{name: "*", t: taint{lvl: lvlFull, what: "(views nested too deep)"}}}, false
	}
	res, err := analysis.Parse(def)
	if err != nil || len(res.Stmts) != 1 {
		return []outCol{{name: "*", t: taint{lvl: lvlFull, what: "(view not traced)"}}}, false
	}
	t.views++
	defer func() { t.views-- }()
	return t.stmt(res.Stmts[0].Stmt, nil)
}

// viewColumnTaint resolves column attnum of a view (from a RowDescription).
func (e *Engine) viewColumnTaint(ctx context.Context, ref ColumnRef) taint {
	t := &tracer{e: e, ctx: ctx, fs: defaultFuncs()}
	outs, exact := t.view(ref.ViewDef)
	i := int(ref.Attnum) - 1
	if exact && i >= 0 && i < len(outs) {
		return outs[i].t
	}
	return anyTaint(outs).or(taint{})
}

// col is the taint of column name of this source.
func (s *source) col(name string) taint {
	if s.base {
		return s.baseCol(name)
	}
	var t taint
	found := false
	for _, c := range s.cols {
		if c.star != nil {
			t = t.or(c.star.col(name))
			found = found || !c.star.exact
			continue
		}
		if strings.EqualFold(c.name, name) {
			t, found = t.or(c.t), true
		}
	}
	if !found {
		if s.exact && len(s.cols) > 0 {
			// our idea of the column names may be wrong: assume any
			for _, c := range s.cols {
				t = t.or(c.t.derived())
			}
		}
		t = t.or(s.all)
	}
	return t
}

func (s *source) baseCol(name string) taint {
	e := s.eng()
	if e == nil {
		return taint{}
	}
	r := e.ruleFor(s.schema, s.rel, name)
	for _, a := range s.ancestors {
		if r != nil {
			break
		}
		if dot := strings.IndexByte(a, '.'); dot > 0 {
			r = e.ruleFor(a[:dot], a[dot+1:], name)
		}
	}
	if r != nil {
		lvl := lvlFull
		if len(r.jsonKeys) > 0 {
			lvl = lvlJSON
		}
		return taint{lvl: lvl, what: r.name(), direct: r}
	}
	return taint{}
}

// whole is the taint of a whole-row reference (t.*, row_to_json(t), t::text).
func (s *source) whole() taint {
	if s.wholeOverride != nil {
		return *s.wholeOverride
	}
	if s.base && len(s.cols) > 0 {
		var t taint
		for _, c := range s.cols {
			t = t.or(c.t.full())
		}
		return t.derived()
	}
	if s.base {
		e := s.eng()
		if e == nil {
			return taint{}
		}
		for i := range e.rules {
			r := &e.rules[i]
			if r.table == "" || len(s.ancestors) > 0 || (strings.EqualFold(r.table, s.rel) && (r.schema == "" || s.schema == "" || strings.EqualFold(r.schema, s.schema))) {
				return taint{lvl: lvlFull, what: r.name()}
			}
		}
		return taint{}
	}
	t := s.all.full()
	for _, c := range s.cols {
		t = t.or(c.t.full())
	}
	return t.derived()
}

func (t *tracer) colRef(c *pg.ColumnRef, sc *scope) taint {
	tt := t.colRefTaint(c, sc)
	if tt.lvl > lvlClean {
		t.touched = true
	}
	return tt
}

func (t *tracer) colRefTaint(c *pg.ColumnRef, sc *scope) taint {
	f := c.Fields
	if len(f) == 0 {
		return taint{}
	}
	if isStar(c) {
		if len(f) == 1 {
			var tt taint
			for _, s := range sc.srcs {
				tt = tt.or(s.whole())
			}
			return tt
		}
		rel := strVal(f[len(f)-2])
		for s := sc; s != nil; s = s.parent {
			for _, src := range s.srcs {
				if strings.EqualFold(src.alias, rel) {
					return src.whole()
				}
			}
		}
		return t.anyRuleTaint("")
	}
	if len(f) == 1 {
		name := strVal(f[0])
		var tt taint
		for s := sc; s != nil; s = s.parent {
			for _, src := range s.srcs {
				tt = tt.or(src.col(name))
				if strings.EqualFold(src.alias, name) {
					tt = tt.or(src.whole())
				}
			}
		}
		return tt
	}
	rel, name := strVal(f[len(f)-2]), strVal(f[len(f)-1])
	for s := sc; s != nil; s = s.parent {
		for _, src := range s.srcs {
			if strings.EqualFold(src.alias, rel) || (src.base && strings.EqualFold(src.rel, rel)) {
				return src.col(name)
			}
		}
	}
	// (composite).field or an unknown qualifier: any rule on that column name
	return t.anyRuleTaint(name)
}

// anyRuleTaint: any rule on a column named name ("" = any rule at all).
func (t *tracer) anyRuleTaint(name string) taint {
	for i := range t.e.rules {
		r := &t.e.rules[i]
		if name == "" || strings.EqualFold(r.column, name) {
			return taint{lvl: lvlFull, what: r.name()}
		}
	}
	return taint{}
}

func (t *tracer) expr(n *pg.Node, sc *scope) taint {
	if n == nil {
		return taint{}
	}
	switch x := n.Node.(type) {
	case *pg.Node_ColumnRef:
		return t.colRef(x.ColumnRef, sc)
	case *pg.Node_AConst, *pg.Node_ParamRef:
		return taint{}
	case *pg.Node_TypeCast:
		// a cast changes the value (varchar(3), ::int): the rule's method
		// no longer applies, so the result is derived
		return t.expr(x.TypeCast.Arg, sc).derivedKeepJSON()
	case *pg.Node_AExpr:
		a := x.AExpr
		op := ""
		if len(a.Name) > 0 {
			op = strVal(a.Name[len(a.Name)-1])
		}
		if a.Kind == pg.A_Expr_Kind_AEXPR_OP && analysis.DistanceOps[op] {
			// still walk for subqueries (their predicates count)
			var sink taint
			t.walkGeneric(a.ProtoReflect(), sc, &sink)
			return taint{}
		}
		l, r := t.expr(a.Lexpr, sc), t.expr(a.Rexpr, sc)
		if a.Kind == pg.A_Expr_Kind_AEXPR_OP && analysis.JSONAccessOps[op] && l.lvl == lvlJSON && r.lvl == lvlClean {
			if !t.keyMasked(a.Rexpr) {
				return l.derived()
			}
			return l.full()
		}
		return l.or(r).full()
	case *pg.Node_FuncCall:
		return t.funcCall(x.FuncCall, sc)
	case *pg.Node_SubLink:
		sl := x.SubLink
		outs, _ := t.stmt(sl.Subselect, &scope{parent: sc})
		switch sl.SubLinkType {
		case pg.SubLinkType_EXISTS_SUBLINK:
			return taint{} // a boolean: an inference channel, governed by deny_predicates
		case pg.SubLinkType_EXPR_SUBLINK:
			if len(outs) == 1 {
				return outs[0].t.derivedKeepJSON()
			}
		}
		return anyTaint(outs).or(t.expr(sl.Testexpr, sc)).full()
	case *pg.Node_SelectStmt:
		outs, _ := t.selectStmt(x.SelectStmt, &scope{parent: sc})
		return anyTaint(outs).full()
	case *pg.Node_SortBy:
		return t.expr(x.SortBy.Node, sc)
	}
	var tt taint
	t.walkGeneric(n.ProtoReflect(), sc, &tt)
	return tt.full()
}

func (a taint) derivedKeepJSON() taint { a.direct = nil; return a }

// ordinal is the value of an integer constant (ORDER BY 2).
func (t *tracer) ordinal(n *pg.Node) (int, bool) {
	t.readsConst()
	if c, ok := n.GetNode().(*pg.Node_AConst); ok {
		if iv, ok := c.AConst.Val.(*pg.A_Const_Ival); ok {
			return int(iv.Ival.Ival), true
		}
	}
	return 0, false
}

// constKey is the value of a JSON accessor's constant right operand: a
// string (a key, or a #> path) or an integer (an array index).
func (t *tracer) constKey(n *pg.Node) (s string, index, ok bool) {
	t.readsConst()
	c, isConst := n.GetNode().(*pg.Node_AConst)
	if !isConst {
		return "", false, false
	}
	switch v := c.AConst.Val.(type) {
	case *pg.A_Const_Sval:
		return v.Sval.Sval, false, true
	case *pg.A_Const_Ival:
		return "", true, true
	}
	return "", false, false
}

// keyMasked: is the right operand of a JSON accessor a masked key (or not a constant)?
func (t *tracer) keyMasked(n *pg.Node) bool {
	if tc, ok := n.GetNode().(*pg.Node_TypeCast); ok {
		return t.keyMasked(tc.TypeCast.Arg)
	}
	s, index, ok := t.constKey(n)
	switch {
	case !ok:
		return true
	case index:
		return false // array index
	}
	var keys []string
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") { // #> path
		for _, p := range strings.Split(s[1:len(s)-1], ",") {
			keys = append(keys, strings.Trim(strings.TrimSpace(p), `"`))
		}
	} else {
		keys = []string{s}
	}
	for _, k := range keys {
		for _, mk := range t.e.allKeys {
			if strings.EqualFold(mk.key, k) {
				return true
			}
		}
	}
	return false
}

// walkGeneric ORs the taint of every expression node below m.
func (t *tracer) walkGeneric(m protoreflect.Message, sc *scope, acc *taint) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				t.walkMsg(l.Get(i).Message(), sc, acc)
			}
			return true
		}
		t.walkMsg(v.Message(), sc, acc)
		return true
	})
}

func (t *tracer) walkMsg(m protoreflect.Message, sc *scope, acc *taint) {
	if n, ok := m.Interface().(*pg.Node); ok {
		*acc = acc.or(t.expr(n, sc))
		return
	}
	if w, ok := m.Interface().(*pg.WindowDef); ok {
		for _, p := range w.PartitionClause {
			*acc = acc.or(t.expr(p, sc))
		}
		for _, p := range w.OrderClause {
			*acc = acc.or(t.expr(p, sc))
		}
		return
	}
	t.walkGeneric(m, sc, acc)
}

func strVal(n *pg.Node) string {
	if s, ok := n.GetNode().(*pg.Node_String_); ok {
		return s.String_.Sval
	}
	return ""
}

// colName approximates PostgreSQL's FigureColname.
func colName(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_ColumnRef:
		f := x.ColumnRef.Fields
		if len(f) > 0 {
			return strVal(f[len(f)-1])
		}
	case *pg.Node_TypeCast:
		if c := colName(x.TypeCast.Arg); c != "?column?" {
			return c
		}
		if tn := x.TypeCast.TypeName; tn != nil && len(tn.Names) > 0 {
			return strVal(tn.Names[len(tn.Names)-1])
		}
	case *pg.Node_FuncCall:
		f := x.FuncCall.Funcname
		if len(f) > 0 {
			return strVal(f[len(f)-1])
		}
	case *pg.Node_CaseExpr:
		return "case"
	case *pg.Node_SubLink:
		if s, ok := x.SubLink.Subselect.GetNode().(*pg.Node_SelectStmt); ok && x.SubLink.SubLinkType == pg.SubLinkType_EXPR_SUBLINK && len(s.SelectStmt.TargetList) > 0 {
			if rt, ok := s.SelectStmt.TargetList[0].Node.(*pg.Node_ResTarget); ok {
				if rt.ResTarget.Name != "" {
					return rt.ResTarget.Name
				}
				return colName(rt.ResTarget.Val)
			}
		}
		if x.SubLink.SubLinkType == pg.SubLinkType_EXISTS_SUBLINK {
			return "exists"
		}
		if x.SubLink.SubLinkType == pg.SubLinkType_ARRAY_SUBLINK {
			return "array"
		}
	}
	return "?column?"
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

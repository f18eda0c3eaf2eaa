package masking

import (
	"context"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// CheckQuery is Check of sql alone (statement index unknown, the built-in
// function snapshot).
func (e *Engine) CheckQuery(sql string, unmask bool) *pgerr.Error {
	return e.Check(context.Background(), &Query{SQL: sql, Stmt: -1}, unmask)
}

// CheckQueryContext is CheckQuery with a context for catalog lookups.
func (e *Engine) CheckQueryContext(ctx context.Context, sql string, unmask bool) *pgerr.Error {
	return e.Check(ctx, &Query{SQL: sql, Stmt: -1}, unmask)
}

// Check refuses, before it reaches PostgreSQL, a statement that masking
// cannot make safe for a group without unmask (42501, a message naming
// what it refuses):
//   - a function that reads data the trace cannot see — relations by name
//     (table_to_xml), every table of a schema or database, SQL text
//     (query_to_xml, ts_stat), cursors, an unvouched user-defined function
//     or one the catalog does not know — unless everything it can reach is
//     provably unmasked (a named relation without masked columns, SQL text
//     whose trace is clean); planner statistics (pg_stats);
//   - a value derived from a masked column passed to a function that
//     writes state or may (set_config, pg_notify, advisory locks,
//     sequences, any VOLATILE function);
//   - one that writes values read from a masked column into a table
//     (INSERT ... SELECT, UPDATE ... SET, CREATE TABLE AS, SELECT INTO);
//   - a WHERE/JOIN/HAVING/ORDER BY/window over a masked column
//     (masking.deny_predicates), an output derived from one
//     (masking.derived: deny).
//
// It returns nil for unmask, for statements it cannot parse (PostgreSQL
// rejects those itself) and when nothing applies. It may consult the
// catalog for views and table columns (I/O, cached).
func (e *Engine) Check(ctx context.Context, q *Query, unmask bool) *pgerr.Error {
	if unmask || !e.anyRules {
		return nil
	}
	tr := e.trace(ctx, q)
	if tr.all {
		return nil
	}
	for i := range tr.stmts {
		st := &tr.stmts[i]
		if st.refusal != nil {
			c := *st.refusal
			return &c
		}
		if st.write.lvl > lvlClean {
			return pgerr.New(pgerr.InsufficientPrivilege,
				"statement writes values read from masked column %s into a table", st.write.what).
				WithHint("masked data may only leave through masked result rows")
		}
		if e.denyPred && st.pred.lvl > lvlClean {
			return pgerr.New(pgerr.InsufficientPrivilege,
				"a predicate or ordering on masked column %s is not allowed (masking.deny_predicates)", st.pred.what)
		}
		if e.deny {
			for _, o := range st.outs {
				if o.star == nil && o.t.lvl == lvlFull && o.t.direct == nil {
					return pgerr.New(pgerr.InsufficientPrivilege,
						"column %q is derived from masked column %s (masking.derived: deny)", o.name, o.t.what)
				}
			}
		}
	}
	return nil
}

// ReadsMasked reports whether the statement q (q.Stmt of its text, or any
// of them) reads a masked value anywhere — outputs, predicates, writes,
// function arguments — or cannot be traced. The glue withholds the text
// of errors and notices such a statement raises from groups without
// unmask (a cast error echoes the value it could not cast).
func (e *Engine) ReadsMasked(ctx context.Context, q *Query) bool {
	if !e.anyRules {
		return false
	}
	tr := e.trace(ctx, q)
	if tr.all {
		return true
	}
	stmts := tr.stmts
	if q != nil && q.Stmt >= 0 && q.Stmt < len(stmts) {
		stmts = stmts[q.Stmt : q.Stmt+1]
	}
	for i := range stmts {
		if stmts[i].readsMasked() {
			return true
		}
	}
	return false
}

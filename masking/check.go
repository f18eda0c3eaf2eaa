package masking

import (
	"context"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// CheckQuery refuses, before it reaches PostgreSQL, a statement that masking
// cannot make safe for a group without unmask: one that writes values read
// from a masked column into a table (INSERT ... SELECT, UPDATE ... SET,
// CREATE TABLE AS, SELECT INTO — that would copy PII out of the rules'
// reach), one whose WHERE/JOIN/HAVING/ORDER BY/window reads a masked column
// (masking.deny_predicates), or one with an output expression derived from
// a masked column (masking.derived: deny). It returns nil for unmask, for
// statements it cannot parse (PostgreSQL rejects those itself) and when
// nothing applies. It may consult the catalog for views (I/O, cached).
func (e *Engine) CheckQuery(sql string, unmask bool) *pgerr.Error {
	return e.CheckQueryContext(context.Background(), sql, unmask)
}

// CheckQueryContext is CheckQuery with a context for catalog lookups.
func (e *Engine) CheckQueryContext(ctx context.Context, sql string, unmask bool) *pgerr.Error {
	if unmask || !e.anyRules {
		return nil
	}
	tr := e.trace(ctx, &Query{SQL: sql, Stmt: -1})
	if tr.all {
		return nil
	}
	for _, st := range tr.stmts {
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

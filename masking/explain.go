package masking

import (
	"context"
	"fmt"
)

// Explain describes, for `pgwarden policy explain`, what masking does to
// each output column of each statement in sql, from the SQL text alone
// (with a nil catalog: views are not expanded, `*` is reported as such).
// A refusal CheckQuery would return is reported as the first line.
func (e *Engine) Explain(sql string, unmask bool) []string {
	if unmask {
		return []string{"unmask: rows are returned unmasked (the recording is still masked)"}
	}
	var out []string
	if err := e.CheckQuery(sql, false); err != nil {
		out = append(out, fmt.Sprintf("refused (%s): %s", err.Code, err.Message))
	}
	tr := e.trace(context.Background(), &Query{SQL: sql, Stmt: -1})
	if tr.all {
		return append(out, "statement not parsed: expression columns masked when any rule exists")
	}
	for si, st := range tr.stmts {
		if st.unsure {
			out = append(out, fmt.Sprintf("statement %d: EXECUTE/FETCH: expression columns masked (statement not known)", si+1))
			continue
		}
		for _, o := range st.outs {
			var what string
			switch {
			case o.star != nil:
				what = "columns of " + o.star.rel + " masked by their rules"
			case o.t.direct != nil && len(o.t.direct.jsonKeys) > 0:
				what = fmt.Sprintf("json_keys %v (%s) by rule %s", o.t.direct.jsonKeys, o.t.direct.method, o.t.direct.name())
			case o.t.direct != nil:
				what = fmt.Sprintf("%s by rule %s", o.t.direct.method, o.t.direct.name())
			case o.t.lvl == lvlFull && e.deny:
				what = "refused: derived from " + o.t.what
			case o.t.lvl == lvlFull:
				what = "redact: derived from " + o.t.what
			case o.t.lvl == lvlJSON:
				what = "json keys masked (derived from " + o.t.what + ")"
			case e.det != 0:
				what = "detectors (if text)"
			default:
				what = "unmasked"
			}
			out = append(out, fmt.Sprintf("statement %d column %q: %s", si+1, o.name, what))
		}
	}
	return out
}

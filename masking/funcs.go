package masking

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgwarden/pgwarden/internal/analysis"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Function calls in the trace. Every call is classified by the closed
// world (internal/analysis): a pure function's result is derived from its
// arguments; one that reads hidden data (relations by name, SQL text,
// cursors, an opaque user-defined body) returns values the trace cannot
// see, so for a group without unmask it is refused unless everything it
// can reach is provably unmasked; a masked value may not flow into a
// function that writes state (it would come back through SHOW, a
// notification, a sequence or an advisory lock, unmasked).

// maxSQLDepth bounds SQL text run by functions inside SQL text.
const maxSQLDepth = 8

func (t *tracer) funcCall(fc *pg.FuncCall, sc *scope) taint {
	schema, name := funcName(fc.Funcname)
	v := t.fs.Lookup(schema, name)
	var args taint
	for _, a := range fc.Args {
		args = args.or(t.expr(a, sc))
	}
	for _, o := range fc.AggOrder {
		args = args.or(t.expr(o, sc))
	}
	if fc.AggFilter != nil {
		t.predicate(fc.AggFilter, sc)
	}
	if fc.Over != nil {
		t.predicate(&pg.Node{Node: &pg.Node_WindowDef{WindowDef: fc.Over}}, sc)
	}
	if args.lvl > lvlClean && v.MayWrite() {
		t.refuse(pgerr.New(pgerr.InsufficientPrivilege,
			"a value derived from masked column %s may not be passed to %s: %s", args.what, v.Name, writeReason(v)).
			WithHint("masked data may only leave through masked result rows"))
	}
	out := args.full()
	if why := t.hiddenReach(v, fc); why != "" {
		t.touched = true
		if t.views == 0 {
			hint := "for groups without unmask, functions that read relations by name, run SQL text or read cursors are allowed only when everything they reach is unmasked"
			if v.UserDefined || !v.Known {
				hint = "a user-defined function the operator has reviewed can be vouched for in policy.functions.allow"
			}
			t.refuse(pgerr.New(pgerr.InsufficientPrivilege, "%s is not allowed for groups without unmask: %s", v.Name, why).WithHint("%s", hint))
		}
		// inside a view (run with the view owner's rights) the column is
		// masked as derived instead
		return out.or(taint{lvl: lvlFull, what: "(" + v.Name + ")"})
	}
	if v.Known && v.Class == analysis.Pure && !v.UserDefined &&
		(schema == "" || schema == "public" || schema == "pg_catalog") &&
		(analysis.DistanceFuncs[name] || (name == "count" && schema == "")) {
		// a distance is a number computed server-side, not the vector it
		// reads; a count is not derived from the values it counts (a
		// distinct count is an inference channel like predicates)
		return taint{}
	}
	return out
}

func writeReason(v analysis.Verdict) string {
	switch {
	case !v.Known:
		return "it is not in the function catalog, so it may write state"
	case v.Class >= analysis.WritesState:
		return "it writes state outside the result (" + v.Reason + ")"
	default:
		return "it is VOLATILE, so it may write state outside the result"
	}
}

// hiddenReach says why function v reads data the trace cannot see ("" when
// it reads none, or only provably unmasked data).
func (t *tracer) hiddenReach(v analysis.Verdict, fc *pg.FuncCall) string {
	switch {
	case !v.Known:
		return v.Reason
	case v.Reach == analysis.ReachAny:
		if v.Allowed {
			return ""
		}
		return "a user-defined function's body is opaque to masking (" + v.Reason + ")"
	case v.Class != analysis.ReadsHidden:
		return ""
	}
	args := fc.Args
	switch v.Reach {
	case analysis.ReachNone, analysis.ReachSession:
		// settings and this session's own state: a masked value can get
		// there only through a function that writes state, refused above
		return ""
	case analysis.ReachRelation:
		if len(args) == 0 {
			return "it reads a relation"
		}
		s, ok := t.constString(args[0])
		if !ok {
			return "it reads the relation named by a computed argument"
		}
		schema, rel, ok := parseQualName(s)
		if !ok {
			return "it reads a relation whose name pgwarden cannot resolve"
		}
		src := t.rangeVar(&pg.RangeVar{Schemaname: schema, Relname: rel, Inh: true}, nil)
		if w := src.whole(); w.lvl > lvlClean {
			return "it returns every row of " + rel + ", which has masked column " + w.what
		}
		return ""
	case analysis.ReachSchema:
		if len(args) == 0 {
			return "it reads every table of a schema"
		}
		s, ok := t.constString(args[0])
		if !ok {
			return "it reads every table of a schema named by a computed argument"
		}
		_, nsp, ok := parseQualName(s)
		if !ok {
			return "it reads every table of a schema whose name pgwarden cannot resolve"
		}
		for i := range t.e.rules {
			r := &t.e.rules[i]
			if r.schema == "" || strings.EqualFold(r.schema, nsp) {
				return "it returns every row of every table of schema " + nsp + ", and masking rule " + r.name() + " may apply there"
			}
		}
		return ""
	case analysis.ReachSQL:
		if v.SQLArgc != 0 && len(args) != v.SQLArgc {
			return "" // another form, which runs no SQL text (ts_rewrite)
		}
		if v.SQLArg >= len(args) {
			return "it runs SQL text"
		}
		inner, ok := t.constString(args[v.SQLArg])
		if !ok {
			return "it runs computed SQL text"
		}
		return t.innerSQL(inner)
	case analysis.ReachCursor:
		return "it returns the rows of a cursor, which masking cannot see"
	default: // ReachDatabase and anything new
		return "it reads data of every table, masked columns included"
	}
}

// innerSQL traces SQL text a function runs; "" when every value it returns
// and every predicate is unmasked and nothing inside is refused.
func (t *tracer) innerSQL(sql string) string {
	if t.depth+1 > maxSQLDepth {
		return "it runs SQL text nested too deeply to trace"
	}
	res, err := analysis.Parse(sql)
	if err != nil || len(res.Stmts) == 0 {
		return "it runs SQL text pgwarden cannot parse"
	}
	for _, rs := range res.Stmts {
		sub := &tracer{e: t.e, ctx: t.ctx, fs: t.fs, views: t.views, depth: t.depth + 1}
		outs, _ := sub.stmt(rs.Stmt, nil)
		if sub.refusal != nil {
			return "the SQL text it runs is refused: " + strings.TrimPrefix(sub.refusal.Message, pgerr.Prefix)
		}
		if sub.unsure {
			return "the SQL text it runs cannot be traced"
		}
		if sub.write.lvl > lvlClean {
			return "the SQL text it runs writes values of masked column " + sub.write.what
		}
		if sub.pred.lvl > lvlClean || sub.touched {
			what := sub.pred.what
			if what == "" {
				what = anyTaint(outs).what
			}
			return "the SQL text it runs reads masked column " + what
		}
		for _, o := range outs {
			if o.t.lvl > lvlClean {
				return "the SQL text it runs returns masked column " + o.t.what
			}
		}
	}
	return ""
}

// funcName splits a function's qualified name as the parser returns it.
func funcName(ns []*pg.Node) (schema, name string) {
	if len(ns) == 0 {
		return "", ""
	}
	name = strVal(ns[len(ns)-1])
	if len(ns) >= 2 {
		schema = strVal(ns[len(ns)-2])
	}
	return schema, name
}

// constString is the value of a string constant ('x', 'x'::regclass, E'x').
func (t *tracer) constString(n *pg.Node) (string, bool) {
	t.readsConst()
	for n != nil {
		switch x := n.Node.(type) {
		case *pg.Node_AConst:
			if sv, ok := x.AConst.Val.(*pg.A_Const_Sval); ok {
				return sv.Sval.Sval, true
			}
			return "", false
		case *pg.Node_TypeCast:
			n = x.TypeCast.Arg
		default:
			return "", false
		}
	}
	return "", false
}

// parseQualName reads a relation name as regclass input does: one or two
// dot-separated identifiers, unquoted ones folded to lower case, quoted
// ones kept with "" as a quote. A three-part name (database.schema.rel)
// keeps its last two parts.
func parseQualName(s string) (schema, rel string, ok bool) {
	var parts []string
	s = strings.TrimSpace(s)
	for len(s) > 0 {
		var part string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					break
				}
				b.WriteByte(s[i])
			}
			if i >= len(s) {
				return "", "", false // unterminated
			}
			part, s = b.String(), strings.TrimSpace(s[i+1:])
		} else {
			j := strings.IndexByte(s, '.')
			if j < 0 {
				j = len(s)
			}
			part = strings.ToLower(strings.TrimSpace(s[:j]))
			s = s[j:]
			if part == "" || strings.ContainsAny(part, " \t\n\"") {
				return "", "", false
			}
		}
		parts = append(parts, part)
		if len(s) == 0 {
			break
		}
		if s[0] != '.' {
			return "", "", false
		}
		s = strings.TrimSpace(s[1:])
		if len(s) == 0 {
			return "", "", false
		}
	}
	switch len(parts) {
	case 1:
		return "", parts[0], true
	case 2:
		return parts[0], parts[1], true
	case 3:
		return parts[1], parts[2], true
	}
	return "", "", false
}

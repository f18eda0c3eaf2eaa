package sqlpolicy

import (
	"fmt"
	"io"
	"strings"

	"github.com/pgwarden/pgwarden/config"
)

// Explain prints, for `pgwarden policy explain`, each statement of sql,
// its action, the decision for a user in groups and why, and which masking
// rules could apply to what it reads (best effort, by table name). It uses
// no database: a DELETE/UPDATE that needs a planner estimate is shown with
// both possible outcomes.
func Explain(w io.Writer, cfg *config.Config, groups []string, sql string) error {
	p := NewPolicy(cfg.Policy)
	a, perr := Classify(sql)
	ew := &errWriter{w: w}
	ew.printf("groups: [%s]\n", strings.Join(groups, " "))
	if perr != nil {
		ew.printf("parse error: %v\n", perr)
	}
	if len(a.Statements) == 0 {
		ew.printf("no statements (empty query): allowed\n")
		return ew.err
	}
	stmts := NewSession().Resolve(a)
	for i, st := range stmts {
		ew.printf("\nstatement %d: %s\n", i+1, oneLine(st.SQL, 200))
		ew.printf("  action:   %s", st.Action)
		if len(st.Requires) > 1 {
			ew.printf(" (needs %s)", joinActions(st.Requires))
		}
		ew.printf("\n  reason:   %s\n", st.Reason)
		if len(st.Tables) > 0 {
			ew.printf("  tables:   %s\n", strings.Join(st.Tables, ", "))
		}
		d := p.Decide(groups, st)
		if st.NeedsEstimate {
			ew.printf("  decision: %s when the planner estimates at most %d rows\n", verdict(d), cfg.Policy.Approval.BulkRows)
			ew.printf("            %s above that (bulk_delete)\n", verdict(p.Decide(groups, asBulk(st, ""))))
		} else {
			ew.printf("  decision: %s\n", verdict(d))
		}
		masks := maskingFor(cfg, st)
		switch {
		case len(masks) == 0:
			ew.printf("  masking:  none\n")
		case p.Unmask(groups):
			ew.printf("  masking:  none for these groups (unmask); recordings stay masked: %s\n", strings.Join(masks, "; "))
		default:
			ew.printf("  masking:  %s\n", strings.Join(masks, "; "))
		}
	}
	d := p.DecideAll(groups, stmts)
	ew.printf("\noverall: %s\n", verdict(d))
	return ew.err
}

func verdict(d Decision) string {
	switch {
	case !d.Allowed:
		return "deny — " + d.Err.Message
	case d.NeedsApproval:
		return "needs approval (" + string(d.Action) + " is in policy.approval.actions)"
	default:
		return "allow"
	}
}

// maskingFor lists the masking rules whose table the statement names (or
// that apply to any table) — what could be masked in its results.
func maskingFor(cfg *config.Config, st Statement) []string {
	if len(st.Tables) == 0 {
		return nil
	}
	var out []string
	for _, r := range cfg.Masking.Rules {
		desc := r.Column + " (" + r.Method
		if len(r.JSONKeys) > 0 {
			desc += " of keys " + strings.Join(r.JSONKeys, ",")
		}
		desc += ")"
		if r.Table == "" {
			out = append(out, desc+" in any table")
			continue
		}
		for _, t := range st.Tables {
			if tableMatches(r.Table, t) {
				out = append(out, r.Table+"."+desc)
				break
			}
		}
	}
	return out
}

// tableMatches compares a rule's table (schema.table or table) with a
// table as written in the statement; an unqualified name matches any
// schema (the search_path is unknown offline).
func tableMatches(rule, written string) bool {
	rs, rt := splitQualified(rule)
	ws, wt := splitQualified(written)
	if rt != wt {
		return false
	}
	return rs == "" || ws == "" || rs == ws
}

func splitQualified(s string) (schema, table string) {
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		schema = s[:i]
		if j := strings.LastIndexByte(schema, '.'); j >= 0 {
			schema = schema[j+1:]
		}
		return schema, s[i+1:]
	}
	return "", s
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		r := []rune(s)
		if len(r) > max {
			s = string(r[:max]) + "…"
		}
	}
	return s
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

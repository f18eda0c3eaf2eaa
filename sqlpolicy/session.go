package sqlpolicy

import "github.com/pgwarden/pgwarden/internal/analysis"

// Session remembers, for one client session, what each prepared
// statement and portal does, so that EXECUTE (SQL) and Bind/Execute
// (extended protocol) get the action of the statement they run, and Parse
// is classified once per prepared statement, not per Execute.
//
// SQL-level PREPARE and protocol-level Parse share PostgreSQL's namespace
// (EXECUTE can run a statement created by Parse and Bind one created by
// PREPARE), and so they share this registry.
//
// The registry can drift from the server's (a PREPARE that fails upstream,
// messages skipped after an error until Sync). It stays on the safe side:
// re-preparing an existing name keeps the union of what both versions
// need, and a name it does not know is admin (fail closed).
//
// A Session is used by one goroutine (the relay's client reader).
type Session struct {
	c       *Classifier
	fs      *analysis.Functions
	stmts   map[string]Statement
	portals map[string]Statement
}

// NewSession returns an empty registry that classifies with c (nil: no cache).
func (c *Classifier) NewSession() *Session {
	return &Session{c: c, stmts: map[string]Statement{}, portals: map[string]Statement{}}
}

// NewSession returns an empty registry without a shared cache.
func NewSession() *Session { return (*Classifier)(nil).NewSession() }

// SetFunctions sets the function classification of the session's
// database (nil: the built-in snapshot); later statements use it.
func (s *Session) SetFunctions(fs *analysis.Functions) { s.fs = fs }

func (s *Session) classify(sql string) (*Analysis, error) {
	if s.c == nil {
		return ClassifyWith(sql, s.fs)
	}
	return s.c.ClassifyWith(sql, s.fs)
}

// Parse handles an extended-protocol Parse: it classifies sql (cached) and
// remembers it as prepared statement name ("" is the unnamed statement,
// replaced by every Parse). The caller decides on the returned analysis.
func (s *Session) Parse(name, sql string) (*Analysis, error) {
	a, err := s.classify(sql)
	st := combine(sql, a)
	if name == "" {
		s.stmts[""] = st
	} else {
		s.register(name, st)
	}
	return a, err
}

// Lookup returns what prepared statement name does.
func (s *Session) Lookup(name string) (Statement, bool) {
	st, ok := s.stmts[name]
	return st, ok
}

// Bind handles an extended-protocol Bind of statement stmt into portal
// ("" is the unnamed portal). It returns the statement the portal will run,
// for the decision with the Bind's parameters; an unknown statement yields
// an admin statement and false.
func (s *Session) Bind(portal, stmt string) (Statement, bool) {
	st, ok := s.stmts[stmt]
	if !ok {
		st = unknownPrepared(stmt)
	}
	s.portals[portal] = st
	return st, ok
}

// Portal returns what portal runs (Execute). A portal this Session did not
// see bound (e.g. a cursor it did not see declared) is admin and false.
func (s *Session) Portal(name string) (Statement, bool) {
	st, ok := s.portals[name]
	if !ok {
		st = unknownPortal(name)
	}
	return st, ok
}

// Close handles an extended-protocol Close: kind 'S' forgets a prepared
// statement, 'P' a portal.
func (s *Session) Close(kind byte, name string) {
	switch kind {
	case 'S':
		delete(s.stmts, name)
	case 'P':
		delete(s.portals, name)
	}
}

// EndTransaction forgets portals that do not outlive a transaction; call
// it when the server reports ReadyForQuery with status idle. (Holdable
// cursors, rare, then count as unknown portals: fail closed.)
func (s *Session) EndTransaction() {
	clear(s.portals)
}

// Resolve returns the statements of a query string with every EXECUTE
// replaced by what the prepared statement does (including PREPAREs and
// DEALLOCATEs earlier in the same string). The SQL of a resolved EXECUTE
// stays "EXECUTE name(...)" — EXPLAIN EXECUTE gives its planner estimate.
// It does not change the registry: call Apply once the string is allowed.
func (s *Session) Resolve(a *Analysis) []Statement {
	if a == nil {
		return nil
	}
	var overlay map[string]*Statement // name -> statement (nil: deallocated) within this string
	var all bool
	out := make([]Statement, len(a.Statements))
	for i, st := range a.Statements {
		if st.Execute != "" {
			var p Statement
			var ok bool
			if o, in := overlay[st.Execute]; in {
				if o != nil {
					p, ok = *o, true
				}
			} else if !all {
				p, ok = s.stmts[st.Execute]
			}
			if ok {
				st = resolved(st, p)
			}
		}
		out[i] = st
		switch {
		case st.Prepare != nil:
			if overlay == nil {
				overlay = map[string]*Statement{}
			}
			p := st.Prepare.Statement
			if prev, ok := s.stmts[st.Prepare.Name]; ok && !all {
				p = union(prev, p)
			}
			overlay[st.Prepare.Name] = &p
		case st.DeallocateAll:
			all, overlay = true, map[string]*Statement{}
		case st.Deallocate != "":
			if overlay == nil {
				overlay = map[string]*Statement{}
			}
			overlay[st.Deallocate] = nil
		}
	}
	return out
}

// Apply records what the statements of an allowed (forwarded) query string
// do to the registry: PREPARE, DEALLOCATE [ALL], DISCARD ALL, DECLARE,
// CLOSE.
func (s *Session) Apply(stmts []Statement) {
	for _, st := range stmts {
		switch {
		case st.Prepare != nil:
			s.register(st.Prepare.Name, st.Prepare.Statement)
		case st.Deallocate != "":
			delete(s.stmts, st.Deallocate)
		case st.Cursor != "":
			c := st
			c.Cursor, c.SQL = "", st.SQL
			s.portals[st.Cursor] = c
		case st.ClosePortal != "":
			delete(s.portals, st.ClosePortal)
		}
		if st.DeallocateAll {
			clear(s.stmts)
		}
		if st.CloseAll {
			clear(s.portals)
		}
	}
}

func (s *Session) register(name string, st Statement) {
	if prev, ok := s.stmts[name]; ok {
		st = union(prev, st)
	}
	s.stmts[name] = st
}

// combine turns the analysis of a Parse text into one statement (PostgreSQL
// refuses several statements in a prepared statement; if it ever ran them,
// all their actions are needed).
func combine(sql string, a *Analysis) Statement {
	if a == nil || len(a.Statements) == 0 {
		return Statement{SQL: sql, Action: ActionSession, Requires: []Action{ActionSession}, Reason: "empty query"}
	}
	st := a.Statements[0]
	for _, o := range a.Statements[1:] {
		st = union(st, o)
	}
	st.SQL = sql
	return st
}

// union is a statement that needs everything a and b need.
func union(a, b Statement) Statement {
	s := setOf(a.required()...) | setOf(b.required()...)
	out := b
	out.Requires = s.list()
	out.Action = s.strongest()
	if out.Action != b.Action {
		out.Reason = a.Reason
	}
	out.NeedsEstimate = (a.NeedsEstimate || b.NeedsEstimate) && !s.has(ActionBulkDelete)
	out.HasWhere = a.HasWhere && b.HasWhere
	out.IsDDL = a.IsDDL || b.IsDDL
	out.Tables = dedupTables(append(append([]string(nil), a.Tables...), b.Tables...), nil)
	return out
}

// resolved is an EXECUTE statement that does what prepared statement p does
// (plus whatever its parameter expressions need).
func resolved(exec, p Statement) Statement {
	s := setOf(p.required()...)
	out := exec
	out.Reason = "EXECUTE of " + quoteIdent(exec.Execute) + ": " + p.Reason
	if exec.paramSet != 0 {
		s |= exec.paramSet
		if exec.paramSet.strongest().rank() > p.Action.rank() {
			out.Reason = "EXECUTE parameters: " + exec.paramReason
		}
	}
	if s&^setOf(ActionSession, ActionRead, ActionSearch) != 0 {
		s &^= setOf(ActionSession, ActionRead, ActionSearch)
	}
	out.Requires = s.list()
	out.Action = s.strongest()
	out.NeedsEstimate = p.NeedsEstimate && !s.has(ActionBulkDelete)
	out.HasWhere = p.HasWhere
	out.Tables = p.Tables
	out.IsDDL = p.IsDDL
	return out
}

func unknownPrepared(name string) Statement {
	return Statement{
		SQL: "EXECUTE " + quoteIdent(name), Action: ActionAdmin, Requires: []Action{ActionAdmin}, Execute: name,
		Reason: "prepared statement " + quoteIdent(name) + " is unknown to pgwarden: fail closed",
	}
}

func unknownPortal(name string) Statement {
	return Statement{
		SQL: "<portal " + quoteIdent(name) + ">", Action: ActionAdmin, Requires: []Action{ActionAdmin},
		Reason: "portal " + quoteIdent(name) + " is unknown to pgwarden: fail closed",
	}
}

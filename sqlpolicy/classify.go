package sqlpolicy

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgwarden/pgwarden/internal/analysis"
	"github.com/pgwarden/pgwarden/internal/parsesafe"
)

// TxKind says which transaction-control statement a statement is.
type TxKind uint8

const (
	TxNone TxKind = iota
	TxBegin
	TxCommit
	TxRollback
	TxSavepoint
	TxRelease
	TxRollbackTo
	TxTwoPhase // PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED (admin)
)

// PrepareInfo describes PREPARE name AS statement.
type PrepareInfo struct {
	Name      string
	Statement Statement // the prepared statement, classified as if executed
}

// Statement is one classified statement of a query string. Values handed
// out by a Classifier are shared between callers: treat them as read-only.
type Statement struct {
	SQL    string // the statement's own text (trimmed, without the final ';')
	Action Action // the strongest action the statement needs
	// Requires lists every action the statement needs, weakest first; it
	// always contains Action. A MERGE that updates and inserts needs both,
	// an INSERT ... SELECT ... FOR UPDATE needs insert and update. Reads
	// (read, search) are implied by any stronger action and not listed then.
	Requires []Action
	Reason   string   // why Action (for messages and `policy explain`)
	Tables   []string // relations named, schema-qualified where written

	HasWhere bool // the top-level DELETE/UPDATE has a WHERE (MERGE: a join condition)
	// NeedsEstimate: a DELETE/UPDATE with WHERE; the policy asks the planner
	// whether it is bulk (Policy.Refine / Policy.Evaluate).
	NeedsEstimate bool

	Prepare       *PrepareInfo // PREPARE name AS ...
	Execute       string       // EXECUTE name (also EXPLAIN ANALYZE EXECUTE name): resolve with Session.Resolve
	Deallocate    string       // DEALLOCATE name
	DeallocateAll bool         // DEALLOCATE ALL, DISCARD ALL
	Cursor        string       // DECLARE name CURSOR
	ClosePortal   string       // CLOSE name ("" with ClosePortalAll for CLOSE ALL)
	CloseAll      bool
	IsCopyTo      bool // COPY ... TO STDOUT
	IsCopyFrom    bool // COPY ... FROM STDIN
	IsDDL         bool // changes the catalog: catalog caches must refresh
	Tx            TxKind
	// NonPure: the statement calls a function that is not pure (reads
	// hidden data, writes state, admin, user-defined or unknown) or reads
	// a catalog relation exposing other rows' values (pg_stats): masking
	// must trace it even where its action is a plain read.
	NonPure bool
	// UnknownFunc: it calls a function the classification does not know
	// (admin); the caller may reload the catalog once and classify again.
	UnknownFunc bool

	dmlRoot bool // the root is SELECT/INSERT/UPDATE/DELETE/MERGE/VALUES
	// constSensitive: the classification looked at a constant's value
	// (set_config's setting name, SQL text given to query_to_xml, an
	// EXPLAIN option): a text differing only in constants may classify
	// differently, so the shape cache does not reuse it.
	constSensitive bool
	start, end     int32 // where SQL is in the classified text
	// paramSet/paramReason: actions needed by the expressions of an
	// EXECUTE's parameters, added when the EXECUTE is resolved.
	paramSet    actionSet
	paramReason string
}

// Analysis is a classified query string. Empty strings (and strings of
// only comments) have no statements: PostgreSQL answers EmptyQueryResponse.
type Analysis struct {
	Statements []Statement
}

// ParseError is returned when pg_query cannot parse the text. The
// Analysis returned with it holds one admin statement (fail closed).
type ParseError struct{ Msg string }

func (e *ParseError) Error() string { return "sqlpolicy: cannot parse SQL: " + e.Msg }

// maxNesting bounds classification of SQL inside SQL (query_to_xml('...')).
const maxNesting = 4

// Classify parses sql with the PostgreSQL parser and classifies each of
// its statements with the built-in function snapshot (PostgreSQL 15 and
// pgvector as shipped: every user-defined function is unknown). It never
// fails open: a string it cannot parse yields an error AND an Analysis
// with a single admin statement.
func Classify(sql string) (*Analysis, error) { return classify(sql, 0, nil) }

// ClassifyWith is Classify with the function classification of the
// database the statement runs in (nil: the built-in snapshot).
func ClassifyWith(sql string, fs *analysis.Functions) (*Analysis, error) {
	return classify(sql, 0, fs)
}

var builtinFuncs = sync.OnceValue(func() *analysis.Functions {
	return analysis.BuiltinFunctions(analysis.Options{}, "")
})

func orBuiltin(fs *analysis.Functions) *analysis.Functions {
	if fs == nil {
		return builtinFuncs()
	}
	return fs
}

func classify(sql string, depth int, fs *analysis.Functions) (*Analysis, error) {
	fs = orBuiltin(fs)
	tree, err := analysis.Parse(sql)
	if err != nil {
		return failClosed(sql, err.Error()), &ParseError{Msg: err.Error()}
	}
	a := &Analysis{Statements: make([]Statement, 0, len(tree.Stmts))}
	for _, raw := range tree.Stmts {
		start, end := stmtSpan(sql, raw)
		st := classifyRoot(raw.GetStmt(), sql[start:end], depth, fs)
		st.start, st.end = int32(start), int32(end)
		a.Statements = append(a.Statements, st)
	}
	return a, nil
}

func failClosed(sql, why string) *Analysis {
	return &Analysis{Statements: []Statement{{
		SQL: strings.TrimSpace(sql), Action: ActionAdmin, Requires: []Action{ActionAdmin},
		Reason: "the parser cannot place this statement (" + why + "): fail closed",
	}}}
}

// FunctionCall is the statement for a fast-path FunctionCall ('F')
// message, classified by the function's OID in fs (nil: the built-in
// snapshot) like SELECT fn(...). Its arguments are not inspected, so only
// a pure function is a read; any other class, an OID the catalog does not
// know, and a function whose effect depends on its arguments
// (set_config) is admin.
func FunctionCall(oid uint32, fs *analysis.Functions) Statement {
	v := orBuiltin(fs).ByOID(oid)
	st := Statement{SQL: fmt.Sprintf("<fast-path function call %s, oid %d>", v.Name, oid)}
	if v.Known && v.Class == analysis.Pure && v.Action == "" {
		st.Action, st.Requires = ActionRead, []Action{ActionRead}
		st.Reason = "fast-path call of " + v.Name + " (" + v.Reason + ")"
		return st
	}
	st.Action, st.Requires, st.NonPure = ActionAdmin, []Action{ActionAdmin}, true
	st.Reason = "fast-path call of " + v.Name + ": " + v.Reason
	if v.Known && v.Class != analysis.Admin {
		st.Reason = "fast-path call of " + v.Name + " (" + v.Class.String() + "; its arguments are not inspected): admin"
	}
	return st
}

// stmtSpan returns where a statement's own text is in sql: trimmed, without
// the final ';'. The bounds are never inside a constant (they sit on
// whitespace, ';' or a token's edge), which the shape cache relies on to
// move them to a text that differs only in constants.
func stmtSpan(sql string, raw *pg.RawStmt) (start, end int) {
	loc, n := int(raw.GetStmtLocation()), int(raw.GetStmtLen())
	if loc < 0 || loc > len(sql) {
		loc = 0
	}
	end = len(sql)
	if n > 0 && loc+n <= len(sql) {
		end = loc + n
	}
	for {
		for loc < end && analysis.IsSpace(sql[loc]) {
			loc++
		}
		for end > loc && analysis.IsSpace(sql[end-1]) {
			end--
		}
		if end > loc && sql[end-1] == ';' {
			end--
			continue
		}
		return loc, end
	}
}

// walker accumulates what one statement needs.
type walker struct {
	set      actionSet
	reasons  [len(actionOrder)]string
	tables   []string
	ctes     []string
	estimate bool // a DELETE/UPDATE with WHERE that runs now
	executes bool // false inside definitions (function bodies, rules, PREPARE, plain EXPLAIN)
	depth    int
	nonPure  bool
	unknown  bool
	fs       *analysis.Functions
	st       *Statement // root-level facts
	// consts is set once the classification looked at a constant's value
	// (shared by every walker of one statement): its result may then
	// differ for a text that differs only in constants, so the shape
	// cache must not reuse it. Only constValue-style accessors set it;
	// TestConstReadsAreMarked keeps A_Const reads inside them.
	consts *bool
}

// readsConst marks the classification as depending on constant values.
func (w *walker) readsConst() { *w.consts = true }

func (w *walker) add(a Action, why string) {
	w.set = w.set.with(a)
	if r := a.rank(); r < len(w.reasons) && w.reasons[r] == "" {
		w.reasons[r] = why
	}
}

// merge adds what another walker found.
func (w *walker) merge(o *walker, prefix string) {
	for i, a := range actionOrder {
		if o.set&(1<<i) != 0 {
			w.add(a, prefix+o.reasons[i])
		}
	}
	w.tables = append(w.tables, o.tables...)
	w.ctes = append(w.ctes, o.ctes...)
	w.nonPure = w.nonPure || o.nonPure
	w.unknown = w.unknown || o.unknown
}

func (w *walker) sub(executes bool) *walker {
	return &walker{executes: executes, depth: w.depth, fs: w.fs, st: &Statement{SQL: w.st.SQL}, consts: w.consts}
}

func classifyRoot(n *pg.Node, text string, depth int, fs *analysis.Functions) Statement {
	w := &walker{executes: true, depth: depth, fs: fs, st: &Statement{SQL: text}, consts: new(bool)}
	w.root(n)
	return w.finish()
}

// finish turns what the walker found into the Statement.
func (w *walker) finish() Statement {
	st := *w.st
	set := w.set
	if set == 0 {
		set = setOf(ActionAdmin)
		w.reasons[ActionAdmin.rank()] = "statement kind not recognised: fail closed"
	}
	if set&^setOf(ActionSession, ActionRead, ActionSearch) != 0 {
		set &^= setOf(ActionSession, ActionRead, ActionSearch)
	} else if set&^setOf(ActionSession) != 0 {
		set &^= setOf(ActionSession)
	}
	st.Action = set.strongest()
	st.Requires = set.list()
	st.Reason = w.reasons[st.Action.rank()]
	st.NeedsEstimate = w.estimate && !set.has(ActionBulkDelete)
	st.IsDDL = set&setOf(ActionDDL, ActionDrop, ActionIndex) != 0 || (set.has(ActionAdmin) && !st.dmlRoot)
	st.Tables = dedupTables(w.tables, w.ctes)
	st.NonPure = w.nonPure
	st.UnknownFunc = w.unknown
	st.constSensitive = *w.consts
	for _, t := range st.Tables {
		if analysis.HiddenRelations[strings.TrimPrefix(t, "pg_catalog.")] {
			st.NonPure = true
		}
	}
	return st
}

func dedupTables(ts, ctes []string) []string {
	if len(ts) == 0 {
		return nil
	}
	out := make([]string, 0, len(ts))
outer:
	for _, t := range ts {
		for _, c := range ctes {
			if c == t {
				continue outer
			}
		}
		for _, o := range out {
			if o == t {
				continue outer
			}
		}
		out = append(out, t)
	}
	return out
}

// root classifies a top-level statement (or the query of DECLARE,
// EXPLAIN, PREPARE): a SELECT there is read or search by its shape.
func (w *walker) root(n *pg.Node) {
	if n == nil {
		return
	}
	switch n.Node.(type) {
	case *pg.Node_SelectStmt, *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		w.st.dmlRoot = true
	}
	switch s := n.Node.(type) {
	case *pg.Node_SelectStmt:
		if mayHaveDistance(w.st.SQL) && isSearch(s.SelectStmt) {
			w.add(ActionSearch, "SELECT ordered or filtered by a pgvector distance")
		} else {
			w.add(ActionRead, "SELECT")
		}
	case *pg.Node_DeleteStmt:
		w.st.HasWhere = s.DeleteStmt.GetWhereClause() != nil
	case *pg.Node_UpdateStmt:
		w.st.HasWhere = s.UpdateStmt.GetWhereClause() != nil
	case *pg.Node_MergeStmt:
		w.st.HasWhere = s.MergeStmt.GetJoinCondition() != nil
	}
	w.walk(n.ProtoReflect())
}

// mayHaveDistance reports whether sql could contain a pgvector distance
// operator or function, as a cheap filter before isSearch walks the tree
// (the walk is about a third of classifying a short SELECT). It must never
// say no to a text whose tree has one: operators are single tokens, so
// their characters appear as written (OPERATOR(public.<->) too); function
// names appear case-insensitively unless spelled with Unicode escapes
// (U&"..."), which always take the walk. Nested SQL in string literals
// is classified from its own decoded text.
func mayHaveDistance(sql string) bool {
	for i := 0; i+1 < len(sql); i++ {
		switch c := sql[i]; c {
		case '<':
			if i+2 < len(sql) && sql[i+2] == '>' {
				switch sql[i+1] {
				case '-', '#', '=', '+', '~', '%':
					return true
				}
			}
		case 'u', 'U':
			if sql[i+1] == '&' {
				return true
			}
		case '_':
			// l2_distance, cosine_distance, inner_product, vector_dims, ...:
			// every name in analysis.DistanceFuncs has "_distance", "_product" or "_dims"
			rest := sql[i+1:]
			if hasPrefixFold(rest, "distance") || hasPrefixFold(rest, "product") || hasPrefixFold(rest, "dims") {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix with ASCII case folding (prefix lower case).
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// isSearch: the query (every branch of a set operation) orders or filters
// by a pgvector distance. Subqueries do not change the outer shape.
func isSearch(s *pg.SelectStmt) bool {
	if s == nil {
		return false
	}
	if containsDistance(s.GetSortClause()) {
		return true
	}
	if s.GetOp() != pg.SetOperation_SETOP_NONE && s.GetOp() != pg.SetOperation_SET_OPERATION_UNDEFINED {
		return isSearch(s.GetLarg()) && isSearch(s.GetRarg())
	}
	return s.GetWhereClause() != nil && containsDistance([]*pg.Node{s.GetWhereClause()})
}

func containsDistance(ns []*pg.Node) bool {
	found := false
	for _, n := range ns {
		inspect(n.ProtoReflect(), func(m proto.Message) bool {
			switch x := m.(type) {
			case *pg.A_Expr:
				if names := x.GetName(); len(names) > 0 && analysis.DistanceOps[names[len(names)-1].GetString_().GetSval()] {
					found = true
				}
			case *pg.FuncCall:
				if _, name := funcName(x.GetFuncname()); analysis.DistanceFuncs[name] {
					found = true
				}
			}
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

// inspect walks every message under m depth-first; f returns whether to
// descend into the message's fields.
func inspect(m protoreflect.Message, f func(proto.Message) bool) {
	if !m.IsValid() {
		return
	}
	if !f(m.Interface()) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				inspect(l.Get(i).Message(), f)
			}
		} else if !fd.IsMap() {
			inspect(v.Message(), f)
		}
		return true
	})
}

func (w *walker) walk(m protoreflect.Message) { inspect(m, w.visit) }

func funcName(ns []*pg.Node) (schema, name string) {
	if len(ns) == 0 {
		return "", ""
	}
	name = ns[len(ns)-1].GetString_().GetSval()
	if len(ns) >= 2 {
		schema = ns[len(ns)-2].GetString_().GetSval()
	}
	return schema, name
}

// stringConst returns the value of a string constant ('x' or 'x'::type).
// The classification then depends on constant values.
func (w *walker) stringConst(n *pg.Node) (string, bool) {
	w.readsConst()
	for n != nil {
		switch x := n.Node.(type) {
		case *pg.Node_AConst:
			if sv, ok := x.AConst.GetVal().(*pg.A_Const_Sval); ok {
				return sv.Sval.GetSval(), true
			}
			return "", false
		case *pg.Node_TypeCast:
			n = x.TypeCast.GetArg()
		default:
			return "", false
		}
	}
	return "", false
}

func (w *walker) modify(a Action, where *pg.Node, what string) {
	if where == nil {
		w.add(ActionBulkDelete, what+" without WHERE affects every row: bulk")
		return
	}
	w.add(a, what)
	if w.executes {
		w.estimate = true
	}
}

func relName(r *pg.RangeVar) string {
	if r == nil || r.GetRelname() == "" {
		return ""
	}
	name := r.GetRelname()
	if r.GetSchemaname() != "" {
		name = r.GetSchemaname() + "." + name
		if r.GetCatalogname() != "" {
			name = r.GetCatalogname() + "." + name
		}
	}
	return name
}

// visit classifies one node of the tree and says whether to descend.
func (w *walker) visit(m proto.Message) bool {
	switch n := m.(type) {
	// ---- expressions and references
	case *pg.RangeVar:
		if name := relName(n); name != "" {
			w.tables = append(w.tables, name)
		}
	case *pg.CommonTableExpr:
		w.ctes = append(w.ctes, n.GetCtename())
	case *pg.FuncCall:
		w.funcCall(n)

	// ---- data manipulation (anywhere: CTEs, subqueries, rules, COPY (...))
	case *pg.SelectStmt:
		if n.GetIntoClause() != nil {
			w.add(ActionDDL, "SELECT ... INTO creates a table")
		}
		if len(n.GetLockingClause()) > 0 {
			w.add(ActionUpdate, "SELECT ... FOR UPDATE/SHARE locks rows (PostgreSQL requires UPDATE privilege)")
		}
	case *pg.InsertStmt:
		w.add(ActionInsert, "INSERT")
		if oc := n.GetOnConflictClause(); oc != nil && oc.GetAction() == pg.OnConflictAction_ONCONFLICT_UPDATE {
			w.add(ActionUpdate, "INSERT ... ON CONFLICT DO UPDATE")
		}
	case *pg.UpdateStmt:
		if r := n.GetRelation(); r.GetRelname() == "pg_settings" && (r.GetSchemaname() == "" || r.GetSchemaname() == "pg_catalog") {
			// Its rule calls set_config for any setting (role, standard_conforming_strings, ...);
			// PostgreSQL grants UPDATE on it to PUBLIC.
			w.add(ActionAdmin, "UPDATE of pg_settings changes settings through set_config")
		}
		w.modify(ActionUpdate, n.GetWhereClause(), "UPDATE")
	case *pg.DeleteStmt:
		w.modify(ActionDelete, n.GetWhereClause(), "DELETE")
	case *pg.MergeStmt:
		for _, c := range n.GetMergeWhenClauses() {
			switch c.GetMergeWhenClause().GetCommandType() {
			case pg.CmdType_CMD_INSERT:
				w.add(ActionInsert, "MERGE ... THEN INSERT")
			case pg.CmdType_CMD_UPDATE:
				w.modify(ActionUpdate, n.GetJoinCondition(), "MERGE ... THEN UPDATE")
			case pg.CmdType_CMD_DELETE:
				w.modify(ActionDelete, n.GetJoinCondition(), "MERGE ... THEN DELETE")
			case pg.CmdType_CMD_NOTHING:
			default:
				w.add(ActionAdmin, "MERGE action not recognised: fail closed")
			}
		}
		if len(n.GetMergeWhenClauses()) == 0 {
			w.add(ActionRead, "MERGE without actions")
		}

	// ---- things that run SQL we cannot see, or escape policy
	case *pg.DoStmt:
		w.add(ActionAdmin, "DO runs an anonymous code block")
		return false
	case *pg.CallStmt:
		w.add(ActionAdmin, "CALL runs a procedure")
	case *pg.PLAssignStmt:
		w.add(ActionAdmin, "PL/pgSQL assignment outside a function")

	// ---- prepared statements, cursors, EXPLAIN
	case *pg.PrepareStmt:
		sub := w.sub(true)
		sub.root(n.GetQuery())
		inner := sub.finish()
		w.st.Prepare = &PrepareInfo{Name: n.GetName(), Statement: inner}
		w.merge(sub, "PREPARE of: ")
		return false
	case *pg.ExecuteStmt:
		sub := w.sub(true)
		for _, p := range n.GetParams() {
			sub.walk(p.ProtoReflect())
		}
		w.st.Execute = n.GetName()
		w.st.paramSet = sub.set
		w.st.paramReason = sub.reasons[sub.set.strongest().rank()]
		w.add(ActionAdmin, "EXECUTE of prepared statement "+quoteIdent(n.GetName())+" that this session did not prepare: fail closed")
		return false
	case *pg.DeallocateStmt:
		w.add(ActionSession, "DEALLOCATE")
		if n.GetIsall() {
			w.st.DeallocateAll = true
		} else {
			w.st.Deallocate = n.GetName()
		}
	case *pg.DeclareCursorStmt:
		w.st.Cursor = n.GetPortalname()
		w.root(n.GetQuery())
		return false
	case *pg.FetchStmt:
		w.add(ActionSession, "FETCH/MOVE from a cursor whose query was checked at DECLARE")
	case *pg.ClosePortalStmt:
		w.add(ActionSession, "CLOSE cursor")
		if n.GetPortalname() == "" {
			w.st.CloseAll = true
		} else {
			w.st.ClosePortal = n.GetPortalname()
		}
	case *pg.ExplainStmt:
		w.explain(n)
		return false

	// ---- session
	case *pg.VariableSetStmt:
		w.setStmt(n)
		return false
	case *pg.VariableShowStmt:
		name := strings.ToLower(n.GetName())
		switch {
		case name == "all":
			w.add(ActionRead, "SHOW ALL")
		case settingIsOrdinary(name):
			w.add(ActionSession, "SHOW of an ordinary setting")
		default:
			w.add(ActionRead, "SHOW")
		}
	case *pg.TransactionStmt:
		w.transaction(n)
	case *pg.DiscardStmt:
		w.add(ActionSession, "DISCARD")
		if n.GetTarget() == pg.DiscardMode_DISCARD_ALL {
			w.st.DeallocateAll = true
			w.st.CloseAll = true
		}
	case *pg.ListenStmt:
		w.add(ActionSession, "LISTEN")
	case *pg.UnlistenStmt:
		w.add(ActionSession, "UNLISTEN")
	case *pg.NotifyStmt:
		w.add(ActionSession, "NOTIFY")
	case *pg.ConstraintsSetStmt:
		w.add(ActionSession, "SET CONSTRAINTS")
	case *pg.LockStmt:
		if n.GetMode() == 1 { // AccessShareLock
			w.add(ActionRead, "LOCK ... IN ACCESS SHARE MODE")
		} else {
			w.add(ActionUpdate, "LOCK TABLE in a mode that blocks writers (PostgreSQL requires write privileges)")
		}

	// ---- COPY
	case *pg.CopyStmt:
		w.copyStmt(n)

	// ---- TRUNCATE, DROP
	case *pg.TruncateStmt:
		w.add(ActionTruncate, "TRUNCATE")
	case *pg.DropStmt:
		w.dropStmt(n)
	case *pg.DropdbStmt:
		w.add(ActionDrop, "DROP DATABASE")

	// ---- indexes
	case *pg.IndexStmt:
		w.add(ActionIndex, "CREATE INDEX")
	case *pg.ReindexStmt:
		w.add(ActionIndex, "REINDEX")

	// ---- ActionDDL
	case *pg.CreateStmt:
		w.add(ActionDDL, "CREATE TABLE")
	case *pg.CreateTableAsStmt:
		if n.GetObjtype() == pg.ObjectType_OBJECT_MATVIEW {
			w.add(ActionDDL, "CREATE MATERIALIZED VIEW")
		} else {
			w.add(ActionDDL, "CREATE TABLE AS")
		}
	case *pg.ViewStmt:
		w.add(ActionDDL, "CREATE VIEW")
		w.executes = false
	case *pg.CreateSchemaStmt:
		w.add(ActionDDL, "CREATE SCHEMA")
	case *pg.AlterTableStmt:
		if n.GetObjtype() == pg.ObjectType_OBJECT_INDEX {
			w.add(ActionIndex, "ALTER INDEX")
		} else {
			w.add(ActionDDL, "ALTER "+objName(n.GetObjtype()))
		}
		for _, c := range n.GetCmds() {
			if c.GetAlterTableCmd().GetSubtype() == pg.AlterTableType_AT_ChangeOwner {
				w.add(ActionAdmin, "ALTER ... OWNER TO changes ownership")
			}
		}
	case *pg.RenameStmt:
		switch n.GetRenameType() {
		case pg.ObjectType_OBJECT_ROLE, pg.ObjectType_OBJECT_DATABASE, pg.ObjectType_OBJECT_TABLESPACE,
			pg.ObjectType_OBJECT_EVENT_TRIGGER, pg.ObjectType_OBJECT_FOREIGN_SERVER, pg.ObjectType_OBJECT_FDW,
			pg.ObjectType_OBJECT_PUBLICATION, pg.ObjectType_OBJECT_SUBSCRIPTION, pg.ObjectType_OBJECT_LANGUAGE:
			w.add(ActionAdmin, "ALTER "+objName(n.GetRenameType())+" ... RENAME")
		case pg.ObjectType_OBJECT_INDEX:
			w.add(ActionIndex, "ALTER INDEX ... RENAME")
		default:
			w.add(ActionDDL, "ALTER "+objName(n.GetRenameType())+" ... RENAME")
		}
	case *pg.CreateFunctionStmt:
		w.createFunction(n)
	case *pg.AlterFunctionStmt:
		w.add(ActionDDL, "ALTER FUNCTION")
		w.functionOptions(n.GetActions())
	case *pg.RuleStmt:
		w.add(ActionDDL, "CREATE RULE")
		w.executes = false
	case *pg.CreateTrigStmt:
		w.add(ActionDDL, "CREATE TRIGGER")
	case *pg.CreateSeqStmt, *pg.AlterSeqStmt, *pg.CompositeTypeStmt, *pg.CreateEnumStmt, *pg.AlterEnumStmt,
		*pg.CreateRangeStmt, *pg.CreateDomainStmt, *pg.AlterDomainStmt, *pg.DefineStmt, *pg.AlterTypeStmt,
		*pg.AlterOperatorStmt, *pg.CreateCastStmt, *pg.CreateConversionStmt, *pg.CreateOpClassStmt,
		*pg.CreateOpFamilyStmt, *pg.AlterOpFamilyStmt, *pg.CreateStatsStmt, *pg.AlterStatsStmt,
		*pg.AlterCollationStmt, *pg.AlterTSDictionaryStmt, *pg.AlterTSConfigurationStmt,
		*pg.CreatePolicyStmt, *pg.AlterPolicyStmt, *pg.CommentStmt, *pg.RefreshMatViewStmt,
		*pg.AlterObjectSchemaStmt, *pg.AlterObjectDependsStmt, *pg.ReplicaIdentityStmt:
		w.add(ActionDDL, ddlName(m))

	// ---- admin: roles, privileges, system, extensions, foreign data
	case *pg.CreateRoleStmt, *pg.AlterRoleStmt, *pg.AlterRoleSetStmt, *pg.DropRoleStmt, *pg.GrantStmt,
		*pg.GrantRoleStmt, *pg.AlterDefaultPrivilegesStmt, *pg.DropOwnedStmt, *pg.ReassignOwnedStmt,
		*pg.AlterOwnerStmt, *pg.AlterSystemStmt, *pg.CreateExtensionStmt, *pg.AlterExtensionStmt,
		*pg.AlterExtensionContentsStmt, *pg.LoadStmt, *pg.VacuumStmt, *pg.ClusterStmt, *pg.CheckPointStmt,
		*pg.CreatedbStmt, *pg.AlterDatabaseStmt, *pg.AlterDatabaseSetStmt, *pg.AlterDatabaseRefreshCollStmt,
		*pg.SecLabelStmt, *pg.CreateForeignServerStmt, *pg.AlterForeignServerStmt, *pg.CreateUserMappingStmt,
		*pg.AlterUserMappingStmt, *pg.DropUserMappingStmt, *pg.CreateFdwStmt, *pg.AlterFdwStmt,
		*pg.CreateForeignTableStmt, *pg.ImportForeignSchemaStmt, *pg.CreateTableSpaceStmt,
		*pg.DropTableSpaceStmt, *pg.AlterTableSpaceOptionsStmt, *pg.AlterTableMoveAllStmt,
		*pg.CreatePublicationStmt, *pg.AlterPublicationStmt, *pg.CreateSubscriptionStmt,
		*pg.AlterSubscriptionStmt, *pg.DropSubscriptionStmt, *pg.CreateEventTrigStmt, *pg.AlterEventTrigStmt,
		*pg.CreatePLangStmt, *pg.CreateAmStmt, *pg.CreateTransformStmt:
		w.add(ActionAdmin, ddlName(m))
		return false // options may hold passwords; nothing inside can lower the class

	default:
		if strings.HasSuffix(string(m.ProtoReflect().Descriptor().Name()), "Stmt") {
			if _, ok := m.(*pg.ReturnStmt); !ok {
				w.add(ActionAdmin, "statement type "+string(m.ProtoReflect().Descriptor().Name())+" not recognised: fail closed")
			}
		}
	}
	return true
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// ddlName turns a node type name (CreateSeqStmt) into words (CREATE SEQ).
func ddlName(m proto.Message) string {
	name := strings.TrimSuffix(string(m.ProtoReflect().Descriptor().Name()), "Stmt")
	var b strings.Builder
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func objName(t pg.ObjectType) string {
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
}

func (w *walker) funcCall(n *pg.FuncCall) {
	schema, name := funcName(n.GetFuncname())
	v := w.fs.Lookup(schema, name)
	if v.Class != analysis.Pure || !v.Known || v.Volatile {
		w.nonPure = true // masking must trace it (MayWrite, hidden reads)
	}
	if !v.Known {
		w.unknown = true
		w.add(ActionAdmin, v.Reason)
		return
	}
	switch v.Action {
	case "":
	case "admin":
		w.add(ActionAdmin, "calls "+v.Name+" ("+v.Reason+")")
		return
	default:
		if a, ok := ParseAction(v.Action); ok {
			w.add(a, "calls "+v.Name+" ("+v.Reason+")")
		} else {
			w.add(ActionAdmin, "calls "+v.Name+" (action "+v.Action+" unknown): fail closed")
			return
		}
	}
	args := n.GetArgs()
	switch {
	case name == "set_config":
		if len(args) == 0 {
			w.add(ActionAdmin, "set_config without arguments")
			return
		}
		setting, ok := w.stringConst(args[0])
		if !ok {
			w.add(ActionAdmin, "set_config with a computed setting name: fail closed")
			return
		}
		s := strings.ToLower(strings.TrimSpace(setting))
		if !settingIsOrdinary(s) {
			w.add(ActionAdmin, "set_config('"+s+"', ...) changes a protected setting")
			return
		}
		if parsesafe.Governs(s) {
			v, ok := "", len(args) >= 2
			if ok {
				v, ok = w.stringConst(args[1])
			}
			if !ok {
				w.add(ActionAdmin, "set_config('"+s+"', ...) with a computed value: fail closed")
			} else if why, safe := parsesafe.Check(s, v); !safe {
				w.add(ActionAdmin, "set_config('"+s+"', ...): "+why)
			}
		}
	case v.Reach == analysis.ReachSQL:
		if v.SQLArgc != 0 && len(args) != v.SQLArgc {
			return
		}
		if v.SQLArg >= len(args) {
			return
		}
		inner, ok := w.stringConst(args[v.SQLArg])
		if !ok {
			w.add(ActionAdmin, v.Name+" runs computed SQL: fail closed")
			return
		}
		if w.depth+1 > maxNesting {
			w.add(ActionAdmin, v.Name+" nested too deeply: fail closed")
			return
		}
		a, err := classify(inner, w.depth+1, w.fs)
		if err != nil {
			w.add(ActionAdmin, v.Name+" runs SQL that cannot be parsed: fail closed")
			return
		}
		for _, st := range a.Statements {
			for _, act := range st.Requires {
				w.add(act, v.Name+" runs: "+st.Reason)
			}
			w.nonPure = w.nonPure || st.NonPure
			w.unknown = w.unknown || st.UnknownFunc
			w.estimate = w.estimate || st.NeedsEstimate
		}
	}
}

func (w *walker) explain(n *pg.ExplainStmt) {
	analyze := false
	for _, o := range n.GetOptions() {
		d := o.GetDefElem()
		if d == nil || strings.ToLower(d.GetDefname()) != "analyze" {
			continue
		}
		analyze = !w.defElemFalse(d)
	}
	sub := w.sub(analyze)
	sub.root(n.GetQuery())
	inner := sub.finish()
	if analyze {
		w.merge(sub, "EXPLAIN ANALYZE runs: ")
		w.estimate = w.estimate || sub.estimate
		w.st.Execute = inner.Execute
		w.st.paramSet, w.st.paramReason = inner.paramSet, inner.paramReason
		return
	}
	w.add(ActionRead, "EXPLAIN without ANALYZE does not run the statement")
	w.tables = append(w.tables, sub.tables...)
	w.ctes = append(w.ctes, sub.ctes...)
	if sub.set.has(ActionAdmin) && inner.Execute == "" {
		w.add(ActionAdmin, "EXPLAIN of: "+sub.reasons[ActionAdmin.rank()])
	}
}

// defElemFalse reports whether an option's argument clearly says false;
// anything unclear counts as true (fail closed).
func (w *walker) defElemFalse(d *pg.DefElem) bool {
	w.readsConst()
	arg := d.GetArg()
	if arg == nil {
		return false
	}
	switch x := arg.Node.(type) {
	case *pg.Node_Boolean:
		return !x.Boolean.GetBoolval()
	case *pg.Node_Integer:
		return x.Integer.GetIval() == 0
	case *pg.Node_String_:
		switch strings.ToLower(x.String_.GetSval()) {
		case "false", "off", "0", "no":
			return true
		}
	case *pg.Node_AConst:
		switch v := x.AConst.GetVal().(type) {
		case *pg.A_Const_Boolval:
			return !v.Boolval.GetBoolval()
		case *pg.A_Const_Ival:
			return v.Ival.GetIval() == 0
		case *pg.A_Const_Sval:
			switch strings.ToLower(v.Sval.GetSval()) {
			case "false", "off", "0", "no":
				return true
			}
		}
	}
	return false
}

func (w *walker) setStmt(n *pg.VariableSetStmt) {
	switch n.GetKind() {
	case pg.VariableSetKind_VAR_RESET_ALL:
		w.add(ActionSession, "RESET ALL")
		return
	case pg.VariableSetKind_VAR_SET_MULTI:
		w.add(ActionSession, "SET TRANSACTION / SESSION CHARACTERISTICS")
		return
	}
	name := strings.ToLower(n.GetName())
	verb := "SET"
	if n.GetKind() == pg.VariableSetKind_VAR_RESET {
		verb = "RESET"
	}
	switch {
	case name == "role":
		w.add(ActionAdmin, verb+" ROLE changes the session's identity")
	case name == "session_authorization":
		w.add(ActionAdmin, verb+" SESSION AUTHORIZATION changes the session's identity")
	case !settingIsOrdinary(name):
		w.add(ActionAdmin, verb+" of "+name+", which is not an ordinary session setting")
	case n.GetKind() == pg.VariableSetKind_VAR_SET_VALUE && w.parseSafeSet(name, n.GetArgs()) != "":
		w.add(ActionAdmin, verb+" of "+name+": "+w.parseSafeSet(name, n.GetArgs()))
	default:
		// RESET, SET ... TO DEFAULT and SET ... FROM CURRENT return to a
		// value the session already had, which the gateway checked when
		// the server reported it (startup and ParameterStatus).
		w.add(ActionSession, verb+" of an ordinary setting")
	}
}

// settingConst is a SET value that is a single string or integer constant.
func (w *walker) settingConst(n *pg.Node) (string, bool) {
	w.readsConst()
	c := n.GetAConst()
	if c == nil {
		return "", false
	}
	switch x := c.GetVal().(type) {
	case *pg.A_Const_Sval:
		return x.Sval.GetSval(), true
	case *pg.A_Const_Ival:
		return strconv.FormatInt(int64(x.Ival.GetIval()), 10), true
	}
	return "", false
}

// parseSafeSet returns why SET name = args would make the server lex SQL
// differently from pg_query ("" when it does not; see internal/parsesafe).
// A value that is not a single constant fails closed.
func (w *walker) parseSafeSet(name string, args []*pg.Node) string {
	const computed = "only a single constant value can be checked: fail closed"
	if !parsesafe.Governs(name) {
		return ""
	}
	if len(args) != 1 {
		return computed
	}
	v, ok := w.settingConst(args[0])
	if !ok {
		return computed
	}
	if why, ok := parsesafe.Check(name, v); !ok {
		return why
	}
	return ""
}

func (w *walker) transaction(n *pg.TransactionStmt) {
	switch n.GetKind() {
	case pg.TransactionStmtKind_TRANS_STMT_BEGIN, pg.TransactionStmtKind_TRANS_STMT_START:
		w.st.Tx = TxBegin
	case pg.TransactionStmtKind_TRANS_STMT_COMMIT:
		w.st.Tx = TxCommit
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		w.st.Tx = TxRollback
	case pg.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
		w.st.Tx = TxSavepoint
	case pg.TransactionStmtKind_TRANS_STMT_RELEASE:
		w.st.Tx = TxRelease
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		w.st.Tx = TxRollbackTo
	case pg.TransactionStmtKind_TRANS_STMT_PREPARE, pg.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED,
		pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		w.st.Tx = TxTwoPhase
		w.add(ActionAdmin, "two-phase commit keeps locks beyond the session")
		return
	default:
		w.add(ActionAdmin, "transaction statement not recognised: fail closed")
		return
	}
	w.add(ActionSession, "transaction control")
}

func (w *walker) copyStmt(n *pg.CopyStmt) {
	server := n.GetIsProgram() || n.GetFilename() != ""
	switch {
	case n.GetIsFrom() && server:
		w.add(ActionAdmin, "COPY FROM a server file or PROGRAM")
	case n.GetIsFrom():
		w.add(ActionInsert, "COPY FROM STDIN")
		w.st.IsCopyFrom = true
	case server:
		w.add(ActionAdmin, "COPY TO a server file or PROGRAM")
	default:
		w.add(ActionExport, "COPY TO STDOUT")
		w.st.IsCopyTo = true
	}
}

func (w *walker) dropStmt(n *pg.DropStmt) {
	switch t := n.GetRemoveType(); t {
	case pg.ObjectType_OBJECT_EXTENSION, pg.ObjectType_OBJECT_FOREIGN_SERVER, pg.ObjectType_OBJECT_FDW,
		pg.ObjectType_OBJECT_EVENT_TRIGGER, pg.ObjectType_OBJECT_LANGUAGE, pg.ObjectType_OBJECT_PUBLICATION,
		pg.ObjectType_OBJECT_ACCESS_METHOD, pg.ObjectType_OBJECT_TRANSFORM:
		w.add(ActionAdmin, "DROP "+objName(t))
	default:
		w.add(ActionDrop, "DROP "+objName(t))
	}
}

// trustedLanguages cannot reach the operating system.
var trustedLanguages = map[string]bool{
	"sql": true, "plpgsql": true, "plperl": true, "pltcl": true, "plv8": true, "pllua": true, "plrust": true,
}

func (w *walker) createFunction(n *pg.CreateFunctionStmt) {
	if n.GetIsProcedure() {
		w.add(ActionDDL, "CREATE PROCEDURE")
	} else {
		w.add(ActionDDL, "CREATE FUNCTION")
	}
	w.functionOptions(n.GetOptions())
	// The body is not run now; writes in a BEGIN ATOMIC body still count
	// (without a planner estimate).
	w.executes = false
}

func (w *walker) functionOptions(opts []*pg.Node) {
	for _, o := range opts {
		d := o.GetDefElem()
		if d == nil {
			continue
		}
		switch strings.ToLower(d.GetDefname()) {
		case "language":
			lang := strings.ToLower(d.GetArg().GetString_().GetSval())
			if !trustedLanguages[lang] {
				w.add(ActionAdmin, "function in untrusted language "+lang)
			}
		case "security":
			if !w.defElemFalse(d) {
				w.add(ActionAdmin, "SECURITY DEFINER function runs with its owner's rights")
			}
		case "set":
			if vs := d.GetArg().GetVariableSetStmt(); vs != nil {
				w.setStmt(vs)
			}
		}
	}
}

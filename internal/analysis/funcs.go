package analysis

import (
	"sort"
	"strings"
)

// Class is what a function may do, from the point of view of policy and
// masking. Classes are ordered: a name with several overloads takes the
// strongest class of them.
type Class uint8

const (
	// Pure: its result depends only on its arguments (and harmless session
	// facts such as the time); masking traces the output from the arguments.
	Pure Class = iota
	// ReadsHidden: it reads data the statement does not name as a column —
	// relations by name, SQL text, cursors, session state, or anything a
	// user-defined function's body does. Reach says how far.
	ReadsHidden
	// WritesState: it changes state outside its result (settings,
	// notifications, sequences, advisory locks, any non-built-in VOLATILE
	// function); masked values may not flow into it.
	WritesState
	// Admin: server files, large objects, other backends, replication,
	// dblink; the statement needs the admin action.
	Admin
)

func (c Class) String() string {
	switch c {
	case Pure:
		return "pure"
	case ReadsHidden:
		return "reads hidden data"
	case WritesState:
		return "writes state"
	case Admin:
		return "admin"
	}
	return "unknown"
}

// Reach is how far a ReadsHidden function reads.
type Reach uint8

const (
	ReachNone     Reach = iota
	ReachSession        // settings and this session's own state (current_setting, pg_cursor)
	ReachRelation       // the relation named by its first argument (table_to_xml)
	ReachSchema         // every relation of the schema named by its first argument
	ReachSQL            // runs the SQL text of argument SQLArg (query_to_xml, ts_stat)
	ReachCursor         // the rows of the cursor named by its first argument
	ReachDatabase       // every relation of the database (database_to_xml, statistics)
	ReachAny            // unknown: a user-defined function's body, an unknown function
)

// Func is one pg_proc row.
type Func struct {
	OID        uint32
	Schema     string
	Name       string
	Volatility byte // 'i', 's', 'v'
	SecDef     bool
	Language   string
	Kind       byte   // 'f', 'p', 'a', 'w'
	Extension  string // owning extension, "" for none
	Args       string // identity arguments (for messages and the closed-world report)
}

// BuiltIn: part of PostgreSQL (an OID below FirstNormalObjectId) or of an
// extension whose functions were reviewed (reviewedExtensions).
func (f *Func) BuiltIn() bool {
	if f.Extension != "" {
		return reviewedExtensions[f.Extension]
	}
	return f.OID < firstNormalObjectID
}

const firstNormalObjectID = 16384

// reviewedExtensions are extensions whose functions the exceptions table
// covers; functions of any other extension are classified like
// user-defined ones (opaque).
var reviewedExtensions = map[string]bool{
	"vector":  true, // pgvector 0.8: types, distances, index support
	"plpgsql": true, // the language handler functions
}

// Verdict is the classification of a function name or OID.
type Verdict struct {
	Name        string // schema.name (or the name as written when unknown)
	Class       Class
	Reach       Reach
	SQLArg      int  // ReachSQL: index of the argument holding SQL text
	SQLArgc     int  // ReachSQL: only with this many arguments (0: any)
	Volatile    bool // some candidate is VOLATILE (or the function is unknown)
	UserDefined bool // some candidate is not built-in
	SecDef      bool // some candidate is SECURITY DEFINER
	Allowed     bool // vouched for by policy.functions.allow
	// Action is the policy action calling it needs beyond the statement's
	// own ("admin", "update", or "" for none).
	Action string
	Known  bool // false: not in the catalog or not reviewed (fail closed)
	Reason string
}

// MayWrite: masked values may not be passed to it.
func (v Verdict) MayWrite() bool { return v.Volatile || v.Class >= WritesState || !v.Known }

// Options are the operator's vouching (policy.functions).
type Options struct {
	// Allow lists user-defined functions ("schema.name" or "name") whose
	// result is traced like a pure function's.
	Allow []string
	// VolatileAction is the action an allowed VOLATILE function needs
	// (default update).
	VolatileAction string
}

// Functions is an immutable classification of one database's pg_proc.
type Functions struct {
	byName   map[string][]*Func
	verdicts map[string]*nameVerdicts // precomputed Lookup answers
	byOID    map[uint32]*Func
	allow    map[string]bool
	volAct   string
	Source   string // "catalog" or "built-in snapshot"
	Degraded string // why the catalog could not be read ("" when it was)
}

// NewFunctions classifies funcs (one database's pg_proc rows).
func NewFunctions(funcs []Func, opt Options, source string) *Functions {
	fs := &Functions{byName: make(map[string][]*Func, len(funcs)), byOID: make(map[uint32]*Func, len(funcs)), allow: map[string]bool{}, volAct: opt.VolatileAction, Source: source}
	if fs.volAct == "" {
		fs.volAct = "update"
	}
	for _, a := range opt.Allow {
		fs.allow[strings.ToLower(strings.TrimSpace(a))] = true
	}
	for i := range funcs {
		f := &funcs[i]
		fs.byName[f.Name] = append(fs.byName[f.Name], f)
		if f.OID != 0 {
			fs.byOID[f.OID] = f
		}
	}
	// Classify once per snapshot, so a Lookup on the classification hot
	// path is two map reads.
	fs.verdicts = make(map[string]*nameVerdicts, len(fs.byName))
	for name, cands := range fs.byName {
		nv := &nameVerdicts{bySchema: make(map[string]Verdict, 1)}
		for i, f := range cands {
			v := fs.classify(f)
			if i == 0 {
				nv.any = v
			} else {
				nv.any = merge(nv.any, v)
			}
			if old, ok := nv.bySchema[f.Schema]; ok {
				v = merge(old, v)
			}
			v.Name = f.Schema + "." + name
			nv.bySchema[f.Schema] = v
		}
		nv.any.Name = name
		fs.verdicts[name] = nv
	}
	return fs
}

type nameVerdicts struct {
	any      Verdict            // every schema: an unqualified call
	bySchema map[string]Verdict // Name is schema.name
}

// Lookup classifies a call of name (schema "" when unqualified). An
// unqualified name may resolve to any schema on the search path, so every
// function of that name counts and the strongest verdict wins.
func (fs *Functions) Lookup(schema, name string) Verdict {
	if fs != nil && !AdminSchemas[schema] {
		if nv := fs.verdicts[name]; nv != nil {
			if schema == "" {
				return nv.any
			}
			if v, ok := nv.bySchema[schema]; ok {
				return v
			}
		}
	}
	qual := name
	if schema != "" {
		qual = schema + "." + name
	}
	if AdminSchemas[schema] {
		return Verdict{Name: qual, Class: Admin, Action: "admin", Known: true, Volatile: true, Reason: "functions of schema " + schema + " run SQL elsewhere"}
	}
	if fs == nil {
		return unknown(qual, "no function catalog")
	}
	if e, ok := lookupException(name); ok && e.class == Admin {
		// admin by name even where it is not installed here (dblink_*, lo_*)
		return e.verdict(qual)
	}
	why := "not in this database's catalog"
	if fs.Degraded != "" {
		why = "the function catalog could not be read (" + fs.Degraded + ")"
	}
	return unknown(qual, why)
}

// ByOID classifies the function with this OID (a fast-path FunctionCall).
func (fs *Functions) ByOID(oid uint32) Verdict {
	if fs == nil {
		return unknown("oid "+itoa(int(oid)), "no function catalog")
	}
	f, ok := fs.byOID[oid]
	if !ok {
		return unknown("oid "+itoa(int(oid)), "not in this database's catalog")
	}
	v := fs.classify(f)
	v.Name = f.Schema + "." + f.Name
	return v
}

// All returns the verdict of every function, ordered by schema, name, OID
// (the closed-world report).
func (fs *Functions) All() []struct {
	F *Func
	V Verdict
} {
	var out []struct {
		F *Func
		V Verdict
	}
	for _, f := range fs.byOID {
		v := fs.classify(f)
		v.Name = f.Schema + "." + f.Name
		out = append(out, struct {
			F *Func
			V Verdict
		}{f, v})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].F, out[j].F
		if a.Schema != b.Schema {
			return a.Schema < b.Schema
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.OID < b.OID
	})
	return out
}

func unknown(name, why string) Verdict {
	return Verdict{Name: name, Class: ReadsHidden, Reach: ReachAny, Volatile: true, Known: false, Action: "admin",
		Reason: name + " is not classified (" + why + "): fail closed; an operator may vouch for it with policy.functions.allow"}
}

func merge(a, b Verdict) Verdict {
	out := a
	if b.Class > a.Class {
		out = b
	}
	out.Reach = max(a.Reach, b.Reach)
	if out.Reach == ReachSQL {
		r := a
		if b.Reach == ReachSQL {
			r = b
		}
		out.SQLArg, out.SQLArgc = r.SQLArg, r.SQLArgc
	}
	out.Volatile = a.Volatile || b.Volatile
	out.UserDefined = a.UserDefined || b.UserDefined
	out.SecDef = a.SecDef || b.SecDef
	out.Known = a.Known && b.Known
	out.Allowed = a.Allowed && b.Allowed
	out.Action = strongerAction(a.Action, b.Action)
	if !b.Known && a.Known {
		out.Reason = b.Reason
	}
	return out
}

func strongerAction(a, b string) string {
	rank := func(s string) int {
		switch s {
		case "admin":
			return 3
		case "":
			return 0
		}
		return 1
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// classify derives one function's verdict: the reviewed table for
// built-ins (and admin names anywhere), then the catalog's facts.
func (fs *Functions) classify(f *Func) Verdict {
	qual := f.Schema + "." + f.Name
	v := Verdict{Name: qual, Volatile: f.Volatility == 'v', SecDef: f.SecDef, Known: true}
	if e, ok := lookupException(f.Name); ok && (e.class == Admin || f.BuiltIn()) {
		ev := e.verdict(qual)
		ev.Volatile, ev.SecDef = v.Volatile, v.SecDef
		ev.UserDefined = !f.BuiltIn()
		return ev
	}
	if f.BuiltIn() {
		switch f.Volatility {
		case 'i':
			v.Class, v.Reason = Pure, "IMMUTABLE built-in"
			return v
		default:
			// STABLE and VOLATILE built-ins may read or change anything:
			// each needs a reviewed answer (exceptions.go).
			u := unknown(qual, "a "+volName(f.Volatility)+" built-in the reviewed table has no answer for")
			u.Volatile = v.Volatile || u.Volatile
			return u
		}
	}
	v.UserDefined = true
	if fs.allow[strings.ToLower(qual)] || fs.allow[strings.ToLower(f.Name)] {
		v.Allowed = true
		v.Class, v.Reason = Pure, "vouched for by policy.functions.allow"
		if v.Volatile {
			v.Class, v.Action = WritesState, fs.volAct
			v.Reason = "VOLATILE, vouched for by policy.functions.allow (action " + fs.volAct + ")"
		}
		return v
	}
	v.Class, v.Reach = ReadsHidden, ReachAny
	v.Reason = "user-defined function: its body is opaque"
	if f.SecDef {
		// Even a STABLE one: it may call a VOLATILE function, which then
		// writes with the owner's rights.
		v.Action = "admin"
		v.Reason = "user-defined SECURITY DEFINER function: its body runs with its owner's rights, so it is admin unless policy.functions.allow vouches for it"
	}
	if v.Volatile {
		v.Class, v.Action = WritesState, "admin"
		v.Reason += "; VOLATILE, so it may write: admin unless policy.functions.allow vouches for it"
	}
	return v
}

func volName(b byte) string {
	switch b {
	case 'i':
		return "IMMUTABLE"
	case 's':
		return "STABLE"
	}
	return "VOLATILE"
}

func itoa(i int) string {
	if i < 0 {
		return "-" + itoa(-i)
	}
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

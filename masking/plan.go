package masking

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/analysis"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// ErrMalformedRow is returned by Apply for a row that does not match its
// RowDescription or carries a value that cannot be parsed for its type
// (e.g. invalid jsonb). The glue must end the session with 08P01 rather
// than forward the row.
var ErrMalformedRow = errors.New("masking: malformed row")

// Well-known type OIDs.
const (
	oidBytea   = 17
	oidName    = 19
	oidText    = 25
	oidJSON    = 114
	oidUnknown = 705
	oidBPChar  = 1042
	oidVarchar = 1043
	oidJSONB   = 3802
)

type typeClass uint8

const (
	clsOther typeClass = iota
	clsText
	clsJSON
	clsJSONB
	clsBytea
)

func classOf(oid uint32) typeClass {
	switch oid {
	case oidText, oidVarchar, oidBPChar, oidName, oidUnknown:
		return clsText
	case oidJSON:
		return clsJSON
	case oidJSONB:
		return clsJSONB
	case oidBytea:
		return clsBytea
	}
	return clsOther
}

// Query is what the glue knows about the statement whose rows are described.
type Query struct {
	// SQL is the statement text (a simple Query message, or the Parse of a
	// prepared statement).
	SQL string
	// Stmt is the 0-based index, inside SQL, of the statement that produced
	// this RowDescription (count CommandComplete/EmptyQueryResponse messages
	// of a multi-statement simple Query). -1 (or out of range) = unknown:
	// with several statements, every expression column is then traced
	// against all of them together (fail closed).
	Stmt int
	// Funcs is the closed world of functions of the session's database
	// (internal/analysis); nil: the built-in PostgreSQL 15 + pgvector
	// snapshot, where every user-defined function is unknown (opaque).
	Funcs *analysis.Functions
}

// Engine holds the compiled masking configuration. It is safe for
// concurrent use; Plans it returns are not (see Plan).
type Engine struct {
	rules    []rule
	det      detectors
	deny     bool // masking.derived: deny
	denyPred bool // masking.deny_predicates
	hmacKey  string
	cat      Catalog
	allKeys  []jsonKey // every json_keys key (method redact), for derived JSON
	anyRules bool

	mu       sync.Mutex
	cache    map[traceKey]*traceResult // bounded; dropped by Invalidate or a new catalog generation
	shapes   map[traceKey]*traceResult // keyed by shape (analysis.ShapeOf); same bounds and lifetime
	cacheGen uint64
}

type traceKey struct {
	sql   string
	funcs *analysis.Functions // a new snapshot classifies calls anew
}

const maxTraceCache = 1024

// maxTraceKey bounds the key of a cached trace (exact text or shape): a
// longer text is traced every time, so the caches hold at most
// maxTraceCache × maxTraceKey bytes of keys.
const maxTraceKey = 64 << 10

// Invalidate forgets cached traces and, when the catalog supports it, its
// cache too. Call it when DDL has passed through the gateway.
func (e *Engine) Invalidate() {
	e.mu.Lock()
	e.cache, e.shapes = nil, nil
	e.mu.Unlock()
	if inv, ok := e.cat.(interface{ Invalidate() }); ok {
		inv.Invalidate()
	}
}

// trace returns the (cached) trace of q. Two levels: the exact text, then
// its shape (the text without its constants' values, internal/analysis).
// A trace is stored under its shape only when it never looked at a
// constant's value (tracer.readsConst) and analysis.Shaped confirms the
// grammar took every constant as a plain value, so every text of that
// shape traces alike (see sqlpolicy.Classifier for the argument, and
// TestTraceShape).
func (e *Engine) trace(ctx context.Context, q *Query) *traceResult {
	if q == nil {
		return e.traceQuery(ctx, q)
	}
	k := traceKey{q.SQL, q.Funcs}
	var gen uint64
	if g, ok := e.cat.(interface{ Generation() uint64 }); ok {
		gen = g.Generation()
	}
	e.mu.Lock()
	if gen != e.cacheGen {
		e.cache, e.shapes, e.cacheGen = nil, nil, gen
	}
	tr := e.cache[k]
	e.mu.Unlock()
	if tr != nil {
		return tr
	}
	buf, shaped := analysis.ShapeOf(q.SQL)
	defer buf.Release()
	shaped = shaped && len(buf.Key) <= maxTraceKey
	if shaped {
		e.mu.Lock()
		tr = e.shapes[traceKey{string(buf.Key), q.Funcs}]
		e.mu.Unlock()
		if tr != nil {
			return tr
		}
	}
	tr = e.traceQuery(ctx, q)
	if len(q.SQL) <= maxTraceKey {
		e.mu.Lock()
		if e.cache == nil || len(e.cache) >= maxTraceCache {
			e.cache = make(map[traceKey]*traceResult)
		}
		e.cache[k] = tr
		e.mu.Unlock()
	}
	if shaped && !tr.all && !tr.constRead {
		if tree, err := analysis.Parse(q.SQL); err == nil && analysis.Shaped(tree, q.SQL, buf.Consts) {
			e.mu.Lock()
			if e.shapes == nil || len(e.shapes) >= maxTraceCache {
				e.shapes = make(map[traceKey]*traceResult)
			}
			e.shapes[traceKey{string(buf.Key), q.Funcs}] = tr
			e.mu.Unlock()
		}
	}
	return tr
}

// New compiles cfg. cat resolves RowDescription table OIDs; it may be nil
// (then every field with a table OID is treated as unknown and masked when
// any rule exists — fail closed).
func New(cfg config.Masking, cat Catalog) (*Engine, error) {
	e := &Engine{det: parseDetectors(cfg.Detectors), deny: cfg.Derived == "deny", denyPred: cfg.DenyPredicates, hmacKey: cfg.HMACKey, cat: cat}
	switch cfg.Derived {
	case "", "mask", "deny":
	default:
		return nil, fmt.Errorf("masking.derived: %q is not one of mask, deny", cfg.Derived)
	}
	seen := map[string]bool{}
	for i, r := range cfg.Rules {
		switch r.Method {
		case "redact", "null", "partial", "email", "hash":
		default:
			return nil, fmt.Errorf("masking.rules[%d].method: %q is not one of redact, null, partial, email, hash", i, r.Method)
		}
		if r.Column == "" {
			return nil, fmt.Errorf("masking.rules[%d].column: required", i)
		}
		if r.Method == "partial" && r.KeepLast <= 0 {
			return nil, fmt.Errorf("masking.rules[%d].keep_last: method partial needs keep_last > 0", i)
		}
		if r.Method == "hash" && cfg.HMACKey == "" {
			return nil, fmt.Errorf("masking.hmac_key: required by masking.rules[%d] (method hash)", i)
		}
		cr := compileRule(i, r)
		e.rules = append(e.rules, cr)
		for _, k := range cr.jsonKeys {
			if !seen[k] {
				seen[k] = true
				e.allKeys = append(e.allKeys, jsonKey{key: k, method: MethodRedact})
			}
		}
	}
	for i, d := range cfg.Detectors {
		if parseDetectors([]string{d}) == 0 {
			return nil, fmt.Errorf("masking.detectors[%d]: unknown detector %q", i, d)
		}
	}
	e.anyRules = len(e.rules) > 0
	if e.anyRules {
		// Planner statistics hold sample values of every analysed column:
		// with any rule, their value columns are nulled (not PII-aware).
		for _, b := range builtinRules {
			e.rules = append(e.rules, compileRule(-1, b))
		}
	}
	return e, nil
}

var builtinRules = func() []config.MaskRule {
	var rs []config.MaskRule
	add := func(table string, cols ...string) {
		for _, c := range cols {
			rs = append(rs, config.MaskRule{Table: "pg_catalog." + table, Column: c, Method: "null"})
		}
	}
	add("pg_stats", "most_common_vals", "histogram_bounds", "most_common_elems")
	add("pg_stats_ext", "most_common_vals")
	add("pg_stats_ext_exprs", "most_common_vals", "histogram_bounds", "most_common_elems")
	add("pg_statistic", "stavalues1", "stavalues2", "stavalues3", "stavalues4", "stavalues5")
	add("pg_statistic_ext_data", "stxdmcv", "stxdexpr")
	return rs
}()

// ruleFor returns the most specific rule covering schema.table.column.
func (e *Engine) ruleFor(schema, table, column string) *rule {
	var best *rule
	for i := range e.rules {
		r := &e.rules[i]
		if r.matches(schema, table, column) && (best == nil || r.specificity() > best.specificity()) {
			best = r
		}
	}
	return best
}

type fieldKind uint8

const (
	kPass        fieldKind = iota
	kRule                  // whole value by method
	kJSON                  // json keys (and/or detectors) inside a json/jsonb value
	kRedact                // derived value, masked whole
	kDerivedJSON           // derived from json_keys columns only: mask keys if it is JSON
	kDetect                // detectors over a text value no rule covers
)

type field struct {
	kind     fieldKind
	cls      typeClass
	method   Method
	keepLast int
	json     *jsonMasker
	det      detectors
}

// Plan masks the DataRows of one RowDescription. It is immutable in what it
// does and may be reused for every later Execute of the same prepared
// statement or portal, but Apply uses scratch buffers owned by the Plan: it
// is not safe for concurrent use (Clone gives an independent copy).
type Plan struct {
	fields  []field
	formats []int16 // from the RowDescription
	active  []int   // indexes of fields that are not kPass
	mac     *macState
	hmacKey string

	// scratch
	buf   []byte
	spans []span
	vals  [][]byte
	out   pgproto3.DataRow
	js    jsonScratch
}

type span struct{ i, start, end int } // start < 0: NULL

// Clone returns a Plan with the same behaviour and its own scratch buffers.
func (p *Plan) Clone() *Plan {
	if p == nil {
		return nil
	}
	return newPlan(p.fields, p.formats, p.hmacKey)
}

func newPlan(fields []field, formats []int16, key string) *Plan {
	p := &Plan{fields: fields, formats: formats, hmacKey: key, mac: newMAC(key), buf: make([]byte, 0, 512)}
	for i := range fields {
		if fields[i].kind != kPass {
			p.active = append(p.active, i)
		}
	}
	p.js.mac = p.mac
	p.vals = make([][]byte, 0, len(fields))
	return p
}

// Masked reports whether the plan rewrites field i.
func (p *Plan) Masked(i int) bool { return p != nil && i < len(p.fields) && p.fields[i].kind != kPass }

// DetectOnly reports whether field i is only scanned by the PII detectors:
// no rule and no masked source covers it, and a value passes unless a
// detector finds something in it.
func (p *Plan) DetectOnly(i int) bool {
	if !p.Masked(i) {
		return false
	}
	f := &p.fields[i]
	return f.kind == kDetect || f.kind == kJSON && len(f.json.keys) == 0
}

// Plan builds the masking plan for rd. It returns nil (and no error) when
// nothing in these rows needs masking: the glue then forwards DataRows
// without looking at them. q may be nil when the statement text is unknown
// (then expression columns are masked whenever any rule exists). A
// *pgerr.Error (42501) refuses the statement (masking.derived: deny). Other
// errors are catalog failures: fail closed (refuse the statement).
// Groups with unmask never need a Plan for the client; they call
// PlanRecord for the recording, which is always masked.
func (e *Engine) Plan(ctx context.Context, rd *pgproto3.RowDescription, q *Query) (*Plan, error) {
	return e.plan(ctx, rd, q, e.deny)
}

// PlanRecord is Plan for the session record of a group with unmask: the
// rows reach the client raw, so nothing is refused (derived: deny does not
// apply); derived values are masked whole in the record instead.
func (e *Engine) PlanRecord(ctx context.Context, rd *pgproto3.RowDescription, q *Query) (*Plan, error) {
	return e.plan(ctx, rd, q, false)
}

func (e *Engine) plan(ctx context.Context, rd *pgproto3.RowDescription, q *Query, deny bool) (*Plan, error) {
	fields := make([]field, len(rd.Fields))
	formats := make([]int16, len(rd.Fields))
	var tr *traceResult
	any := false
	for i := range rd.Fields {
		fd := &rd.Fields[i]
		formats[i] = fd.Format
		f := field{cls: classOf(fd.DataTypeOID)}
		var t taint
		switch {
		case fd.TableOID != 0 && int16(fd.TableAttributeNumber) > 0:
			var err error
			t, err = e.columnTaint(ctx, fd.TableOID, int16(fd.TableAttributeNumber))
			if err != nil {
				return nil, err
			}
		case fd.TableOID != 0 && fd.TableAttributeNumber == 0:
			// a whole-row reference (SELECT c FROM customers c)
			var err error
			t, err = e.wholeRowTaint(ctx, fd.TableOID)
			if err != nil {
				return nil, err
			}
		case fd.TableOID != 0: // system column (ctid, xmin, ...)
		default:
			if tr == nil {
				tr = e.trace(ctx, q)
			}
			t = tr.fieldTaint(q, i, len(rd.Fields), fd.Name)
			if t.lvl == lvlFull && t.direct == nil && deny {
				return nil, pgerr.New(pgerr.InsufficientPrivilege,
					"column %q is derived from masked column %s (masking.derived: deny)", string(fd.Name), t.what)
			}
		}
		f = e.fieldFor(f, t)
		if f.kind != kPass {
			any = true
		}
		fields[i] = f
	}
	if !any {
		return nil, nil
	}
	return newPlan(fields, formats, e.hmacKey), nil
}

// fieldFor turns a column's taint into what Apply does with it.
func (e *Engine) fieldFor(f field, t taint) field {
	switch {
	case t.direct != nil && t.lvl > lvlClean:
		r := t.direct
		if len(r.jsonKeys) > 0 && (f.cls == clsJSON || f.cls == clsJSONB) {
			m := &jsonMasker{det: e.det}
			for _, k := range r.jsonKeys {
				m.keys = append(m.keys, jsonKey{key: k, method: r.method, keepLast: r.keepLast})
			}
			f.kind, f.json = kJSON, m
		} else if len(r.jsonKeys) > 0 {
			// json_keys rule on a column that is not json here (a cast in a
			// view, a text column): mask whole.
			f.kind, f.method = kRedact, MethodRedact
		} else {
			f.kind, f.method, f.keepLast = kRule, r.method, r.keepLast
		}
	case t.lvl == lvlFull:
		f.kind, f.method = kRedact, MethodRedact
	case t.lvl == lvlJSON:
		f.kind, f.json = kDerivedJSON, &jsonMasker{keys: e.allKeys, det: e.det}
	case e.det != 0 && f.cls == clsText:
		f.kind, f.det = kDetect, e.det
	case e.det != 0 && (f.cls == clsJSON || f.cls == clsJSONB):
		f.kind, f.json = kJSON, &jsonMasker{det: e.det}
	}
	return f
}

// columnTaint resolves a RowDescription column through the catalog.
func (e *Engine) columnTaint(ctx context.Context, oid uint32, att int16) (taint, error) {
	if e.cat == nil {
		if e.anyRules {
			return taint{lvl: lvlFull, what: "(unknown column: no catalog)"}, nil
		}
		return taint{}, nil
	}
	ref, ok, err := e.cat.Column(ctx, oid, att)
	if err != nil {
		return taint{}, fmt.Errorf("masking: catalog lookup of table %d column %d: %w", oid, att, err)
	}
	if !ok {
		// A table the catalog cannot see: fail closed.
		if e.anyRules {
			return taint{lvl: lvlFull, what: fmt.Sprintf("(unknown table %d)", oid)}, nil
		}
		return taint{}, nil
	}
	r := e.ruleFor(ref.Schema, ref.Table, ref.Column)
	if r == nil && ref.ViewDef != "" {
		return e.viewColumnTaint(ctx, ref), nil
	}
	for _, a := range ref.Ancestors {
		if r != nil {
			break
		}
		if dot := strings.IndexByte(a, '.'); dot > 0 {
			r = e.ruleFor(a[:dot], a[dot+1:], ref.Column)
		}
	}
	if r != nil {
		lvl := lvlFull
		if len(r.jsonKeys) > 0 {
			lvl = lvlJSON
		}
		return taint{lvl: lvl, what: ref.Schema + "." + ref.Table + "." + ref.Column, direct: r}, nil
	}
	return taint{}, nil
}

// wholeRowTaint: does any column of the relation need masking?
func (e *Engine) wholeRowTaint(ctx context.Context, oid uint32) (taint, error) {
	if !e.anyRules {
		return taint{}, nil
	}
	if e.cat == nil {
		return taint{lvl: lvlFull, what: "(whole row: no catalog)"}, nil
	}
	for att := int16(1); att < 1600; att++ {
		ref, ok, err := e.cat.Column(ctx, oid, att)
		if err != nil {
			return taint{}, fmt.Errorf("masking: catalog lookup of table %d: %w", oid, err)
		}
		if !ok {
			if att == 1 {
				return taint{lvl: lvlFull, what: fmt.Sprintf("(unknown table %d)", oid)}, nil
			}
			return taint{}, nil
		}
		if ref.ViewDef != "" {
			return taint{lvl: lvlFull, what: ref.Schema + "." + ref.Table + " (view row)"}, nil
		}
		if t, _ := e.columnTaint(ctx, oid, att); t.lvl > lvlClean {
			return taint{lvl: lvlFull, what: t.what}, nil
		}
	}
	return taint{}, nil
}

func (p *Plan) format(i int, formats []int16) int16 {
	switch {
	case formats == nil:
		return p.formats[i]
	case len(formats) == 0:
		return 0
	case len(formats) == 1:
		return formats[0]
	case i < len(formats):
		return formats[i]
	}
	return 0
}

// Apply masks one DataRow. formats are the result format codes in force
// (Bind's result formats: none = all text, one = all, or one per field);
// nil means "as in the RowDescription". When nothing in the row changed it
// returns row itself; otherwise a row owned by the Plan, valid until the
// next Apply. NULL stays NULL. A malformed row returns ErrMalformedRow
// (wrapped): the glue must not forward it.
func (p *Plan) Apply(row *pgproto3.DataRow, formats []int16) (*pgproto3.DataRow, error) {
	if len(row.Values) != len(p.fields) {
		return nil, fmt.Errorf("%w: %d values for %d fields", ErrMalformedRow, len(row.Values), len(p.fields))
	}
	p.buf = p.buf[:0]
	p.spans = p.spans[:0]
	for _, i := range p.active {
		v := row.Values[i]
		if v == nil {
			continue
		}
		start := len(p.buf)
		changed, null, err := p.maskValue(&p.fields[i], v, p.format(i, formats))
		if err != nil {
			return nil, fmt.Errorf("%w: field %d: %v", ErrMalformedRow, i, err)
		}
		switch {
		case null:
			p.buf = p.buf[:start]
			p.spans = append(p.spans, span{i: i, start: -1})
		case changed:
			p.spans = append(p.spans, span{i: i, start: start, end: len(p.buf)})
		default:
			p.buf = p.buf[:start]
		}
	}
	if len(p.spans) == 0 {
		return row, nil
	}
	p.vals = append(p.vals[:0], row.Values...)
	for _, s := range p.spans {
		if s.start < 0 {
			p.vals[s.i] = nil
		} else {
			p.vals[s.i] = p.buf[s.start:s.end:s.end]
		}
	}
	p.out.Values = p.vals
	return &p.out, nil
}

// maskValue appends the masked form of v to p.buf. changed=false: keep v.
func (p *Plan) maskValue(f *field, v []byte, format int16) (changed, null bool, err error) {
	binary := format == 1
	switch f.kind {
	case kRule:
		return p.appendMethod(f.cls, v, binary, f.method, f.keepLast)
	case kRedact:
		return p.appendMethod(f.cls, v, binary, MethodRedact, 0)
	case kDetect:
		p.buf, changed = f.det.appendDetected(p.buf, v)
		return changed, false, nil
	case kJSON, kDerivedJSON:
		body := v
		if f.cls == clsJSONB && binary {
			if len(v) == 0 || v[0] != 1 {
				return false, false, errors.New("jsonb binary value without version 1")
			}
			body = v[1:]
		}
		if f.cls == clsJSON || f.cls == clsJSONB {
			start := len(p.buf)
			if f.cls == clsJSONB && binary {
				p.buf = append(p.buf, 1)
			}
			out, ch, err := f.json.appendMasked(p.buf, body, &p.js)
			if err != nil {
				p.buf = p.buf[:start]
				if f.kind == kDerivedJSON {
					return p.appendMethod(f.cls, v, binary, MethodRedact, 0)
				}
				return false, false, err
			}
			if !ch {
				p.buf = p.buf[:start]
				return false, false, nil
			}
			p.buf = out
			return true, false, nil
		}
		if f.kind == kDerivedJSON && f.cls == clsText {
			// text derived from json_keys columns only: if it is a JSON
			// document, mask its keys; a document that does not parse is
			// redacted; a scalar (->> of a key that is not masked) passes.
			j := 0
			for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r') {
				j++
			}
			if j < len(body) && (body[j] == '{' || body[j] == '[' || body[j] == '"') {
				out, ch, err := f.json.appendMasked(p.buf, body, &p.js)
				if err != nil {
					return p.appendMethod(f.cls, v, binary, MethodRedact, 0)
				}
				if ch {
					p.buf = out
				}
				return ch, false, nil
			}
			if e := f.json.det; e != 0 {
				p.buf, changed = e.appendDetected(p.buf, v)
				return changed, false, nil
			}
			return false, false, nil
		}
		if f.kind == kDerivedJSON {
			return false, false, nil // scalar cast of a value under an unmasked key
		}
		return p.appendMethod(f.cls, v, binary, MethodRedact, 0)
	}
	return false, false, nil
}

// appendMethod writes the method's output as a valid value of the column's
// type, or NULL where no such value exists.
func (p *Plan) appendMethod(cls typeClass, v []byte, binary bool, m Method, keep int) (changed, null bool, err error) {
	if m == MethodNull {
		return false, true, nil
	}
	switch cls {
	case clsText:
		var ok bool
		p.buf, ok = appendText(p.buf, v, m, keep, p.mac)
		return ok, !ok, nil
	case clsJSON, clsJSONB:
		body := v
		start := len(p.buf)
		if cls == clsJSONB && binary {
			if len(v) == 0 || v[0] != 1 {
				return false, false, errors.New("jsonb binary value without version 1")
			}
			body = v[1:]
			p.buf = append(p.buf, 1)
		}
		if len(body) == 0 {
			p.buf = p.buf[:start]
			return false, false, errMalformedJSON
		}
		if m == MethodRedact || m == MethodEmail && body[0] != '"' {
			p.buf = append(p.buf, redactedJSON...)
			return true, false, nil
		}
		src := body
		if len(body) > 1 && body[0] == '"' && body[len(body)-1] == '"' {
			p.js.tmp = appendUnescaped(p.js.tmp[:0], body)
			src = p.js.tmp
		}
		var ok bool
		p.js.tmp2, ok = appendText(p.js.tmp2[:0], src, m, keep, p.mac)
		if !ok {
			p.buf = p.buf[:start]
			return false, true, nil
		}
		p.buf = appendJSONString(p.buf, p.js.tmp2)
		return true, false, nil
	case clsBytea:
		var ok bool
		if binary {
			p.buf, ok = appendText(p.buf, v, m, keep, p.mac)
			return ok, !ok, nil
		}
		p.js.tmp2, ok = appendText(p.js.tmp2[:0], v, m, keep, p.mac)
		if !ok {
			return false, true, nil
		}
		const hexd = "0123456789abcdef"
		p.buf = append(p.buf, '\\', 'x')
		for _, c := range p.js.tmp2 {
			p.buf = append(p.buf, hexd[c>>4], hexd[c&15])
		}
		return true, false, nil
	}
	return false, true, nil // no valid masked value of this type exists: NULL
}

// String describes the plan (for logs and policy explain): field -> action.
func (p *Plan) String() string {
	if p == nil {
		return "no masking"
	}
	var b strings.Builder
	for i, f := range p.fields {
		if f.kind == kPass {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "#%d:%s", i, [...]string{"pass", "rule:", "json_keys", "redact(derived)", "json_keys(derived)", "detectors"}[f.kind])
		if f.kind == kRule {
			b.WriteString(f.method.String())
		}
	}
	return b.String()
}

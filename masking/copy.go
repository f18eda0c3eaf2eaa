package masking

import (
	"context"
	"errors"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// CopyPlan masks the CopyData rows of one COPY ... TO STDOUT in text or CSV
// format. PostgreSQL sends one row per CopyData message (a CSV row may hold
// quoted newlines); Apply takes one such message. Like Plan, it is not safe
// for concurrent use and the returned bytes are valid until the next Apply.
type CopyPlan struct {
	p      *Plan // per-column fields (none when all) and the scratch buffers
	all    bool  // the width is unknown: every field is redacted whole
	csv    bool
	delim  byte
	quote  byte
	escape byte
	null   string
	header bool // a header line is still to come
	out    []byte
	raw    []byte
}

// redactField is what every field of a CopyPlan with unknown width gets.
var redactField = field{kind: kRedact, cls: clsText}

var errMalformedCopy = errors.New("masking: malformed COPY data row")

// PlanCopy plans a COPY statement (sql is the whole COPY text). It returns
// nil when nothing needs masking (or the statement is not COPY ... TO), a
// *pgerr.Error 42501 for binary COPY of masked columns (or a derived column
// under masking.derived: deny). cols, when given, names the output columns
// in order (otherwise they come from the statement and the catalog).
func (e *Engine) PlanCopy(ctx context.Context, sql string, cols ...string) (*CopyPlan, error) {
	res, err := pg.Parse(sql)
	if err != nil || len(res.Stmts) != 1 {
		return nil, nil
	}
	cs, ok := res.Stmts[0].Stmt.GetNode().(*pg.Node_CopyStmt)
	if !ok || cs.CopyStmt.IsFrom || cs.CopyStmt.Filename != "" || cs.CopyStmt.IsProgram {
		return nil, nil
	}
	t := &tracer{e: e, ctx: ctx}
	outs, exact := t.stmt(res.Stmts[0].Stmt, nil)
	cp := &CopyPlan{delim: '\t', quote: '"', escape: 0, null: `\N`}
	format := "text"
	nullSet := false
	for _, o := range cs.CopyStmt.Options {
		d, ok := o.GetNode().(*pg.Node_DefElem)
		if !ok {
			continue
		}
		v := defString(d.DefElem.Arg)
		switch strings.ToLower(d.DefElem.Defname) {
		case "format":
			format = strings.ToLower(v)
		case "delimiter":
			if len(v) == 1 {
				cp.delim = v[0]
			}
		case "quote":
			if len(v) == 1 {
				cp.quote = v[0]
			}
		case "escape":
			if len(v) == 1 {
				cp.escape = v[0]
			}
		case "null":
			cp.null, nullSet = v, true
		case "header":
			cp.header = v == "" || (v != "false" && v != "off" && v != "0")
		}
	}
	if format == "csv" {
		cp.csv = true
		if cp.delim == '\t' && !hasOpt(cs.CopyStmt.Options, "delimiter") {
			cp.delim = ','
		}
		if !nullSet {
			cp.null = ""
		}
		if cp.escape == 0 {
			cp.escape = cp.quote
		}
	}
	if len(cols) > 0 {
		outs2 := make([]outCol, len(cols))
		for i, c := range cols {
			var tt taint
			for _, o := range outs {
				if strings.EqualFold(o.name, c) {
					tt = tt.or(o.t)
				}
			}
			outs2[i] = outCol{name: c, t: tt}
		}
		outs, exact = outs2, true
	}
	fields := make([]field, len(outs))
	any := false
	var all taint
	for _, o := range outs {
		all = all.or(o.t)
	}
	for i, o := range outs {
		tt := o.t
		if !exact {
			tt = all.derived()
			if all.lvl == lvlJSON {
				tt.lvl = lvlFull
			}
		}
		if e.deny && o.star == nil && tt.lvl == lvlFull && tt.direct == nil {
			return nil, pgerr.New(pgerr.InsufficientPrivilege, "column %q is derived from masked column %s (masking.derived: deny)", o.name, tt.what)
		}
		cls := clsText
		if tt.lvl == lvlJSON {
			cls = clsJSON
		}
		f := e.fieldFor(field{cls: cls}, tt)
		if f.kind == kDerivedJSON {
			f.cls = clsText // text holding JSON: mask keys if it parses, else redact
		}
		if f.kind != kPass {
			any = true
		}
		fields[i] = f
	}
	if !exact && all.lvl > lvlClean {
		// the width is unknown: every field is masked whole
		any = true
	}
	if !any {
		return nil, nil
	}
	if format == "binary" {
		return nil, pgerr.New(pgerr.InsufficientPrivilege, "binary COPY of masked columns is not supported; use text or csv")
	}
	if exact {
		cp.p = newPlan(fields, make([]int16, len(fields)), e.hmacKey)
	} else {
		cp.p, cp.all = newPlan(nil, nil, e.hmacKey), true // unknown width: mask every field
	}
	return cp, nil
}

func hasOpt(opts []*pg.Node, name string) bool {
	for _, o := range opts {
		if d, ok := o.GetNode().(*pg.Node_DefElem); ok && strings.EqualFold(d.DefElem.Defname, name) {
			return true
		}
	}
	return false
}

func defString(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_String_:
		return x.String_.Sval
	case *pg.Node_Integer:
		return itoa(int(x.Integer.Ival))
	case *pg.Node_Boolean:
		if x.Boolean.Boolval {
			return "true"
		}
		return "false"
	}
	return ""
}

// Apply masks one CopyData payload (one row). A row that does not parse, or
// whose width differs from the plan, is an error: do not forward it.
func (c *CopyPlan) Apply(data []byte) ([]byte, error) {
	if c.header {
		c.header = false
		return data, nil
	}
	c.out = c.out[:0]
	changed := false
	n := 0
	i := 0
	for {
		// one field
		var raw []byte
		isNull := false
		quoted := false
		var err error
		var next int
		if c.csv {
			raw, quoted, next, err = c.csvField(data, i)
		} else {
			raw, next, err = c.textField(data, i)
		}
		if err != nil {
			return nil, err
		}
		lit := data[i:next]
		if c.csv {
			isNull = !quoted && string(raw) == c.null
		} else {
			isNull = string(lit) == c.null
		}
		fieldStart := len(c.out)
		masked := false
		if !isNull {
			var f *field
			switch {
			case c.all:
				f = &redactField
			case n < len(c.p.fields):
				f = &c.p.fields[n]
			default:
				return nil, errMalformedCopy
			}
			if f.kind != kPass {
				p := c.p
				p.buf = p.buf[:0]
				ch, null, err := p.maskValue(f, raw, 0)
				if err != nil {
					return nil, err
				}
				if null {
					c.out = append(c.out, c.null...)
					masked = true
				} else if ch {
					c.out = c.encode(c.out, p.buf)
					masked = true
				}
			}
		}
		if !masked {
			c.out = append(c.out[:fieldStart], lit...)
		} else {
			changed = true
		}
		n++
		if next >= len(data) {
			return nil, errMalformedCopy
		}
		if data[next] == '\n' {
			if next+1 != len(data) {
				return nil, errMalformedCopy
			}
			if !c.all && n != len(c.p.fields) {
				return nil, errMalformedCopy
			}
			c.out = append(c.out, '\n')
			break
		}
		if data[next] == '\r' && c.csv && next+2 == len(data) && data[next+1] == '\n' {
			c.out = append(c.out, '\r', '\n')
			if !c.all && n != len(c.p.fields) {
				return nil, errMalformedCopy
			}
			break
		}
		if data[next] != c.delim {
			return nil, errMalformedCopy
		}
		c.out = append(c.out, c.delim)
		i = next + 1
	}
	if !changed {
		return data, nil
	}
	return c.out, nil
}

// textField decodes a text-format field starting at i into c.raw; next is
// the index of the delimiter or newline that ends it.
func (c *CopyPlan) textField(data []byte, i int) (raw []byte, next int, err error) {
	c.raw = c.raw[:0]
	for i < len(data) {
		b := data[i]
		if b == c.delim || b == '\n' {
			return c.raw, i, nil
		}
		if b != '\\' {
			c.raw = append(c.raw, b)
			i++
			continue
		}
		if i+1 >= len(data) {
			return nil, 0, errMalformedCopy
		}
		e := data[i+1]
		i += 2
		switch e {
		case 'b':
			c.raw = append(c.raw, '\b')
		case 'f':
			c.raw = append(c.raw, '\f')
		case 'n':
			c.raw = append(c.raw, '\n')
		case 'r':
			c.raw = append(c.raw, '\r')
		case 't':
			c.raw = append(c.raw, '\t')
		case 'v':
			c.raw = append(c.raw, '\v')
		case 'N':
			c.raw = append(c.raw, '\\', 'N') // only meaningful as the whole field
		case 'x':
			v, k := 0, 0
			for k < 2 && i < len(data) && hexVal(data[i]) >= 0 {
				v = v*16 + hexVal(data[i])
				i++
				k++
			}
			if k == 0 {
				c.raw = append(c.raw, 'x')
			} else {
				c.raw = append(c.raw, byte(v))
			}
		default:
			if e >= '0' && e <= '7' {
				v := int(e - '0')
				for k := 0; k < 2 && i < len(data) && data[i] >= '0' && data[i] <= '7'; k++ {
					v = v*8 + int(data[i]-'0')
					i++
				}
				c.raw = append(c.raw, byte(v))
			} else {
				c.raw = append(c.raw, e)
			}
		}
	}
	return nil, 0, errMalformedCopy
}

// csvField decodes a CSV field starting at i.
func (c *CopyPlan) csvField(data []byte, i int) (raw []byte, quoted bool, next int, err error) {
	c.raw = c.raw[:0]
	if i < len(data) && data[i] == c.quote {
		quoted = true
		i++
		for i < len(data) {
			b := data[i]
			if b == c.escape && i+1 < len(data) && (data[i+1] == c.quote || (c.escape != c.quote && data[i+1] == c.escape)) {
				c.raw = append(c.raw, data[i+1])
				i += 2
				continue
			}
			if b == c.quote {
				i++
				if i < len(data) && (data[i] == c.delim || data[i] == '\n' || data[i] == '\r') {
					return c.raw, true, i, nil
				}
				return nil, false, 0, errMalformedCopy
			}
			c.raw = append(c.raw, b)
			i++
		}
		return nil, false, 0, errMalformedCopy
	}
	for i < len(data) {
		b := data[i]
		if b == c.delim || b == '\n' || b == '\r' {
			return c.raw, false, i, nil
		}
		if b == c.quote {
			return nil, false, 0, errMalformedCopy
		}
		c.raw = append(c.raw, b)
		i++
	}
	return nil, false, 0, errMalformedCopy
}

// encode appends v as a field of this COPY's format.
func (c *CopyPlan) encode(dst, v []byte) []byte {
	if c.csv {
		dst = append(dst, c.quote)
		for _, b := range v {
			if b == c.quote || b == c.escape {
				dst = append(dst, c.escape)
			}
			dst = append(dst, b)
		}
		return append(dst, c.quote)
	}
	for _, b := range v {
		switch b {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if b == c.delim {
				dst = append(dst, '\\', b)
			} else {
				dst = append(dst, b)
			}
		}
	}
	return dst
}

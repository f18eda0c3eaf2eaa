package analysis

import (
	"strings"
	"sync"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The shape of a statement: its text with the value of every constant
// left out. Two texts with the same shape differ only in the values of
// their constants, so PostgreSQL's lexer gives them the same token stream
// but for those values, and its grammar the same tree but for the values
// of the A_Const nodes (Shaped checks that every constant became one).
// A decision that provably did not look at those values (the classifier
// and the masking trace record when they do) can be reused for every
// statement of the shape without parsing it.
//
// The scanner below follows the rules of PostgreSQL 17's scan.l, the
// lexer pg_query uses, for standard_conforming_strings = on (pgwire keeps
// every session there, see internal/parsesafe). It only has to find where
// constants begin and end and what kind they are; every other byte is
// kept in the key as it is, so keywords, identifiers and operators need no
// tokenising. Where a rule is intricate (U&'' strings, N'' strings, string
// continuation across lines, E'' escapes other than the plain ones,
// non-decimal or underscored numbers, anything the lexer would reject) it
// does not try: ok is false and the caller parses as before. FuzzShape
// checks it against pg_query.Scan: whenever it says ok, the lexer agrees
// on every constant's bounds and kind.

// ConstKind is the lexer token of a constant.
type ConstKind uint8

const (
	ConstInteger ConstKind = iota + 1 // ICONST: a decimal integer that fits int32
	ConstNumeric                      // FCONST: any other number
	ConstString                       // SCONST: '...', E'...', $tag$...$tag$
	ConstBits                         // BCONST: B'...'
	ConstHex                          // XCONST: X'...'
)

// Const is one constant of a shaped text: sql[Start:End], of Kind.
type Const struct {
	Start, End int32
	Kind       ConstKind
}

// MaxShapeConsts bounds the constants a shape may have (a longer text is
// not shaped; an INSERT of thousands of rows gains little from it).
const MaxShapeConsts = 4096

// AppendShape appends sql's shape key to key and its constants to consts.
// The key holds every byte outside constants and, for each constant, a
// NUL (which a query text cannot contain) and its kind. ok is false when
// the text is not one this scanner shapes (see above): the caller must
// then classify the text as it is.
func AppendShape(key []byte, consts []Const, sql string) ([]byte, []Const, bool) {
	if !utf8.ValidString(sql) || strings.IndexByte(sql, 0) >= 0 {
		return key, consts, false
	}
	n := len(sql)
	last := 0 // start of the pending non-constant run
	emit := func(start, end int, k ConstKind) {
		key = append(key, sql[last:start]...)
		key = append(key, 0, byte(k))
		consts = append(consts, Const{Start: int32(start), End: int32(end), Kind: k})
		last = end
	}
	i := 0
	for i < n {
		if len(consts) >= MaxShapeConsts {
			return key, consts, false
		}
		c := sql[i]
		switch {
		case c == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' && sql[i] != '\r' {
				i++
			}
		case c == '/' && i+1 < n && sql[i+1] == '*':
			end, ok := skipBlockComment(sql, i)
			if !ok {
				return key, consts, false
			}
			i = end
		case c == '\'':
			end, ok := skipQuoted(sql, i+1, false)
			if !ok || continues(sql, end) {
				return key, consts, false
			}
			emit(i, end, ConstString)
			i = end
		case c == '"':
			end, ok := skipIdent(sql, i+1)
			if !ok {
				return key, consts, false
			}
			i = end
		case c == '$':
			switch {
			case i+1 < n && isDigit(sql[i+1]):
				j := i + 1
				for j < n && isDigit(sql[j]) {
					j++
				}
				if j < n && (isIdentCont(sql[j]) || sql[j] == '_') {
					return key, consts, false // param_junk
				}
				i = j
			default:
				end, ok := skipDollar(sql, i)
				if !ok {
					return key, consts, false
				}
				emit(i, end, ConstString)
				i = end
			}
		case c == '.' && i+1 < n && sql[i+1] == '.':
			i += 2 // DOT_DOT
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(sql[i+1])):
			end, k, ok := scanNumber(sql, i)
			if !ok {
				return key, consts, false
			}
			emit(i, end, k)
			i = end
		case isIdentStart(c):
			j := i + 1
			for j < n && isIdentCont(sql[j]) {
				j++
			}
			if j < n && (sql[j] == '\'' || sql[j] == '&' || sql[j] == '"') && j == i+1 {
				switch {
				case sql[j] == '\'' && (c == 'e' || c == 'E'):
					end, ok := skipQuoted(sql, j+1, true)
					if !ok || continues(sql, end) {
						return key, consts, false
					}
					emit(i, end, ConstString)
					i = end
					continue
				case sql[j] == '\'' && (c == 'b' || c == 'B' || c == 'x' || c == 'X'):
					end, ok := skipPlain(sql, j+1)
					if !ok || continues(sql, end) {
						return key, consts, false
					}
					k := ConstBits
					if c == 'x' || c == 'X' {
						k = ConstHex
					}
					emit(i, end, k)
					i = end
					continue
				case sql[j] == '\'' && (c == 'n' || c == 'N'):
					return key, consts, false // NCHAR + string: not shaped
				case sql[j] == '&' && (c == 'u' || c == 'U'):
					if j+1 < n && (sql[j+1] == '\'' || sql[j+1] == '"') {
						return key, consts, false // U&'' / U&"": not shaped
					}
				}
			}
			i = j
		case isOpChar(c):
			j := i
			for j < n && isOpChar(sql[j]) {
				j++
			}
			if j-i >= 63 {
				return key, consts, false // "operator too long" (NAMEDATALEN)
			}
			i++ // a comment may start inside the run: look at each byte
		default:
			i++
		}
	}
	key = append(key, sql[last:]...)
	return key, consts, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isIdentStart: ident_start [A-Za-z\200-\377_].
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// isIdentCont: ident_cont [A-Za-z\200-\377_0-9\$].
func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// isOpChar: op_chars [\~\!\@\#\^\&\|\`\?\+\-\*\/\%\<\>\=].
func isOpChar(c byte) bool {
	switch c {
	case '~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=':
		return true
	}
	return false
}

// IsSpace reports whether c is whitespace to PostgreSQL's scanner (scan.l:
// space, tab, newline, carriage return, form feed, vertical tab).
func IsSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// skipBlockComment returns the end of the (nested) comment starting at i.
func skipBlockComment(sql string, i int) (int, bool) {
	depth := 0
	for i < len(sql) {
		switch {
		case sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*':
			depth++
			i += 2
		case sql[i] == '*' && i+1 < len(sql) && sql[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i, true
			}
		default:
			i++
		}
	}
	return 0, false
}

// skipQuoted returns the end of a string whose body starts at i: a doubled
// quote is a quote inside it; with escapes (E'x') a backslash escapes the next byte,
// of which only the plain escapes are shaped (the others can fail to lex:
// \u, \x, octal).
func skipQuoted(sql string, i int, escapes bool) (int, bool) {
	if !escapes { // the common case: jump from quote to quote
		for {
			j := strings.IndexByte(sql[i:], '\'')
			if j < 0 {
				return 0, false
			}
			i += j
			if i+1 < len(sql) && sql[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1, true
		}
	}
	for i < len(sql) {
		switch c := sql[i]; {
		case c == '\'':
			if i+1 < len(sql) && sql[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1, true
		case c == '\\' && escapes:
			if i+1 >= len(sql) {
				return 0, false
			}
			switch sql[i+1] {
			case '\\', '\'', '"', 'b', 'f', 'n', 'r', 't':
				i += 2
			default:
				return 0, false
			}
		case escapes && c >= 0x80:
			return 0, false // the lexer checks the encoding of escaped strings
		default:
			i++
		}
	}
	return 0, false
}

// skipPlain returns the end of a B'x' or X'x' body starting at i (no
// escapes, no doubled quotes: the lexer ends it at the first quote).
func skipPlain(sql string, i int) (int, bool) {
	for i < len(sql) {
		if sql[i] == '\'' {
			if i+1 < len(sql) && sql[i+1] == '\'' {
				return 0, false // B'a''b' is two tokens to the lexer's xqs state: not shaped
			}
			return i + 1, true
		}
		i++
	}
	return 0, false
}

// skipIdent returns the end of a quoted identifier whose body starts at i
// ("" is refused by the lexer).
func skipIdent(sql string, i int) (int, bool) {
	if i < len(sql) && sql[i] == '"' && (i+1 >= len(sql) || sql[i+1] != '"') {
		return 0, false
	}
	for i < len(sql) {
		if sql[i] == '"' {
			if i+1 < len(sql) && sql[i+1] == '"' {
				i += 2
				continue
			}
			return i + 1, true
		}
		i++
	}
	return 0, false
}

// skipDollar returns the end of the dollar-quoted string starting at i
// ($$...$$ or $tag$...$tag$; the tag is an identifier without '$').
func skipDollar(sql string, i int) (int, bool) {
	j := i + 1
	if j < len(sql) && sql[j] != '$' {
		if !isIdentStart(sql[j]) {
			return 0, false
		}
		for j < len(sql) && isIdentCont(sql[j]) && sql[j] != '$' {
			j++
		}
		if j >= len(sql) || sql[j] != '$' {
			return 0, false // dolqfailed: a lone '$'
		}
	}
	if j >= len(sql) {
		return 0, false
	}
	delim := sql[i : j+1]
	body := j + 1
	for k := body; k+len(delim) <= len(sql); k++ {
		if sql[k] == '$' && sql[k:k+len(delim)] == delim {
			return k + len(delim), true
		}
	}
	return 0, false
}

// continues reports whether a quoted string ending at end would be
// continued by the lexer (whitespace with a newline, then a quote:
// 'foo'\n'bar' is one constant). Comments count as whitespace there; this
// errs on the side of yes.
func continues(sql string, end int) bool {
	newline := false
	for end < len(sql) {
		c := sql[end]
		switch {
		case c == '\n' || c == '\r':
			newline = true
			end++
		case IsSpace(c):
			end++
		case c == '-' && end+1 < len(sql) && sql[end+1] == '-':
			for end < len(sql) && sql[end] != '\n' && sql[end] != '\r' {
				end++
			}
		case c == '\'':
			return newline
		default:
			return false
		}
	}
	return false
}

// scanNumber scans a decimal number at i: digits, an optional fraction,
// an optional exponent. Underscores, 0x/0o/0b and junk after the number
// (which the lexer rejects) are not shaped.
func scanNumber(sql string, i int) (int, ConstKind, bool) {
	n := len(sql)
	j := i
	for j < n && isDigit(sql[j]) {
		j++
	}
	kind := ConstInteger
	if j < n && sql[j] == '.' && !(j+1 < n && sql[j+1] == '.') {
		kind = ConstNumeric
		j++
		for j < n && isDigit(sql[j]) {
			j++
		}
	}
	if j < n && (sql[j] == 'e' || sql[j] == 'E') {
		k := j + 1
		if k < n && (sql[k] == '+' || sql[k] == '-') {
			k++
		}
		if k >= n || !isDigit(sql[k]) {
			return 0, 0, false // realfail / junk
		}
		for k < n && isDigit(sql[k]) {
			k++
		}
		kind, j = ConstNumeric, k
	}
	if j < n && (isIdentCont(sql[j]) || sql[j] == '_') {
		return 0, 0, false // trailing junk, 0x.., 1_000
	}
	if j < n && sql[j] == '.' && kind == ConstNumeric {
		return 0, 0, false // 1.2.3: let the lexer have it
	}
	if kind == ConstInteger && !fitsInt32(sql[i:j]) {
		kind = ConstNumeric // the lexer makes an FCONST of an integer past int32
	}
	return j, kind, true
}

func fitsInt32(digits string) bool {
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	if len(digits) < 10 {
		return true
	}
	return len(digits) == 10 && digits <= "2147483647"
}

// Shaped reports whether every constant of a shaped text became an
// A_Const of tree at its own location (or, negated, at the '-' before
// it). A constant the grammar consumed otherwise — a DO body, a function
// body, a file name, a type modifier, a FETCH count, an option value —
// changes the tree in ways only a parse can see: such a text is not
// reused by shape.
func Shaped(tree *pg.ParseResult, sql string, consts []Const) bool {
	if len(consts) == 0 {
		return true
	}
	locs := make(map[int32]struct{}, len(consts))
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if c, ok := m.Interface().(*pg.A_Const); ok {
			locs[c.GetLocation()] = struct{}{}
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message())
				}
			case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(tree.ProtoReflect())
	for _, c := range consts {
		if _, ok := locs[c.Start]; ok {
			continue
		}
		j := int(c.Start) - 1
		for j >= 0 && IsSpace(sql[j]) {
			j--
		}
		if j >= 0 && sql[j] == '-' {
			if _, ok := locs[int32(j)]; ok {
				continue
			}
		}
		return false
	}
	return true
}

// ShapeScratch holds the buffers of one shape computation; ShapeOf hands
// out pooled ones so the hot path does not allocate.
type ShapeScratch struct {
	Key    []byte
	Consts []Const
}

var shapeScratch = sync.Pool{New: func() any {
	return &ShapeScratch{Key: make([]byte, 0, 512), Consts: make([]Const, 0, 16)}
}}

// ShapeOf computes sql's shape (see AppendShape) into pooled scratch.
// ok also requires at least one constant: a text without any is its own
// shape, which an exact-text cache already covers. Call Release when the
// key and constants are no longer needed.
func ShapeOf(sql string) (s *ShapeScratch, ok bool) {
	s = shapeScratch.Get().(*ShapeScratch)
	s.Key, s.Consts, ok = AppendShape(s.Key[:0], s.Consts[:0], sql)
	return s, ok && len(s.Consts) > 0
}

// Release returns s to the pool.
func (s *ShapeScratch) Release() {
	if cap(s.Key) <= 64<<10 && cap(s.Consts) <= MaxShapeConsts {
		shapeScratch.Put(s)
	}
}

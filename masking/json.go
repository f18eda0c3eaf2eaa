package masking

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// errMalformedJSON is returned for a json/jsonb value that does not parse.
// The value itself is never part of an error.
var errMalformedJSON = errors.New("masking: malformed json value")

// maxJSONDepth bounds nesting (PostgreSQL's own limit comes from its stack
// depth; a deeper document is refused rather than risk the gateway's stack).
const maxJSONDepth = 10000

// jsonKey is a key whose value is masked wherever it appears.
type jsonKey struct {
	key      string // lower-case
	method   Method
	keepLast int
}

// jsonMasker rewrites only the values of matching keys (at any depth) and,
// with detectors, PII inside other string values; every other byte of the
// document is copied through unchanged. It validates the whole document.
type jsonMasker struct {
	keys []jsonKey
	det  detectors
}

// jsonScratch holds per-plan reusable buffers (not safe for concurrent use).
type jsonScratch struct {
	key  []byte
	tmp  []byte
	tmp2 []byte
	mac  *macState
}

type jscan struct {
	m        *jsonMasker
	sc       *jsonScratch
	in       []byte
	out      []byte
	last     int
	changed  bool
	suppress int
}

// appendMasked appends the masked document to dst. When nothing needed
// masking it returns dst unchanged and changed == false (the caller keeps
// the original bytes).
func (m *jsonMasker) appendMasked(dst, in []byte, sc *jsonScratch) ([]byte, bool, error) {
	start := len(dst)
	s := jscan{m: m, sc: sc, in: in, out: dst}
	i := s.ws(0)
	i, err := s.value(i, 0)
	if err != nil {
		return dst[:start], false, err
	}
	if s.ws(i) != len(in) {
		return dst[:start], false, errMalformedJSON
	}
	if !s.changed {
		return dst[:start], false, nil
	}
	s.out = append(s.out, in[s.last:]...)
	return s.out, true, nil
}

// ws returns the index of the first non-whitespace byte at or after i (or
// len(s.in)). It is called between every two tokens, mostly at a token
// already: one comparison (every byte above ' ' is not whitespace) settles
// that case.
func (s *jscan) ws(i int) int {
	for i < len(s.in) {
		c := s.in[i]
		if c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
		i++
	}
	return i
}

func (s *jscan) value(i, depth int) (int, error) {
	if i >= len(s.in) {
		return 0, errMalformedJSON
	}
	switch c := s.in[i]; {
	case c == '{':
		return s.object(i, depth+1)
	case c == '[':
		return s.array(i, depth+1)
	case c == '"':
		end, err := s.str(i)
		if err != nil {
			return 0, err
		}
		if s.m.det != 0 && s.suppress == 0 {
			raw := s.in[i+1 : end-1]
			if s.m.det.run(raw, nil) {
				s.out = append(s.out, s.in[s.last:i+1]...)
				s.out, _ = s.m.det.appendDetected(s.out, raw)
				s.last = end - 1
				s.changed = true
			}
		}
		return end, nil
	case c == '-' || isDigit(c):
		return s.number(i)
	case c == 't':
		return s.lit(i, "true")
	case c == 'f':
		return s.lit(i, "false")
	case c == 'n':
		return s.lit(i, "null")
	}
	return 0, errMalformedJSON
}

func (s *jscan) lit(i int, w string) (int, error) {
	if len(s.in)-i < len(w) || string(s.in[i:i+len(w)]) != w {
		return 0, errMalformedJSON
	}
	return i + len(w), nil
}

func (s *jscan) number(i int) (int, error) {
	in := s.in
	if in[i] == '-' {
		i++
	}
	if i >= len(in) || !isDigit(in[i]) {
		return 0, errMalformedJSON
	}
	if in[i] == '0' {
		i++
	} else {
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	}
	if i < len(in) && in[i] == '.' {
		i++
		if i >= len(in) || !isDigit(in[i]) {
			return 0, errMalformedJSON
		}
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if i >= len(in) || !isDigit(in[i]) {
			return 0, errMalformedJSON
		}
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	}
	return i, nil
}

// str validates the string starting at in[i] == '"' and returns the index
// after its closing quote. It skips plain bytes (no '"', '\\' or control
// character) 8 at a time: string bodies are most of a document's bytes.
func (s *jscan) str(i int) (int, error) {
	in := s.in
	i++
	for i < len(in) {
		for i+8 <= len(in) {
			x := binary.LittleEndian.Uint64(in[i:])
			// each mask's lowest set bit is exact: so is their union's
			if m := eqBytes(x, '"') | eqBytes(x, '\\') | ltBytes(x, 0x20); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(in) {
			break
		}
		c := in[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(in) {
				return 0, errMalformedJSON
			}
			switch in[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(in) {
					return 0, errMalformedJSON
				}
				for _, h := range in[i+2 : i+6] {
					if hexVal(h) < 0 {
						return 0, errMalformedJSON
					}
				}
				i += 6
			default:
				return 0, errMalformedJSON
			}
		case c < 0x20:
			return 0, errMalformedJSON
		default:
			i++
		}
	}
	return 0, errMalformedJSON
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// appendUnescaped appends the decoded content of a validated JSON string
// literal (with its quotes) to dst.
func appendUnescaped(dst, lit []byte) []byte {
	lit = lit[1 : len(lit)-1]
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch lit[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hexVal(lit[i+1])<<12 | hexVal(lit[i+2])<<8 | hexVal(lit[i+3])<<4 | hexVal(lit[i+4]))
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+6 < len(lit) && lit[i+1] == '\\' && lit[i+2] == 'u' {
				lo := rune(hexVal(lit[i+3])<<12 | hexVal(lit[i+4])<<8 | hexVal(lit[i+5])<<4 | hexVal(lit[i+6]))
				if lo >= 0xDC00 && lo < 0xE000 {
					r = (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000
					i += 6
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // " \ /
			dst = append(dst, lit[i])
		}
	}
	return dst
}

// appendJSONString appends v as a JSON string literal.
func appendJSONString(dst, v []byte) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func (s *jscan) object(i, depth int) (int, error) {
	if depth > maxJSONDepth {
		return 0, errMalformedJSON
	}
	i = s.ws(i + 1)
	if i < len(s.in) && s.in[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(s.in) || s.in[i] != '"' {
			return 0, errMalformedJSON
		}
		kend, err := s.str(i)
		if err != nil {
			return 0, err
		}
		var hit *jsonKey
		if s.suppress == 0 && len(s.m.keys) > 0 {
			hit = s.match(s.in[i:kend])
		}
		i = s.ws(kend)
		if i >= len(s.in) || s.in[i] != ':' {
			return 0, errMalformedJSON
		}
		j := s.ws(i + 1)
		if hit != nil {
			s.suppress++
			end, err := s.value(j, depth)
			s.suppress--
			if err != nil {
				return 0, err
			}
			s.out = append(s.out, s.in[s.last:j]...)
			s.out = s.replace(s.out, s.in[j:end], hit)
			s.last = end
			s.changed = true
			i = end
		} else {
			i, err = s.value(j, depth)
			if err != nil {
				return 0, err
			}
		}
		i = s.ws(i)
		if i >= len(s.in) {
			return 0, errMalformedJSON
		}
		if s.in[i] == '}' {
			return i + 1, nil
		}
		if s.in[i] != ',' {
			return 0, errMalformedJSON
		}
		i = s.ws(i + 1)
	}
}

func (s *jscan) array(i, depth int) (int, error) {
	if depth > maxJSONDepth {
		return 0, errMalformedJSON
	}
	i = s.ws(i + 1)
	if i < len(s.in) && s.in[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		i, err = s.value(i, depth)
		if err != nil {
			return 0, err
		}
		i = s.ws(i)
		if i >= len(s.in) {
			return 0, errMalformedJSON
		}
		if s.in[i] == ']' {
			return i + 1, nil
		}
		if s.in[i] != ',' {
			return 0, errMalformedJSON
		}
		i = s.ws(i + 1)
	}
}

// match decodes the key literal (escapes included: "em\u0061il" is email)
// and compares it, ASCII case-insensitively, with the masked keys. A key
// without escapes (nearly all) is compared in place, only against masked
// keys of its length: no copy, and most keys are rejected by length.
func (s *jscan) match(lit []byte) *jsonKey {
	body := lit[1 : len(lit)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		for i := range s.m.keys {
			if k := s.m.keys[i].key; len(k) == len(body) && equalLowerASCII(body, k) {
				return &s.m.keys[i]
			}
		}
		return nil
	}
	k := appendUnescaped(s.sc.key[:0], lit)
	s.sc.key = k
	for i, c := range k {
		if c >= 'A' && c <= 'Z' {
			k[i] = c + 32
		}
	}
	for i := range s.m.keys {
		if s.m.keys[i].key == string(k) {
			return &s.m.keys[i]
		}
	}
	return nil
}

// equalLowerASCII reports whether b, with A-Z lower-cased, equals k (of the
// same length).
func equalLowerASCII(b []byte, k string) bool {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 32
		}
		if c != k[i] {
			return false
		}
	}
	return true
}

func (s *jscan) replace(dst, raw []byte, k *jsonKey) []byte {
	switch k.method {
	case MethodNull:
		return append(dst, jsonNull...)
	case MethodRedact:
		return append(dst, redactedJSON...)
	}
	v := raw
	if raw[0] == '"' {
		s.sc.tmp = appendUnescaped(s.sc.tmp[:0], raw)
		v = s.sc.tmp
	} else if k.method == MethodEmail {
		return append(dst, redactedJSON...)
	}
	var ok bool
	s.sc.tmp2, ok = appendText(s.sc.tmp2[:0], v, k.method, k.keepLast, s.sc.mac)
	if !ok {
		return append(dst, jsonNull...)
	}
	return appendJSONString(dst, s.sc.tmp2)
}

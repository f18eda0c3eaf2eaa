package masking

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Detectors find PII in free text without regular expressions: one pass over
// the bytes, same-length rewrites (so JSON strings and COPY fields keep their
// framing), no allocation. They are heuristics: see docs/masking.md for what
// they miss.

type detectors uint8

const (
	detEmail detectors = 1 << iota
	detPhone
	detCard
	detSSN

	detAll = detEmail | detPhone | detCard | detSSN
)

func parseDetectors(names []string) detectors {
	var d detectors
	for _, n := range names {
		switch n {
		case "email":
			d |= detEmail
		case "phone":
			d |= detPhone
		case "credit_card":
			d |= detCard
		case "ssn":
			d |= detSSN
		}
	}
	return d
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool {
	return isDigit(c) || (c|0x20) >= 'a' && (c|0x20) <= 'z'
}
func isLocalChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}
func isDomainChar(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

// startEmail, startNumber and startAny mark the bytes at which run may
// find something: '@' for emails; a digit, '+' or '(' for phone, card and
// SSN numbers.
var startEmail, startNumber, startAny = func() (e, n, a [256]bool) {
	e['@'] = true
	for c := '0'; c <= '9'; c++ {
		n[c] = true
	}
	n['+'], n['('] = true, true
	for c := range a {
		a[c] = e[c] || n[c]
	}
	return
}()

const (
	lsb = 0x0101010101010101 // the low bit of every byte of a word
	msb = 0x8080808080808080 // the high bit of every byte of a word
)

// eqBytes returns a word whose lowest set bit is the high bit of the first
// byte of x equal to c (0 when no byte is). Higher bits can be false
// positives (the borrow of the subtraction runs past a matching byte), so
// only the lowest one is meaningful.
func eqBytes(x uint64, c byte) uint64 {
	t := x ^ (lsb * uint64(c))
	return (t - lsb) &^ t & msb
}

// ltBytes returns a word whose lowest set bit is the high bit of the first
// byte of x below n (n <= 0x80; 0 when no byte is). As with eqBytes, higher
// bits can be false positives (a borrow), and bytes >= 0x80 never count.
func ltBytes(x uint64, n byte) uint64 {
	return (x - lsb*uint64(n)) &^ x & msb
}

// byteRange returns a word with the high bit set in exactly the bytes b of
// x with lo <= b <= hi (lo > 0, hi < 0x7f). Each byte is computed on its low
// 7 bits, where neither the subtraction nor the addition can carry into the
// next byte, and &^ x drops the bytes >= 0x80 (0xb0-0xb9 are not digits).
func byteRange(x uint64, lo, hi byte) uint64 {
	low := x & (lsb * 0x7f)
	return (lsb*(127+uint64(hi)+1) - low) &^ x & (low + lsb*(127-uint64(lo)+1)) & msb
}

// skipToStart returns the index of the first byte of v at or after i that
// can start a match (start is the table for the detector mix: '@' when
// email is set; a digit, '+' or '(' when number is set), or len(v). Such
// bytes are rare in ordinary text, and a table lookup per byte was most of
// the time detectors spent: this tests 8 bytes per step, first with one
// range check ('(' to '9', or to '@' with email) that lets most words of
// prose pass at once, then, for a word with a byte in the range (a comma,
// a period, a hyphen or a real start byte), with the exact sets.
func skipToStart(v []byte, i int, email, number bool, start *[256]bool) int {
	if !number {
		// '@' alone: IndexByte is vectorized.
		if j := bytes.IndexByte(v[i:], '@'); j >= 0 {
			return i + j
		}
		return len(v)
	}
	hi := byte('9')
	if email {
		hi = '@'
	}
	for ; i+8 <= len(v); i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		if byteRange(x, '(', hi) == 0 {
			continue
		}
		m := byteRange(x, '0', '9') | eqBytes(x, '+') | eqBytes(x, '(')
		if email {
			m |= eqBytes(x, '@')
		}
		if m != 0 {
			// every mask's lowest set bit is exact, so the lowest bit of
			// their union is the first start byte of the word
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(v) && !start[v[i]] {
		i++
	}
	return i
}

// run scans v for PII. When w is non-nil (a copy of v, same length) the
// matches are starred in w. It reports whether anything matched (with w nil,
// as soon as something does).
func (d detectors) run(v, w []byte) bool {
	if d == 0 {
		return false
	}
	start := &startAny
	switch {
	case d&(detPhone|detCard|detSSN) == 0:
		start = &startEmail
	case d&detEmail == 0:
		start = &startNumber
	}
	email, number := d&detEmail != 0, d&(detPhone|detCard|detSSN) != 0
	found := false
	for i := 0; i < len(v); i++ {
		// Skip the bytes that cannot start a match: the checks below do
		// nothing for them (most of any text).
		i = skipToStart(v, i, email, number, start)
		if i == len(v) {
			break
		}
		c := v[i]
		if c == '@' && d&detEmail != 0 {
			j := i
			for j > 0 && isLocalChar(v[j-1]) {
				j--
			}
			k := i + 1
			dot := false
			for k < len(v) && isDomainChar(v[k]) {
				if v[k] == '.' && k > i+1 {
					dot = true
				}
				k++
			}
			for k > i+1 && (v[k-1] == '.' || v[k-1] == '-') {
				k--
			}
			if j < i && dot && k > i+1 && v[k-1] != '.' {
				if w == nil {
					return true // the answer is known: no need to scan on
				}
				found = true
				for x := j; x < i; x++ {
					w[x] = '*'
				}
				i = k - 1
				continue
			}
		}
		if d&(detPhone|detCard|detSSN) == 0 {
			continue
		}
		if !(isDigit(c) || ((c == '+' || c == '(') && i+1 < len(v) && isDigit(v[i+1]))) {
			continue
		}
		if i > 0 && isAlnum(v[i-1]) {
			// inside a word or number already passed: skip the rest of it
			for i+1 < len(v) && isAlnum(v[i+1]) {
				i++
			}
			continue
		}
		start, last, digits := i, -1, 0
		for k := i; k < len(v); k++ {
			b := v[k]
			if isDigit(b) {
				digits++
				last = k
				continue
			}
			if b == ' ' || b == '-' || b == '.' || b == '(' || b == ')' || (b == '+' && k == start) {
				if k > start && !isDigit(v[k-1]) && !(v[k-1] == ')' && b == ' ') && !(v[k-1] == ' ' && b == '(') && v[k-1] != '+' {
					break
				}
				continue
			}
			break
		}
		if last < 0 {
			continue
		}
		if last+1 < len(v) && isAlnum(v[last+1]) {
			i = last
			continue
		}
		span := v[start : last+1]
		keep := -1 // digits to keep at the end; -1 = no match
		switch {
		case d&detSSN != 0 && isSSN(span):
			keep = 0
		case d&detCard != 0 && digits >= 13 && digits <= 19 && luhn(span):
			keep = 4
		case d&detPhone != 0 && digits >= 10 && digits <= 15:
			keep = 0
		}
		if keep >= 0 {
			if w == nil {
				return true
			}
			found = true
			n := 0
			for x := last; x >= start; x-- {
				if isDigit(w[x]) {
					if n >= keep {
						w[x] = '*'
					}
					n++
				}
			}
		}
		i = last
	}
	return found
}

func isSSN(s []byte) bool {
	if len(s) != 11 || s[3] != '-' || s[6] != '-' {
		return false
	}
	for i, c := range s {
		if i != 3 && i != 6 && !isDigit(c) {
			return false
		}
	}
	return true
}

func luhn(s []byte) bool {
	sum, alt := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		if !isDigit(s[i]) {
			continue
		}
		n := int(s[i] - '0')
		if alt {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		alt = !alt
	}
	return sum%10 == 0
}

// appendDetected appends v with detected PII starred to dst; changed is
// false (and dst untouched) when nothing matched.
func (d detectors) appendDetected(dst, v []byte) ([]byte, bool) {
	if !d.run(v, nil) {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, v...)
	d.run(v, dst[start:])
	return dst, true
}

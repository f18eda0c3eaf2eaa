package masking

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// refRun is detectors.run as it was before the word-at-a-time skip (one
// byte per step through the start tables): the reference the differential
// fuzz target compares run against.
func refRun(d detectors, v, w []byte) bool {
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
	found := false
	for i := 0; i < len(v); i++ {
		for i < len(v) && !start[v[i]] {
			i++
		}
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
				found = true
				if w != nil {
					for x := j; x < i; x++ {
						w[x] = '*'
					}
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
		keep := -1
		switch {
		case d&detSSN != 0 && isSSN(span):
			keep = 0
		case d&detCard != 0 && digits >= 13 && digits <= 19 && luhn(span):
			keep = 4
		case d&detPhone != 0 && digits >= 10 && digits <= 15:
			keep = 0
		}
		if keep >= 0 {
			found = true
			if w != nil {
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
		}
		i = last
	}
	return found
}

// checkRun compares run with refRun for every detector mix on v.
func checkRun(t *testing.T, v []byte) {
	t.Helper()
	for d := detectors(0); d <= detAll; d++ {
		got, want := d.run(v, nil), refRun(d, v, nil)
		if got != want {
			t.Fatalf("detectors %04b on %q: run = %v, reference = %v", d, v, got, want)
		}
		gw, ww := bytes.Clone(v), bytes.Clone(v)
		d.run(v, gw)
		refRun(d, v, ww)
		if !bytes.Equal(gw, ww) {
			t.Fatalf("detectors %04b on %q: run wrote %q, reference %q", d, v, gw, ww)
		}
	}
}

func TestRunMatchesReference(t *testing.T) {
	for _, s := range []string{
		"", "@", "a@b.co", "mail alice.smith@example.com now", "ssn 123-45-6789.",
		"card 4111 1111 1111 1111 ok", "call +1 (555) 010-1234", "order 12345 on 2024-01-02",
		"id abc1234567890", "\xff\xb0\xb9\xc0\xab\xa8 0123456789 \x80@x.io", "abcdefg@hijklmn.op 5550101234",
		"/:?*,-./0123456789:;<=>?@[`", "........+1 202 555 0147........(555) 010-1234",
	} {
		checkRun(t, []byte(s))
	}
	// every byte value at every offset of a word
	for c := 0; c < 256; c++ {
		for off := 0; off < 17; off++ {
			v := bytes.Repeat([]byte{'x'}, 17)
			v[off] = byte(c)
			checkRun(t, v)
		}
	}
}

// TestRunMatchesReferenceRandom compares run with refRun on random text
// drawn from the bytes the detectors care about (coverage-guided fuzzing
// rarely builds a whole phone number or email by itself).
func TestRunMatchesReferenceRandom(t *testing.T) {
	const alphabet = "0123456789012345678901234567890123456789@@.. --()+_%aZz\xb0\x80\xff\xc0"
	forRandomStrings(1, alphabet, 20000, 80, func(v []byte) { checkRun(t, v) })
}

// forRandomStrings calls fn with n strings (n/10 under -short) of up to
// maxLen bytes drawn from alphabet, seeded: the same strings every run.
func forRandomStrings(seed uint64, alphabet string, n, maxLen int, fn func([]byte)) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	if testing.Short() {
		n /= 10
	}
	v := make([]byte, 0, maxLen)
	for range n {
		v = v[:0]
		for range r.IntN(maxLen) {
			v = append(v, alphabet[r.IntN(len(alphabet))])
		}
		fn(v)
	}
}

func FuzzDetectors(f *testing.F) {
	for _, s := range []string{
		"mail alice.smith@example.com now", "ssn 123-45-6789.", "card 4111 1111 1111 1111 ok",
		"call +1 (555) 010-1234", "id abc1234567890", "\x80\xb0\xff@a.b 4111111111111111",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) { checkRun(t, v) })
}

package masking

import (
	"testing"
)

// refStr is jscan.str as it was before the word-at-a-time skip: the
// reference the differential tests compare str against.
func refStr(in []byte, i int) (int, error) {
	i++
	for i < len(in) {
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

// refMatch is jscan.match as it was before the in-place comparison.
func refMatch(keys []jsonKey, lit []byte) *jsonKey {
	k := appendUnescaped(nil, lit)
	for i, c := range k {
		if c >= 'A' && c <= 'Z' {
			k[i] = c + 32
		}
	}
	for i := range keys {
		if keys[i].key == string(k) {
			return &keys[i]
		}
	}
	return nil
}

var refKeys = []jsonKey{{key: "email"}, {key: "phone"}, {key: "name"}, {key: "author"}, {key: "é-mail"}, {key: ""}, {key: "a\"b"}, {key: "k\x00"}}

// checkScan compares str and match with refStr and refMatch on the string
// literal '"' + body (and at every later quote of it).
func checkScan(t *testing.T, body []byte) {
	t.Helper()
	in := append([]byte{'"'}, body...)
	s := jscan{m: &jsonMasker{keys: refKeys}, sc: &jsonScratch{}, in: in}
	for i, c := range in {
		if c != '"' {
			continue
		}
		got, gerr := s.str(i)
		want, werr := refStr(in, i)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Fatalf("str(%q, %d) = %d, %v; reference %d, %v", in, i, got, gerr, want, werr)
		}
		if gerr == nil {
			if g, w := s.match(in[i:got]), refMatch(refKeys, in[i:got]); g != w {
				t.Fatalf("match(%q) = %v; reference %v", in[i:got], g, w)
			}
		}
	}
}

func TestJSONScanMatchesReference(t *testing.T) {
	for _, s := range []string{
		``, `"`, `email"`, `EMail"`, `em\u0061il"`, `EM\u0041IL"`, `phone" : 1`, `Author"`, `é-mail"`, `É-mail"`,
		`a\"b"`, `k\u0000"`, `"`, `\\"`, `\`, `\u12`, `\x"`, "tab\there\"", "abcdefghijklmnopqrstuvwxyz\xff\x80\"",
		`a long value with no escapes at all, spanning several words" rest`, `\ud83d\ude00 surrogate"`,
	} {
		checkScan(t, []byte(s))
	}
	const alphabet = `"\\u0041aeEmMilLnNphH ` + "\x00\x1f\x7f\x80\xff/bfnrt0123456789"
	forRandomStrings(3, alphabet, 50000, 40, func(v []byte) { checkScan(t, v) })
}

func FuzzJSONScan(f *testing.F) {
	for _, s := range []string{`email"`, `em\u0061il": 1`, `a long value with no escapes" x`, "\x1f\"", `\ud83d\ude00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkScan(t, body) })
}

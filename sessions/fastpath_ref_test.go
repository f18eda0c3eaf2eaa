package sessions

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// Reference copies of appendJSONString and containsFold before their fast
// paths (8 bytes at a time; IndexByte to a candidate): the fast ones must
// agree with them on every input.

func refAppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func refContainsFold(s, sub string) bool {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		ok := true
		for j := 0; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func randText(r *rand.Rand) string {
	alphabet := []string{"a", "P", "p", "A", "S", "s", "w", "o", "r", "d", "W", "O", "R", "D", "1", ",", ".", " ",
		"\"", "\\", "\n", "\x01", "\x7f", "é", "\u2028", "ſ", "\xff", "password", "PassWord"}
	n := r.IntN(40)
	var b []byte
	for i := 0; i < n; i++ {
		b = append(b, alphabet[r.IntN(len(alphabet))]...)
	}
	return string(b)
}

func TestFastPathsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for k := 0; k < 50000; k++ {
		s := randText(r)
		checkFast(t, s)
	}
}

func checkFast(t *testing.T, s string) {
	t.Helper()
	if got, want := appendJSONString(nil, s), refAppendJSONString(nil, s); !bytes.Equal(got, want) {
		t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
	}
	for _, sub := range []string{"password", "p", "pa"} {
		if got, want := containsFold(s, sub), refContainsFold(s, sub); got != want {
			t.Fatalf("containsFold(%q, %q) = %v, want %v", s, sub, got, want)
		}
	}
}

func FuzzFastPaths(f *testing.F) {
	f.Add("INSERT INTO t VALUES ('[0.1,0.2]', 'Pass\"word\\n')")
	f.Add("ALTER ROLE x PASSWORD 'secret' -- é\u2028")
	f.Fuzz(func(t *testing.T, s string) {
		checkFast(t, s)
	})
}

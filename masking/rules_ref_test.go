package masking

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// refPartial is appendText's MethodPartial as it was before appendStars
// and the one-byte-rune shortcut: the reference the differential tests
// compare against.
func refPartial(dst, v []byte, keepLast int) []byte {
	n := utf8.RuneCount(v)
	keep := keepLast
	if keep >= n {
		keep = 0
	}
	for i := 0; i < n-keep; i++ {
		dst = append(dst, '*')
	}
	if keep > 0 {
		off := 0
		for i := 0; i < n-keep; i++ {
			_, sz := utf8.DecodeRune(v[off:])
			off += sz
		}
		dst = append(dst, v[off:]...)
	}
	return dst
}

func checkPartial(t *testing.T, v []byte, keep int) {
	t.Helper()
	got, ok := appendText([]byte("x"), v, MethodPartial, keep, nil)
	if want := refPartial([]byte("x"), v, keep); !ok || !bytes.Equal(got, want) {
		t.Fatalf("partial keep %d of %q = %q, reference %q", keep, v, got, want)
	}
}

func TestPartialMatchesReference(t *testing.T) {
	const alphabet = "0123456789-abc \x80\xff\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
	r := rand.New(rand.NewPCG(5, 6))
	v := make([]byte, 0, 200)
	for range 20000 {
		v = v[:0]
		for range r.IntN(200) {
			v = append(v, alphabet[r.IntN(len(alphabet))])
		}
		checkPartial(t, v, r.IntN(30))
	}
}

func FuzzPartial(f *testing.F) {
	f.Add([]byte("4111 1111 1111 1111"), uint8(4))
	f.Add([]byte("héllo"), uint8(2))
	f.Add([]byte("\xff\xc3"), uint8(1))
	f.Fuzz(func(t *testing.T, v []byte, keep uint8) { checkPartial(t, v, int(keep)) })
}

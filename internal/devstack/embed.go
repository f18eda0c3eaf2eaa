package devstack

import (
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Dim is the dimension of the demo embeddings.
const Dim = 384

var stopwords = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "by": true,
	"for": true, "from": true, "in": true, "is": true, "it": true, "of": true, "on": true, "or": true,
	"that": true, "the": true, "this": true, "to": true, "was": true, "with": true, "about": true,
}

// Embed maps text to a deterministic, L2-normalised 384-dimensional vector:
// lowercased words (letters and digits; stopwords dropped) and adjacent word
// pairs are hashed (FNV-1a, signed) into the dimensions. Texts sharing words
// are near in L2 and cosine distance. Text without words gives the zero vector.
func Embed(text string) []float32 {
	v := make([]float32, Dim)
	var prev, cur []byte
	buf := make([]byte, 0, 64)
	flush := func() {
		if len(cur) == 0 {
			return
		}
		if !stopwords[string(cur)] {
			add(v, fnv(fnvInit, 'u', cur), 1)
			if len(prev) > 0 {
				h := fnv(fnv(fnvInit, 'b', prev), ' ', cur)
				add(v, h, 0.5)
			}
			prev = append(prev[:0], cur...)
		}
		cur = cur[:0]
	}
	cur = buf
	prev = make([]byte, 0, 64)
	for _, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			cur = utf8.AppendRune(cur, unicode.ToLower(r))
			continue
		}
		flush()
	}
	flush()
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum > 0 {
		inv := float32(1 / math.Sqrt(sum))
		for i := range v {
			v[i] *= inv
		}
	}
	return v
}

const (
	fnvInit  = 14695981039346656037
	fnvPrime = 1099511628211
)

func fnv(h uint64, sep byte, b []byte) uint64 {
	h = (h ^ uint64(sep)) * fnvPrime
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

func add(v []float32, h uint64, w float32) {
	if h>>63 == 1 {
		w = -w
	}
	v[(h>>1)%Dim] += w
}

// VectorLiteral formats v as pgvector's text form "[x,y,...]".
func VectorLiteral(v []float32) string {
	b := make([]byte, 0, len(v)*10+2)
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(x), 'g', -1, 32)
	}
	return string(append(b, ']'))
}

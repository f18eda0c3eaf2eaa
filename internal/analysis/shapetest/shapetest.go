// Package shapetest helps tests of shape caches (internal/analysis's
// AppendShape): it rewrites a text's constants to other values of the
// same lexer kind, giving another text of the same shape.
package shapetest

import (
	"strconv"
	"strings"

	"github.com/pgwarden/pgwarden/internal/analysis"
)

// Revalue returns sql with every constant replaced by another of its kind
// chosen by seed (other lengths, other quoting: 'x', E'x', $q$x$q$), and whether
// the result has sql's shape. It is false when sql is not shaped, has no
// constants, or a replacement joined a neighbouring token (x followed by
// '...' lexes as a hex string): that text has another shape.
func Revalue(sql string, seed uint64) (string, bool) {
	key, consts, ok := analysis.AppendShape(nil, nil, sql)
	if !ok || len(consts) == 0 {
		return "", false
	}
	var b strings.Builder
	last := int32(0)
	r := seed
	for _, k := range consts {
		b.WriteString(sql[last:k.Start])
		r = r*6364136223846793005 + 1442695040888963407
		b.WriteString(variant(k.Kind, r>>11))
		last = k.End
	}
	b.WriteString(sql[last:])
	next := b.String()
	key2, _, ok := analysis.AppendShape(nil, nil, next)
	return next, ok && string(key2) == string(key)
}

func variant(k analysis.ConstKind, r uint64) string {
	switch k {
	case analysis.ConstInteger:
		return strconv.FormatUint(r%2147483647, 10)
	case analysis.ConstNumeric:
		return strconv.FormatUint(r%100000, 10) + "." + strconv.FormatUint(r%97, 10)
	case analysis.ConstString:
		s := strings.Repeat("x'", int(r%5)) + strconv.FormatUint(r, 36)
		switch r % 3 {
		case 0:
			return "'" + strings.ReplaceAll(s, "'", "''") + "'"
		case 1:
			return "$q$" + s + "$q$"
		}
		return "E'" + strings.ReplaceAll(s, "'", "\\'") + "'"
	case analysis.ConstBits:
		return "B'" + strconv.FormatUint(r%64, 2) + "'"
	case analysis.ConstHex:
		return "X'" + strconv.FormatUint(r%65536, 16) + "'"
	}
	panic("shapetest: unknown constant kind")
}

package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"unicode/utf8"

	"github.com/pgwarden/pgwarden/config"
)

// Method is how a masked value is rewritten.
type Method uint8

const (
	MethodRedact  Method = iota + 1 // a fixed marker: Redacted for text, "[REDACTED]" for JSON, NULL for other types
	MethodNull                      // SQL NULL
	MethodPartial                   // keep the last KeepLast characters, star the rest
	MethodEmail                     // keep the domain: "****@example.com"
	MethodHash                      // hex HMAC-SHA-256 with masking.hmac_key (deterministic)
)

// Redacted is what MethodRedact writes into text-like values.
const Redacted = "[REDACTED]"

var (
	redactedJSON = []byte(`"` + Redacted + `"`)
	jsonNull     = []byte("null")
	emailStars   = []byte("****")
)

func parseMethod(s string) Method {
	switch s {
	case "null":
		return MethodNull
	case "partial":
		return MethodPartial
	case "email":
		return MethodEmail
	case "hash":
		return MethodHash
	}
	return MethodRedact
}

func (m Method) String() string {
	switch m {
	case MethodNull:
		return "null"
	case MethodPartial:
		return "partial"
	case MethodEmail:
		return "email"
	case MethodHash:
		return "hash"
	}
	return "redact"
}

// rule is one compiled masking.rules entry.
type rule struct {
	idx      int    // position in masking.rules (for messages and ties)
	schema   string // "" = any schema
	table    string // "" = any table
	column   string
	method   Method
	keepLast int
	jsonKeys []string // lower-cased; non-empty: mask these keys inside the json/jsonb value
}

func compileRule(i int, r config.MaskRule) rule {
	cr := rule{idx: i, column: strings.ToLower(r.Column), method: parseMethod(r.Method), keepLast: r.KeepLast}
	if r.Table != "" {
		t := strings.ToLower(r.Table)
		if dot := strings.LastIndexByte(t, '.'); dot >= 0 {
			cr.schema, cr.table = t[:dot], t[dot+1:]
		} else {
			cr.table = t
		}
	}
	for _, k := range r.JSONKeys {
		cr.jsonKeys = append(cr.jsonKeys, strings.ToLower(k))
	}
	return cr
}

// specificity orders matching rules: schema.table.column > table.column > column.
func (r *rule) specificity() int {
	switch {
	case r.schema != "":
		return 3
	case r.table != "":
		return 2
	}
	return 1
}

// matches reports whether the rule covers schema.table.column. An empty
// schema argument (an unqualified name in SQL text) matches any rule schema:
// the search_path of the client is unknown, so we assume the worst.
func (r *rule) matches(schema, table, column string) bool {
	if !strings.EqualFold(r.column, column) {
		return false
	}
	if r.table != "" && !strings.EqualFold(r.table, table) {
		return false
	}
	if r.schema != "" && schema != "" && !strings.EqualFold(r.schema, schema) {
		return false
	}
	return true
}

func (r *rule) name() string {
	switch {
	case r.schema != "":
		return r.schema + "." + r.table + "." + r.column
	case r.table != "":
		return r.table + "." + r.column
	}
	return r.column
}

// appendText appends the masked form of the text value v (not NULL) to dst.
// The boolean is false when the method yields NULL.
func appendText(dst, v []byte, m Method, keepLast int, mac *macState) ([]byte, bool) {
	switch m {
	case MethodNull:
		return dst, false
	case MethodPartial:
		n := utf8.RuneCount(v)
		keep := keepLast
		if keep >= n { // a value no longer than keep_last would be shown whole: star it all
			keep = 0
		}
		dst = appendStars(dst, n-keep)
		if keep > 0 {
			// skip n-keep runes
			off := n - keep // every rune is one byte: RuneCount counted bytes
			if n != len(v) {
				off = 0
				for i := 0; i < n-keep; i++ {
					_, sz := utf8.DecodeRune(v[off:])
					off += sz
				}
			}
			dst = append(dst, v[off:]...)
		}
		return dst, true
	case MethodEmail:
		at := -1
		for i := len(v) - 1; i >= 0; i-- {
			if v[i] == '@' {
				at = i
				break
			}
		}
		if at < 0 {
			return append(dst, Redacted...), true
		}
		dst = append(dst, emailStars...)
		return append(dst, v[at:]...), true
	case MethodHash:
		if mac == nil {
			return append(dst, Redacted...), true
		}
		mac.h.Reset()
		mac.h.Write(v)
		mac.sum = mac.h.Sum(mac.sum[:0])
		return hex.AppendEncode(dst, mac.sum), true
	}
	return append(dst, Redacted...), true
}

// stars is appended in chunks by appendStars (one bounds check per chunk,
// not per byte).
const stars = "****************************************************************"

// appendStars appends n '*' to dst.
func appendStars(dst []byte, n int) []byte {
	for n > len(stars) {
		dst = append(dst, stars...)
		n -= len(stars)
	}
	if n > 0 {
		dst = append(dst, stars[:n]...)
	}
	return dst
}

// macState is a reusable keyed HMAC-SHA-256 (one per Plan: not concurrent).
type macState struct {
	h   hash.Hash
	sum []byte
}

func newMAC(key string) *macState {
	if key == "" {
		return nil
	}
	return &macState{h: hmac.New(sha256.New, []byte(key)), sum: make([]byte, 0, sha256.Size)}
}

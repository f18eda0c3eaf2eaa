package mcp

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// maxIdentBytes is PostgreSQL's NAMEDATALEN-1: longer names are truncated
// by the server, so two different arguments could name one table.
const maxIdentBytes = 63

// tableName is a parsed table argument: "documents", "public.documents",
// `"My Table"` or `public."My Table"`, folded as PostgreSQL folds
// unquoted identifiers (to lower case).
type tableName struct {
	schema, name string // schema "" : the first match on the session's search_path
}

// quoted is the name as SQL text (each part double-quoted).
func (t tableName) quoted() string {
	if t.schema == "" {
		return pgx.Identifier{t.name}.Sanitize()
	}
	return pgx.Identifier{t.schema, t.name}.Sanitize()
}

func (t tableName) String() string {
	if t.schema == "" {
		return t.name
	}
	return t.schema + "." + t.name
}

// parseTableName parses a table argument. It accepts one or two
// dot-separated parts, each a plain identifier ([A-Za-z_][A-Za-z0-9_$]*,
// folded to lower case) or a double-quoted one ("" for a quote inside).
func parseTableName(s string) (tableName, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return tableName{}, fmt.Errorf("is empty: name a table, e.g. documents or public.documents")
	}
	if len(s) > 2*(maxIdentBytes+2)+1 {
		return tableName{}, fmt.Errorf("is too long")
	}
	var parts []string
	for rest := s; ; {
		part, tail, err := parseIdent(rest)
		if err != nil {
			return tableName{}, fmt.Errorf("%q: %v", s, err)
		}
		parts = append(parts, part)
		if tail == "" {
			break
		}
		if tail[0] != '.' {
			return tableName{}, fmt.Errorf("%q: unexpected %q (write schema.table; quote names with other characters: \"My Table\")", s, tail[:1])
		}
		rest = tail[1:]
	}
	switch len(parts) {
	case 1:
		return tableName{name: parts[0]}, nil
	case 2:
		return tableName{schema: parts[0], name: parts[1]}, nil
	}
	return tableName{}, fmt.Errorf("%q: at most schema.table (a table of another database cannot be named)", s)
}

// parseColumnName parses a column argument: one identifier, plain or quoted.
func parseColumnName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("is empty")
	}
	name, tail, err := parseIdent(s)
	if err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	if tail != "" {
		return "", fmt.Errorf("%q: a single column name, without table or schema", s)
	}
	return name, nil
}

// parseIdent reads one identifier from the start of s and returns it with
// the rest of s.
func parseIdent(s string) (ident, rest string, err error) {
	if s == "" {
		return "", "", fmt.Errorf("a name is missing")
	}
	if s[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '"' && i+1 < len(s) && s[i+1] == '"':
				b.WriteByte('"')
				i++
			case c == '"':
				if b.Len() == 0 {
					return "", "", fmt.Errorf("an empty quoted name")
				}
				return checkIdentLen(b.String(), s[i+1:])
			case c == 0:
				return "", "", fmt.Errorf("a NUL byte in a name")
			default:
				b.WriteByte(c)
			}
		}
		return "", "", fmt.Errorf("an unterminated quoted name")
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '$') {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return "", "", fmt.Errorf("%q cannot start a name (quote it: \"...\")", s[:1])
	}
	return checkIdentLen(strings.ToLower(s[:i]), s[i:])
}

func checkIdentLen(ident, rest string) (string, string, error) {
	if len(ident) > maxIdentBytes {
		return "", "", fmt.Errorf("a name longer than %d bytes", maxIdentBytes)
	}
	return ident, rest, nil
}

// maxDimensions is pgvector's limit for the vector type.
const maxDimensions = 16000

// vectorLiteral is v as pgvector's text input ([1,2.5,-3]).
func vectorLiteral(v []float64) (string, error) {
	if len(v) == 0 {
		return "", fmt.Errorf("is empty")
	}
	if len(v) > maxDimensions {
		return "", fmt.Errorf("has %d dimensions; pgvector allows at most %d", len(v), maxDimensions)
	}
	b := make([]byte, 0, 10*len(v)+2)
	b = append(b, '[')
	for i, f := range v {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxFloat32 {
			return "", fmt.Errorf("element %d is not a finite 32-bit float", i)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, f, 'g', -1, 32)
	}
	return string(append(b, ']')), nil
}

package sessions

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// RedactedLiteral replaces a secret string literal in recorded SQL.
const RedactedLiteral = "'[redacted]'"

// UnscannableSQL replaces a statement that mentions a password but cannot
// be tokenised: fail closed rather than risk recording the secret.
const UnscannableSQL = "/* pgwarden: statement redacted (contains PASSWORD and could not be scanned) */"

// RedactSQL removes secrets from SQL before it is recorded: the string
// literal following the PASSWORD keyword (CREATE/ALTER ROLE/USER/GROUP ...
// [ENCRYPTED] PASSWORD '...', and user-mapping OPTIONS (password '...')),
// whatever its quoting ('..', E'..', U&'..' [UESCAPE '.'], $$..$$, $tag$..$tag$).
// Tokens come from PostgreSQL's own lexer (pg_query.Scan), never a regexp,
// so odd quoting cannot slip a secret past. It reports whether the
// statement is secret-bearing (its bind parameters must not be recorded).
func RedactSQL(sql string) string {
	s, _ := redactSQL(sql)
	return s
}

// redactSQL is RedactSQL that also reports whether the statement is
// secret-bearing: its bind parameters must not be recorded.
func redactSQL(sql string) (string, bool) {
	if !containsFold(sql, "password") {
		return sql, false // the keyword cannot be spelled without these letters
	}
	res, err := pg_query.Scan(sql)
	if err != nil {
		return UnscannableSQL, true
	}
	toks := res.GetTokens()
	var b strings.Builder
	last := 0
	changed := false
	for i := 0; i < len(toks); i++ {
		if toks[i].Token != pg_query.Token_PASSWORD && !(toks[i].Token == pg_query.Token_IDENT && strings.EqualFold(sql[toks[i].Start:toks[i].End], "password")) {
			continue
		}
		j := nextSignificant(toks, i+1)
		if j < 0 {
			continue
		}
		t := toks[j]
		if t.Token != pg_query.Token_SCONST && t.Token != pg_query.Token_USCONST {
			continue
		}
		end := t.End
		// U&'..' UESCAPE '!' : swallow the escape clause too.
		if k := nextSignificant(toks, j+1); k >= 0 && toks[k].Token == pg_query.Token_UESCAPE {
			if m := nextSignificant(toks, k+1); m >= 0 && toks[m].Token == pg_query.Token_SCONST {
				end = toks[m].End
			}
		}
		if int(t.Start) < last || int(end) > len(sql) {
			return UnscannableSQL, true
		}
		b.WriteString(sql[last:t.Start])
		b.WriteString(RedactedLiteral)
		last = int(end)
		changed = true
		i = j
	}
	if !changed {
		return sql, secretStatement(sql)
	}
	b.WriteString(sql[last:])
	return b.String(), true
}

func nextSignificant(toks []*pg_query.ScanToken, i int) int {
	for ; i < len(toks); i++ {
		switch toks[i].Token {
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			continue
		}
		return i
	}
	return -1
}

// secretStatement reports whether sql is a role or user-mapping statement
// (whose parameters must never be recorded even without a literal).
func secretStatement(sql string) bool {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return true // mentions password, cannot be parsed: fail closed
	}
	for _, s := range tree.GetStmts() {
		n := s.GetStmt()
		if n.GetCreateRoleStmt() != nil || n.GetAlterRoleStmt() != nil ||
			n.GetCreateUserMappingStmt() != nil || n.GetAlterUserMappingStmt() != nil {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the ASCII-lowercase word sub,
// ignoring ASCII case, without allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	lo, up := sub[0], sub[0]
	if 'a' <= lo && lo <= 'z' {
		up = lo - ('a' - 'A')
	}
	// jump to the next byte that can start a match (IndexByte is
	// vectorised), then compare the rest
	nextLo, nextUp := -1, -1 // positions found and not yet passed
	for i := 0; i+n <= len(s); {
		if nextLo < i {
			if nextLo = strings.IndexByte(s[i:], lo); nextLo < 0 {
				nextLo = len(s)
			} else {
				nextLo += i
			}
		}
		if nextUp < i {
			if nextUp = strings.IndexByte(s[i:], up); nextUp < 0 {
				nextUp = len(s)
			} else {
				nextUp += i
			}
		}
		i = min(nextLo, nextUp)
		if i+n > len(s) {
			return false
		}
		ok := true
		for j := 1; j < n; j++ {
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
		i++
	}
	return false
}

package sqlpolicy

import (
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// treeHasDistance walks the whole tree (not just ORDER BY/WHERE) for a
// pgvector distance operator or function: a superset of what isSearch
// looks for.
func treeHasDistance(t testing.TB, sql string) bool {
	t.Helper()
	tree, err := pg.Parse(sql)
	if err != nil {
		return false
	}
	for _, rs := range tree.Stmts {
		if containsDistance([]*pg.Node{rs.GetStmt()}) {
			return true
		}
	}
	return false
}

// TestMayHaveDistanceNeverMisses: the text filter in front of isSearch
// says yes for every statement whose tree has a distance operator or
// function — over the policy corpus and spellings that try to hide one
// (case, quoting, OPERATOR(), Unicode escapes, comments, schema names).
func TestMayHaveDistanceNeverMisses(t *testing.T) {
	cases := []string{
		"SELECT id FROM documents ORDER BY embedding <-> '[1,2,3]' LIMIT 5",
		"SELECT id FROM documents ORDER BY embedding<#>'[1,2,3]' LIMIT 5",
		"SELECT id FROM documents ORDER BY embedding OPERATOR(public.<=>) '[1,2,3]'",
		"SELECT 1 FROM documents WHERE embedding <+> '[1]' < 3",
		"SELECT 1 FROM t ORDER BY b <~> '101'", "SELECT 1 FROM t ORDER BY b <%> '101'",
		"SELECT id FROM documents ORDER BY L2_DISTANCE(embedding, '[1,2,3]') LIMIT 5",
		`SELECT id FROM documents ORDER BY "cosine_distance"(embedding, '[1,2,3]')`,
		"SELECT id FROM documents ORDER BY public.Inner_Product(embedding, '[1,2,3]')",
		`SELECT id FROM documents ORDER BY U&"l2\005fdistance"(embedding, '[1,2,3]')`,
		`SELECT id FROM documents ORDER BY u&"cosine\005Fdistance"(embedding, '[1]')`,
		"SELECT vector_dims(embedding) FROM documents",
		"SELECT id FROM documents /* c */ ORDER BY embedding/**/<->'[1]'",
		"SELECT id FROM documents ORDER BY hamming_distance(b, '1') UNION SELECT 1 ORDER BY 1",
	}
	for _, c := range loadCorpus(t) {
		cases = append(cases, c.sql)
	}
	checked := 0
	for _, sql := range cases {
		if treeHasDistance(t, sql) {
			checked++
			if !mayHaveDistance(sql) {
				t.Errorf("filter misses a distance in %q", sql)
			}
		}
	}
	if checked < 14 {
		t.Fatalf("only %d statements with a distance checked", checked)
	}
	for _, sql := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 42",
		"SELECT a < -b, x<>y, 'distance' FROM t WHERE c <= d",
	} {
		if mayHaveDistance(sql) {
			t.Errorf("filter says yes to %q (it would still be correct, only slower)", sql)
		}
	}
}

// FuzzMayHaveDistance: for any text the parser accepts, a distance in
// the tree implies the filter says yes.
func FuzzMayHaveDistance(f *testing.F) {
	f.Add("SELECT id FROM documents ORDER BY embedding <-> '[1,2,3]' LIMIT 5")
	f.Add(`SELECT U&"l2\005fdistance"(a, b)`)
	f.Add("SELECT cosine_DISTANCE(a, b)")
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 4096 {
			return
		}
		if treeHasDistance(t, sql) && !mayHaveDistance(sql) {
			t.Fatalf("filter misses a distance in %q", sql)
		}
	})
}

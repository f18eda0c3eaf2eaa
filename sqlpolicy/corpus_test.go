package sqlpolicy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/analysis"
)

type corpusCase struct {
	line int
	want [][]Action // per statement: the actions it requires
	sql  string
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "policy", "corpus.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, sql, ok := strings.Cut(line, "|")
		if !ok {
			t.Fatalf("corpus line %d: no '|'", n)
		}
		c := corpusCase{line: n, sql: strings.TrimSpace(sql)}
		if head = strings.TrimSpace(head); head != "none" {
			for _, part := range strings.Split(head, ",") {
				var acts []Action
				for _, a := range strings.Split(part, "+") {
					act, ok := ParseAction(strings.TrimSpace(a))
					if !ok {
						t.Fatalf("corpus line %d: unknown action %q", n, a)
					}
					acts = append(acts, act)
				}
				c.want = append(c.want, acts)
			}
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// corpusFunctions is the demo database's catalog as the corpus assumes
// it: PostgreSQL 15 and pgvector as shipped, plus user-defined functions
// (see the corpus header).
func corpusFunctions() *analysis.Functions {
	funcs := append([]analysis.Func(nil), analysis.Builtin()...)
	funcs = append(funcs,
		analysis.Func{OID: 30001, Schema: "public", Name: "purge_note", Volatility: 'v', SecDef: true, Language: "sql", Kind: 'f'},
		analysis.Func{OID: 30002, Schema: "myschema", Name: "my_function", Volatility: 's', Language: "sql", Kind: 'f'},
		analysis.Func{OID: 30003, Schema: "public", Name: "slugify", Volatility: 'i', Language: "sql", Kind: 'f'},
		analysis.Func{OID: 30004, Schema: "public", Name: "bump_counter", Volatility: 'v', Language: "plpgsql", Kind: 'f'},
		analysis.Func{OID: 30005, Schema: "public", Name: "note_stats", Volatility: 's', Language: "plpgsql", Kind: 'f'},
		analysis.Func{OID: 30006, Schema: "public", Name: "owner_lookup", Volatility: 's', SecDef: true, Language: "sql", Kind: 'f'},
	)
	return analysis.NewFunctions(funcs, analysis.Options{Allow: []string{"public.slugify", "bump_counter"}}, "corpus")
}

// TestCorpus classifies every statement of testdata/policy/corpus.txt and
// checks the action (and, for statements needing several, all of them).
func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 150 {
		t.Fatalf("corpus has %d cases, want at least 150", len(cases))
	}
	c := NewClassifier(1024)
	fs := corpusFunctions()
	for _, tc := range cases {
		t.Run(tc.sql, func(t *testing.T) {
			for round := 0; round < 2; round++ { // cold, then cached
				a, err := c.ClassifyWith(tc.sql, fs)
				if len(a.Statements) != len(tc.want) {
					t.Fatalf("line %d: %d statements %+v (err %v), want %d", tc.line, len(a.Statements), a.Statements, err, len(tc.want))
				}
				for i, st := range a.Statements {
					want := setOf(tc.want[i]...)
					if got := setOf(st.Requires...); got != want || st.Action != want.strongest() {
						t.Errorf("line %d statement %d: action %s requires %v (reason %q), want %v",
							tc.line, i, st.Action, st.Requires, st.Reason, want.list())
					}
					if st.Reason == "" {
						t.Errorf("line %d statement %d: empty reason", tc.line, i)
					}
				}
				if err != nil && (len(a.Statements) != 1 || a.Statements[0].Action != ActionAdmin) {
					t.Errorf("line %d: parse error %v but not a single admin statement", tc.line, err)
				}
			}
		})
	}
}

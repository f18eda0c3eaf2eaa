package sqlpolicy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/analysis/shapetest"
)

func knnLiteral(seed int) string {
	return "SELECT id FROM documents ORDER BY embedding <-> " + knnVector(384, seed) + " LIMIT 10"
}

func TestClassifierShape(t *testing.T) {
	c := NewClassifier(64)
	first, err := c.Classify(knnLiteral(1))
	if err != nil || first.Statements[0].Action != ActionSearch {
		t.Fatalf("cold: %+v %v", first, err)
	}
	for i := 2; i < 6; i++ {
		sql := knnLiteral(i)
		a, err := c.Classify(sql)
		if err != nil {
			t.Fatal(err)
		}
		if a == first || a.Statements[0].SQL != sql || a.Statements[0].Action != ActionSearch {
			t.Fatalf("shape hit %d: %q %s", i, a.Statements[0].SQL[:60], a.Statements[0].Action)
		}
	}
	if n := c.Len(); n != 1 {
		t.Fatalf("shape hits went into the exact level: %d entries", n)
	}

	// statement texts move with constants of other lengths
	c.Classify("SELECT 1; DELETE FROM t WHERE id = 'a'; SELECT $$x$$ ; ")
	a, err := c.Classify("SELECT 123456; DELETE FROM t WHERE id = 'abc''def'; SELECT $$yyyyyy$$ ; ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"SELECT 123456", "DELETE FROM t WHERE id = 'abc''def'", "SELECT $$yyyyyy$$"}
	for i, st := range a.Statements {
		if st.SQL != want[i] {
			t.Fatalf("statement %d: %q, want %q", i, st.SQL, want[i])
		}
	}
	if a.Statements[1].Action != ActionDelete || !a.Statements[1].NeedsEstimate {
		t.Fatalf("DELETE: %+v", a.Statements[1])
	}

	// a batch INSERT longer than the exact level takes is served by shape
	batch := func(seed int) string {
		var b strings.Builder
		b.WriteString("INSERT INTO ingest (title, embedding) VALUES ")
		for i := 0; i < 20; i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("('batch " + strings.Repeat("x", seed) + "', " + knnVector(384, seed+i) + ")")
		}
		return b.String()
	}
	c2 := NewClassifier(64)
	if long := batch(1); len(long) <= MaxCachedSQL {
		t.Fatalf("batch is only %d bytes", len(long))
	}
	c2.Classify(batch(1))
	b2, err := c2.Classify(batch(7))
	if err != nil || b2.Statements[0].SQL != batch(7) || b2.Statements[0].Action != ActionInsert || c2.Len() != 0 {
		t.Fatalf("long batch: %v %s, exact level %d", err, b2.Statements[0].Action, c2.Len())
	}
	if n := c2.shapeLen(); n != 1 {
		t.Fatalf("shape level holds %d entries", n)
	}
}

// A decision that looked at a constant is not reused for another value.
func TestClassifierShapeConstSensitive(t *testing.T) {
	pairs := []struct{ cached, next string }{
		{"SELECT set_config('search_path', 'public', false)", "SELECT set_config('role', 'public', false)"},
		{"SELECT query_to_xml('SELECT 1', true, false, '')", "SELECT query_to_xml('DELETE FROM t', true, false, '')"},
		{"EXPLAIN (ANALYZE false) DELETE FROM t WHERE id = 1", "EXPLAIN (ANALYZE true) DELETE FROM t WHERE id = 1"},
		{"SET standard_conforming_strings = 'on'", "SET standard_conforming_strings = 'off'"},
		{"SELECT * FROM query_to_xml('SELECT 1', true, false, '')", "SELECT * FROM query_to_xml('DROP TABLE t', true, false, '')"},
	}
	for _, p := range pairs {
		c := NewClassifier(64)
		if _, err := c.Classify(p.cached); err != nil {
			t.Fatal(err)
		}
		got, _ := c.Classify(p.next)
		want, _ := ClassifyWith(p.next, nil)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s after %s: %+v, want %+v", p.next, p.cached, got.Statements[0], want.Statements[0])
		}
		if got.Statements[0].Action == mustClassify(t, p.cached).Statements[0].Action {
			t.Errorf("%s: the pair no longer differs (%s); pick another", p.next, got.Statements[0].Action)
		}
	}
}

func mustClassify(t *testing.T, sql string) *Analysis {
	t.Helper()
	a, err := ClassifyWith(sql, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// FuzzClassifierShape: whenever a text shares a cached text's shape, the
// Classifier's answer (a shape hit or not) equals a cold classification
// of that text, statement texts, reasons and all.
func FuzzClassifierShape(f *testing.F) {
	for _, s := range []string{
		knnLiteral(1),
		"SELECT abalance FROM pgbench_accounts WHERE aid = 48213",
		"INSERT INTO documents (title, body, metadata) VALUES ('a', 'b', '{\"k\": 1}'), ('c', E'd\\n', '{}')",
		"SELECT 1; DELETE FROM t WHERE id = 'a'; SELECT $$x$$",
		"SELECT set_config('search_path', 'x', false)",
		"SELECT query_to_xml('SELECT 1', true, false, '')",
		"EXPLAIN (ANALYZE off) DELETE FROM t WHERE id = 1",
		"SET search_path = 'public'",
		"SET standard_conforming_strings = 'on'",
		"WITH x AS (SELECT 1.5 AS v) SELECT v FROM x WHERE v > B'101'::int",
		"DO $$BEGIN PERFORM 1; END$$",
		"CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql",
		"SELECT * FROM t WHERE name = 'x' /* 'not a constant' */ AND id = -5 -- 'nor this'",
		"FETCH 5 FROM c",
		"SELECT interval '1 day', X'ff', 12345678901, 1e10, $a$b$a$",
		"PREPARE p AS SELECT * FROM t WHERE id = 1",
		"SELECT pg_read_file('/etc/passwd')",
		"SELECT nextval('seq'), 'pg_class'::regclass",
		"COPY t TO STDOUT WITH (FORMAT 'csv')",
	} {
		f.Add(s, uint64(7))
	}
	f.Fuzz(func(t *testing.T, sql string, seed uint64) {
		if len(sql) > 4096 {
			return
		}
		next, ok := shapetest.Revalue(sql, seed)
		if !ok {
			return
		}
		c := NewClassifier(64)
		c.Classify(sql)
		got, gerr := c.Classify(next)
		want, werr := ClassifyWith(next, nil)
		if (gerr == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("shape of %q reused for %q:\n got %+v (%v)\nwant %+v (%v)", sql, next, got, gerr, want, werr)
		}
	})
}

// TestConstReadsAreMarked: the shape cache's promise rests on every read
// of a constant's value setting the marker first. In sqlpolicy and
// masking, an A_Const's value (x.AConst, GetAConst, the A_Const_* cases)
// and the bare value messages a generic walk can reach inside one
// (pg.String, pg.Integer, ...; not the Node_* wrappers identifiers use)
// may only be named inside a function whose first statement marks the
// classification as constant-dependent (readsConst).
func TestConstReadsAreMarked(t *testing.T) {
	banned := map[string]bool{
		"AConst": true, "GetAConst": true,
		"A_Const_Sval": true, "A_Const_Ival": true, "A_Const_Fval": true, "A_Const_Boolval": true, "A_Const_Bsval": true,
		"String": true, "Integer": true, "Float": true, "Boolean": true, "BitString": true,
	}
	checked := 0
	for _, dir := range []string{".", "../masking"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for _, d := range file.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				marks := false
				if len(fn.Body.List) > 0 {
					if es, ok := fn.Body.List[0].(*ast.ExprStmt); ok {
						if call, ok := es.X.(*ast.CallExpr); ok {
							if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "readsConst" {
								marks = true
							}
						}
					}
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					sel, ok := n.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					name := sel.Sel.Name
					if !banned[name] {
						return true
					}
					// pg.String etc. are types only when qualified by the package;
					// x.String() methods and other packages' names are not reads.
					if x, ok := sel.X.(*ast.Ident); (!ok || x.Name != "pg") && (name == "String" || name == "Integer" || name == "Float" || name == "Boolean" || name == "BitString") {
						return true
					}
					if !marks {
						t.Errorf("%s: %s reads a constant (%s) without marking it (call readsConst first)", fset.Position(sel.Pos()), fn.Name.Name, name)
					}
					return true
				})
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files", checked)
	}
}

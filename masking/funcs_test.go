package masking

import (
	"context"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/analysis"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// userFuncs is the built-in snapshot plus user-defined functions: leak()
// (STABLE, opaque), vouched() (STABLE, allowed), bump(text) (VOLATILE,
// allowed: it writes).
func userFuncs(t *testing.T) *analysis.Functions {
	t.Helper()
	funcs := append(analysis.Builtin(),
		analysis.Func{OID: 90001, Schema: "public", Name: "leak", Volatility: 's', Language: "sql", Kind: 'f', Args: "integer"},
		analysis.Func{OID: 90002, Schema: "public", Name: "vouched", Volatility: 's', Language: "sql", Kind: 'f', Args: "text"},
		analysis.Func{OID: 90003, Schema: "public", Name: "bump", Volatility: 'v', Language: "sql", Kind: 'f', Args: "text"},
		analysis.Func{OID: 90004, Schema: "public", Name: "proc", Volatility: 'v', Language: "plpgsql", Kind: 'p', Args: "text"},
	)
	return analysis.NewFunctions(funcs, analysis.Options{Allow: []string{"vouched", "public.bump"}}, "test")
}

// TestClosedWorldRefusals: every exit the closed world knows is refused
// for a group without unmask, naming the function, and allowed with unmask.
func TestClosedWorldRefusals(t *testing.T) {
	e := testEngine(t, nil)
	fs := userFuncs(t)
	refused := map[string]string{
		// relations, schemas, the database by name
		`SELECT table_to_xml('customers', true, false, '')`:                                                             "table_to_xml",
		`SELECT table_to_xml('public.customers'::regclass, true, false, '')`:                                            "table_to_xml",
		`SELECT table_to_xml_and_xmlschema('"customers"', true, false, '')`:                                             "table_to_xml_and_xmlschema",
		`SELECT table_to_xml('documents', true, false, '')`:                                                             "metadata",
		`SELECT table_to_xml(16400::regclass, true, false, '')`:                                                         "table_to_xml",
		`SELECT table_to_xml(relname::regclass, true, false, '') FROM pg_class`:                                         "computed",
		`SELECT schema_to_xml('public', true, false, '')`:                                                               "schema_to_xml",
		`SELECT schema_to_xmlschema('public', true, false, '')`:                                                         "schema_to_xmlschema",
		`SELECT database_to_xml(true, false, '')`:                                                                       "database_to_xml",
		`SELECT x FROM database_to_xml_and_xmlschema(true, false, '') x`:                                                "database_to_xml_and_xmlschema",
		`SELECT cursor_to_xml('c', 3, false, true, '')`:                                                                 "cursor_to_xml",
		`SELECT query_to_xml('SELECT email, ssn FROM customers', true, false, '')`:                                      "query_to_xml",
		`SELECT query_to_xml('SELECT query_to_xml(''SELECT ssn FROM customers'', true, false, '''')', true, false, '')`: "query_to_xml",
		`SELECT query_to_xml('SELECT id FROM customers WHERE ssn LIKE ''1%''', true, false, '')`:                        "ssn",
		`SELECT query_to_xml($1, true, false, '')`:                                                                      "computed",
		`SELECT * FROM ts_stat('SELECT to_tsvector(notes || name) FROM customers')`:                                     "ts_stat",
		`SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM customers', 'a')`:                                         "ts_stat",
		`SELECT ts_rewrite('a & b'::tsquery, 'SELECT name::tsquery, ''x''::tsquery FROM customers')`:                    "ts_rewrite",
		// planner statistics
		`SELECT most_common_vals FROM pg_stats WHERE tablename = 'customers'`: "pg_stats",
		`SELECT * FROM pg_catalog.pg_statistic`:                               "pg_statistic",
		// masked values into functions that write state
		`SELECT set_config('application_name', email, false) FROM customers LIMIT 1`:               "set_config",
		`SELECT set_config('application_name', metadata->>'author', false) FROM documents LIMIT 1`: "set_config",
		`SELECT set_config('x.y', md5(ssn), false) FROM customers`:                                 "set_config",
		`SELECT pg_notify('c', upper(name)) FROM customers`:                                        "pg_notify",
		`SELECT pg_advisory_lock(hashtext(ssn)) FROM customers`:                                    "pg_advisory_lock",
		`SELECT setval('s', length(ssn)) FROM customers`:                                           "setval",
		`SELECT pg_sleep(length(email)) FROM customers`:                                            "pg_sleep",
		`SELECT bump(email) FROM customers`:                                                        "bump",
		`SELECT 1 FROM customers WHERE pg_notify('c', email) IS NULL`:                              "pg_notify",
		`WITH x AS (SELECT email FROM customers) SELECT set_config('a.b', email, false) FROM x`:    "set_config",
		// opaque and unknown functions
		`SELECT leak(1)`:             "leak",
		`SELECT md5(leak(1))`:        "leak",
		`SELECT * FROM leak(1)`:      "leak",
		`SELECT no_such_function(1)`: "no_such_function",
		`CALL proc('x')`:             "proc",
		`SELECT query_to_xml('SELECT leak(1)', true, false, '')`: "leak",
	}
	for q, want := range refused {
		perr := e.Check(context.Background(), &Query{SQL: q, Stmt: -1, Funcs: fs}, false)
		if perr == nil {
			t.Errorf("%s: not refused", q)
			continue
		}
		if perr.Code != pgerr.InsufficientPrivilege || !strings.HasPrefix(perr.Message, "pgwarden: ") || !strings.Contains(perr.Message, want) {
			t.Errorf("%s: %s %q, want 42501 naming %q", q, perr.Code, perr.Message, want)
		}
		if perr := e.Check(context.Background(), &Query{SQL: q, Stmt: -1, Funcs: fs}, true); perr != nil {
			t.Errorf("%s: refused with unmask: %s", q, perr.Message)
		}
	}
	allowed := []string{
		`SELECT table_to_xml('orders', true, false, '')`,
		`SELECT query_to_xml('SELECT id, note FROM orders', true, false, '')`,
		`SELECT query_to_xml('SELECT count(*) FROM customers', true, false, '')`,
		`SELECT * FROM ts_stat('SELECT to_tsvector(note) FROM orders')`,
		`SELECT ts_rewrite('a & b'::tsquery, 'a'::tsquery, 'c'::tsquery)`,
		`SELECT current_setting('application_name')`,
		`SELECT set_config('application_name', 'etl', false)`,
		`SELECT set_config('application_name', note, false) FROM orders`,
		`SELECT pg_notify('c', id::text) FROM customers`,
		`SELECT pg_advisory_lock(id) FROM customers`,
		`SELECT vouched(email) FROM customers`,
		`SELECT bump('x')`,
		`SELECT email, md5(name) FROM customers`,
		`SELECT id FROM documents ORDER BY embedding <-> '[1,2,3]' LIMIT 5`,
		`SELECT l2_distance(embedding, '[1,2,3]') FROM documents`,
		`SELECT count(email) FROM customers`,
		`SELECT now(), random()`,
		`SELECT * FROM pg_settings WHERE name = 'application_name'`,
	}
	for _, q := range allowed {
		if perr := e.Check(context.Background(), &Query{SQL: q, Stmt: -1, Funcs: fs}, false); perr != nil {
			t.Errorf("%s: refused: %s", q, perr.Message)
		}
	}
}

// TestClosedWorldNoRules: without masking rules nothing is refused (there
// is nothing to protect).
func TestClosedWorldNoRules(t *testing.T) {
	e, err := New(testConfig(), testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if perr := e.Check(context.Background(), &Query{SQL: `SELECT table_to_xml('customers', true, false, '')`, Stmt: -1}, false); perr == nil {
		t.Fatal("with rules: table_to_xml not refused")
	}
	cfg := testConfig()
	cfg.Rules = nil
	cfg.Detectors = nil
	e, err = New(cfg, testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if e.anyRules {
		t.Skip("built-in rules are always on")
	}
	if perr := e.Check(context.Background(), &Query{SQL: `SELECT table_to_xml('customers', true, false, '')`, Stmt: -1}, false); perr != nil {
		t.Fatalf("no rules: refused: %s", perr.Message)
	}
}

// TestViewFunctionMasked: inside a view (its owner's rights) an opaque
// function is not refused, its column is masked as derived.
func TestViewFunctionMasked(t *testing.T) {
	cat := testCatalog()
	cat.views["v_x"] = []string{"SELECT orders.id, query_to_xml('SELECT ssn FROM customers', true, false, '') AS x FROM orders"}
	e, err := New(testConfig(), cat)
	if err != nil {
		t.Fatal(err)
	}
	q := &Query{SQL: "SELECT id, x FROM v_x", Stmt: -1}
	if perr := e.Check(context.Background(), q, false); perr != nil {
		t.Fatalf("refused: %s", perr.Message)
	}
	tr := e.trace(context.Background(), q)
	if got := tr.fieldTaint(q, 1, 2, []byte("x")); got.lvl != lvlFull {
		t.Fatalf("x: taint %v, want full", got)
	}
	if got := tr.fieldTaint(q, 0, 2, []byte("id")); got.lvl != lvlClean {
		t.Fatalf("id: taint %v, want clean", got)
	}
}

// TestRecursiveRotation: a recursive CTE moves a value one column per
// step; the trace runs to a fixed point, so every column it reaches is
// masked (two fixed passes missed the third column).
func TestRecursiveRotation(t *testing.T) {
	e := testEngine(t, nil)
	q := &Query{SQL: `WITH RECURSIVE r(n, a, b, c, d) AS (
		SELECT 1, email, '', '', '' FROM customers
		UNION ALL SELECT n + 1, d, a, b, c FROM r WHERE n < 5)
		SELECT a, b, c, d FROM r`, Stmt: -1}
	tr := e.trace(context.Background(), q)
	for i, c := range []string{"a", "b", "c", "d"} {
		if got := tr.fieldTaint(q, i, 4, []byte(c)); got.lvl != lvlFull {
			t.Errorf("column %s: taint %v, want full", c, got)
		}
	}
	clean := &Query{SQL: `WITH RECURSIVE r(n, a) AS (SELECT 1, 'x' UNION ALL SELECT n + 1, a FROM r WHERE n < 5) SELECT n, a FROM r`, Stmt: -1}
	tr = e.trace(context.Background(), clean)
	if got := tr.fieldTaint(clean, 1, 2, []byte("a")); got.lvl != lvlClean {
		t.Errorf("clean recursion: taint %v", got)
	}
}

// TestReadsMasked: the statements whose errors are withheld.
func TestReadsMasked(t *testing.T) {
	e := testEngine(t, nil)
	for q, want := range map[string]bool{
		`SELECT email::regclass FROM customers`:                 true,
		`SELECT id FROM customers WHERE ssn::int > 0`:           true,
		`SELECT * FROM customers`:                               true,
		`SELECT (metadata->>'email')::int FROM documents`:       true,
		`SELECT id, note::int FROM orders`:                      false,
		`SELECT 1/0`:                                            false,
		`SELECT id FROM customers`:                              false,
		`EXECUTE p`:                                             true,
		`not sql at all`:                                        true,
		`SELECT id FROM documents ORDER BY embedding <-> '[1]'`: true,
	} {
		if got := e.ReadsMasked(context.Background(), &Query{SQL: q, Stmt: -1}); got != want {
			t.Errorf("%s: ReadsMasked %v, want %v", q, got, want)
		}
	}
}

func TestParseQualName(t *testing.T) {
	for in, want := range map[string][2]string{
		"customers":            {"", "customers"},
		"Public.Customers":     {"public", "customers"},
		`"MySchema"."My""T"`:   {"MySchema", `My"T`},
		" public . customers ": {"public", "customers"},
		"db.public.customers":  {"public", "customers"},
	} {
		s, r, ok := parseQualName(in)
		if !ok || s != want[0] || r != want[1] {
			t.Errorf("%q: %q %q %v, want %q", in, s, r, ok, want)
		}
	}
	for _, in := range []string{"", `"unterminated`, "a.", "a b", "a.b.c.d", `"a"x`} {
		if _, _, ok := parseQualName(in); ok {
			t.Errorf("%q: accepted", in)
		}
	}
}

package sqlpolicy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// specPolicy is the policy section of the SPEC example configuration.
func specPolicy() config.Policy {
	p := config.Default().Policy
	p.Roles = map[string]config.Role{
		"analyst": {Actions: []string{"search", "read"}, DBRole: "vector_reader"},
		"ingest":  {Actions: []string{"search", "read", "insert", "update", "delete"}, DBRole: "vector_writer"},
		"dba":     {Actions: []string{"all"}, DBRole: "vector_admin", Unmask: true},
	}
	p.Approval.Approvers = []string{"dba"}
	return p
}

func stmt(t *testing.T, sql string) Statement {
	t.Helper()
	a, err := Classify(sql)
	if err != nil || len(a.Statements) != 1 {
		t.Fatalf("classify %q: %v %+v", sql, err, a)
	}
	return a.Statements[0]
}

func TestPolicyDecide(t *testing.T) {
	p := NewPolicy(specPolicy())
	cases := []struct {
		groups   []string
		sql      string
		allowed  bool
		approval bool
		action   Action
	}{
		{[]string{"analyst"}, "SELECT id FROM documents ORDER BY embedding <-> '[1,2,3]' LIMIT 5", true, false, ActionSearch},
		{[]string{"analyst"}, "SELECT * FROM documents", true, false, ActionRead},
		{[]string{"analyst"}, "BEGIN", true, false, ActionSession},
		{[]string{"analyst"}, "SET hnsw.ef_search = 100", true, false, ActionSession},
		{[]string{"analyst"}, "INSERT INTO documents (title) VALUES ('x')", false, false, ActionInsert},
		{[]string{"analyst"}, "WITH d AS (DELETE FROM documents WHERE id = 1 RETURNING *) SELECT * FROM d", false, false, ActionDelete},
		{[]string{"analyst"}, "EXPLAIN ANALYZE DELETE FROM documents", false, false, ActionBulkDelete},
		{[]string{"analyst"}, "SELECT set_config('role', 'postgres', false)", false, false, ActionAdmin},
		{[]string{"analyst"}, "COPY documents TO STDOUT", false, false, ActionExport},
		{[]string{"ingest"}, "COPY documents FROM STDIN", true, false, ActionInsert},
		{[]string{"ingest"}, "INSERT INTO documents (title) VALUES ('x')", true, false, ActionInsert},
		{[]string{"ingest"}, "DELETE FROM documents WHERE id = 1", true, false, ActionDelete},
		{[]string{"ingest"}, "DELETE FROM documents", false, false, ActionBulkDelete},
		{[]string{"ingest"}, "TRUNCATE documents", false, false, ActionTruncate},
		{[]string{"ingest"}, "DROP TABLE documents", false, false, ActionDrop},
		{[]string{"ingest"}, "CREATE INDEX ON documents USING hnsw (embedding vector_l2_ops)", false, false, ActionIndex},
		{[]string{"ingest"}, "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)", true, false, ActionDelete},
		{[]string{"dba"}, "SELECT 1", true, false, ActionRead},
		{[]string{"dba"}, "CREATE TABLE t (id int)", true, false, ActionDDL},
		{[]string{"dba"}, "TRUNCATE documents", true, true, ActionTruncate},
		{[]string{"dba"}, "DROP TABLE documents", true, true, ActionDrop},
		{[]string{"dba"}, "VACUUM", true, true, ActionAdmin},
		{[]string{"dba"}, "DELETE FROM documents", true, true, ActionBulkDelete},
		{[]string{"analyst", "ingest"}, "INSERT INTO documents (title) VALUES ('x')", true, false, ActionInsert},
		{[]string{"unknown-group"}, "SELECT 1", false, false, ActionRead},
		{nil, "COMMIT", true, false, ActionSession},
		{nil, "SELECT 1", false, false, ActionRead},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.groups, "+")+"/"+tc.sql, func(t *testing.T) {
			d := p.Decide(tc.groups, stmt(t, tc.sql))
			if d.Allowed != tc.allowed || d.NeedsApproval != tc.approval || d.Action != tc.action {
				t.Fatalf("got allowed=%v approval=%v action=%s, want %v %v %s", d.Allowed, d.NeedsApproval, d.Action, tc.allowed, tc.approval, tc.action)
			}
			if d.Allowed != (d.Err == nil) {
				t.Fatalf("Err %v with Allowed %v", d.Err, d.Allowed)
			}
			if d.Err != nil {
				if d.Err.Code != pgerr.InsufficientPrivilege || d.Err.Severity != pgerr.SeverityError {
					t.Fatalf("err %+v", d.Err)
				}
				want := "pgwarden: action " + string(tc.action) + " not allowed for groups [" + strings.Join(tc.groups, " ") + "]: "
				if !strings.HasPrefix(d.Err.Message, want) {
					t.Fatalf("message %q, want prefix %q", d.Err.Message, want)
				}
			}
		})
	}
}

func TestDenialMessageHidesConstants(t *testing.T) {
	p := NewPolicy(specPolicy())
	for _, sql := range []string{
		"ALTER ROLE bob PASSWORD 'hunter2'",
		"CREATE USER MAPPING FOR bob SERVER s OPTIONS (password 'hunter2')",
		"SELECT dblink_connect('host=x password=hunter2')",
		"CREATE ROLE bob LOGIN PASSWORD 'hunter2'",
	} {
		d := p.Decide([]string{"analyst"}, stmt(t, sql))
		if d.Allowed || d.Err == nil {
			t.Fatalf("%s: allowed", sql)
		}
		if strings.Contains(d.Err.Message, "hunter2") || strings.Contains(d.Err.Detail, "hunter2") || strings.Contains(d.Err.Error(), "hunter2") {
			t.Fatalf("secret in message: %q / %q", d.Err.Message, d.Err.Detail)
		}
	}
	d := p.Decide([]string{"analyst"}, stmt(t, "DELETE FROM documents WHERE id = 42"))
	if want := "pgwarden: action delete not allowed for groups [analyst]: DELETE FROM documents WHERE id = $1"; d.Err.Message != want {
		t.Fatalf("message %q, want %q", d.Err.Message, want)
	}
	long := "SELECT * FROM documents WHERE title IN (" + strings.Repeat("'é', ", 200) + "'x') FOR UPDATE"
	d = p.Decide([]string{"analyst"}, stmt(t, long))
	if len(d.Err.Message) > 300 || !strings.HasSuffix(d.Err.Message, "…") {
		t.Fatalf("long statement not truncated: %d %q", len(d.Err.Message), d.Err.Message)
	}
}

func TestDecideAll(t *testing.T) {
	p := NewPolicy(specPolicy())
	a, _ := Classify("SELECT 1; DELETE FROM documents WHERE id = 1; DROP TABLE documents")
	d := p.DecideAll([]string{"analyst"}, a.Statements)
	if d.Allowed || d.Statement != 1 || d.Action != ActionDelete || !strings.Contains(d.Err.Message, "DELETE FROM documents") {
		t.Fatalf("%+v", d)
	}
	if len(d.Actions) != 3 || d.Actions[2] != ActionDrop {
		t.Fatalf("actions %v", d.Actions)
	}
	d = p.DecideAll([]string{"dba"}, a.Statements)
	if !d.Allowed || !d.NeedsApproval || d.Action != ActionDrop || d.Statement != 2 {
		t.Fatalf("%+v", d)
	}
	d = p.DecideAll([]string{"ingest"}, a.Statements[:2])
	if !d.Allowed || d.NeedsApproval || d.Action != ActionDelete {
		t.Fatalf("%+v", d)
	}
	if d := p.DecideAll(nil, nil); !d.Allowed || d.Action != ActionSession {
		t.Fatalf("empty: %+v", d)
	}
}

type fakeEstimator struct {
	rows  float64
	err   error
	calls int
	sql   string
	args  []string
}

func (f *fakeEstimator) EstimateRows(_ context.Context, sql string, params []string) (float64, error) {
	f.calls++
	f.sql, f.args = sql, params
	return f.rows, f.err
}

func TestRefineAndEvaluate(t *testing.T) {
	p := NewPolicy(specPolicy()) // bulk_rows 1000
	ctx := context.Background()
	del := stmt(t, "DELETE FROM documents WHERE id < $1")

	f := &fakeEstimator{rows: 1001}
	if a, err := p.Refine(ctx, del, []string{"5000"}, f); a != ActionBulkDelete || err != nil || f.sql != del.SQL || f.args[0] != "5000" {
		t.Fatalf("refine big: %s %v %+v", a, err, f)
	}
	f = &fakeEstimator{rows: 1000}
	if a, _ := p.Refine(ctx, del, nil, f); a != ActionDelete {
		t.Fatalf("refine at limit: %s", a)
	}
	f = &fakeEstimator{err: errors.New("boom")}
	if a, err := p.Refine(ctx, del, nil, f); a != ActionBulkDelete || err == nil {
		t.Fatalf("refine error must fail closed: %s %v", a, err)
	}
	if a, err := p.Refine(ctx, del, nil, nil); a != ActionBulkDelete || err == nil {
		t.Fatalf("no estimator must fail closed: %s %v", a, err)
	}

	// ingest may delete but not bulk_delete: the estimate decides.
	f = &fakeEstimator{rows: 5000}
	d := p.Evaluate(ctx, []string{"ingest"}, []Statement{del}, []string{"1"}, f)
	if d.Allowed || d.Action != ActionBulkDelete || f.calls != 1 || d.EstimateRows != 5000 {
		t.Fatalf("ingest big: %+v calls %d", d, f.calls)
	}
	f = &fakeEstimator{rows: 3}
	d = p.Evaluate(ctx, []string{"ingest"}, []Statement{del}, nil, f)
	if !d.Allowed || d.NeedsApproval || d.Action != ActionDelete || d.EstimateRows != 3 {
		t.Fatalf("ingest small: %+v", d)
	}
	// dba: bulk_delete needs approval, delete does not.
	f = &fakeEstimator{rows: 5000}
	d = p.Evaluate(ctx, []string{"dba"}, []Statement{del}, nil, f)
	if !d.Allowed || !d.NeedsApproval || d.Action != ActionBulkDelete {
		t.Fatalf("dba big: %+v", d)
	}
	// analyst: denied either way, so the planner is not asked.
	f = &fakeEstimator{rows: 1}
	d = p.Evaluate(ctx, []string{"analyst"}, []Statement{del}, nil, f)
	if d.Allowed || f.calls != 0 || d.EstimateRows != -1 {
		t.Fatalf("analyst: %+v calls %d", d, f.calls)
	}
	// the caller's statements are not modified
	if del.Action != ActionDelete || !del.NeedsEstimate {
		t.Fatalf("input modified: %+v", del)
	}
}

func TestUnmaskAndDBRoles(t *testing.T) {
	p := NewPolicy(specPolicy())
	if p.Unmask([]string{"analyst", "ingest"}) || !p.Unmask([]string{"analyst", "dba"}) || p.Unmask(nil) {
		t.Fatal("unmask")
	}
	got := p.DBRoles([]string{"ingest", "analyst", "nobody", "ingest"})
	if strings.Join(got, ",") != "vector_reader,vector_writer" {
		t.Fatalf("db roles %v", got)
	}
	if len(p.DBRoles(nil)) != 0 {
		t.Fatal("no groups")
	}
}

func TestParseExplainRows(t *testing.T) {
	cases := []struct {
		json string
		rows float64
		ok   bool
	}{
		{`[{"Plan":{"Node Type":"ModifyTable","Operation":"Delete","Plan Rows":0,"Plans":[{"Node Type":"Seq Scan","Parent Relationship":"Outer","Plan Rows":4500}]}}]`, 4500, true},
		{`[{"Plan":{"Node Type":"ModifyTable","Plan Rows":12,"Plans":[{"Node Type":"Index Scan","Parent Relationship":"Outer","Plan Rows":1}]}}]`, 12, true},
		{`[{"Plan":{"Node Type":"Aggregate","Plan Rows":1,"Plans":[{"Node Type":"CTE Scan","Plan Rows":1000},{"Node Type":"ModifyTable","Parent Relationship":"InitPlan","Plan Rows":0,"Plans":[{"Node Type":"Seq Scan","Parent Relationship":"Outer","Plan Rows":700}]},{"Node Type":"ModifyTable","Parent Relationship":"InitPlan","Plan Rows":0,"Plans":[{"Node Type":"Seq Scan","Parent Relationship":"Outer","Plan Rows":600}]}]}}]`, 1300, true},
		{`[{"Plan":{"Node Type":"Seq Scan","Plan Rows":10}}]`, 0, false},
		{`[]`, 0, false},
		{`not json`, 0, false},
		{`[{"Plan":{"Node Type":"ModifyTable","Plan Rows":-5}}]`, 0, false},
	}
	for _, tc := range cases {
		rows, err := ParseExplainRows([]byte(tc.json))
		if (err == nil) != tc.ok || rows != tc.rows {
			t.Errorf("%s: %v %v, want %v ok=%v", tc.json, rows, err, tc.rows, tc.ok)
		}
	}
}

func FuzzParseExplainRows(f *testing.F) {
	f.Add([]byte(`[{"Plan":{"Node Type":"ModifyTable","Plan Rows":0,"Plans":[{"Node Type":"Seq Scan","Parent Relationship":"Outer","Plan Rows":4500}]}}]`))
	f.Add([]byte(`[{"Plan":{"Node Type":"ModifyTable","Plans":[null]}}]`))
	f.Add([]byte(`[{"Plan":null}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := ParseExplainRows(data)
		if err == nil && (rows < 0 || rows != rows) {
			t.Fatalf("invalid rows %v", rows)
		}
	})
}

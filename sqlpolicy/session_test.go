package sqlpolicy

import (
	"testing"
)

func resolveOne(t *testing.T, s *Session, sql string) []Statement {
	t.Helper()
	a, err := Classify(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s.Resolve(a)
}

func TestSessionSQLPrepareExecute(t *testing.T) {
	s := NewClassifier(64).NewSession()
	// PREPARE and EXECUTE in the same string resolve before Apply.
	sts := resolveOne(t, s, "PREPARE p AS DELETE FROM documents WHERE id = $1; EXECUTE p(1)")
	if sts[0].Action != ActionDelete || sts[0].NeedsEstimate || sts[0].Prepare == nil || sts[0].Prepare.Name != "p" {
		t.Fatalf("prepare: %+v", sts[0])
	}
	if sts[1].Action != ActionDelete || !sts[1].NeedsEstimate || sts[1].SQL != "EXECUTE p(1)" {
		t.Fatalf("execute in same string: %+v", sts[1])
	}
	// Without Apply the registry does not know p.
	if st := resolveOne(t, s, "EXECUTE p(1)")[0]; st.Action != ActionAdmin {
		t.Fatalf("unapplied: %+v", st)
	}
	s.Apply(sts)
	if st := resolveOne(t, s, "EXECUTE p(1)")[0]; st.Action != ActionDelete || !st.NeedsEstimate || st.Tables[0] != "documents" {
		t.Fatalf("applied: %+v", st)
	}
	// EXPLAIN ANALYZE EXECUTE runs it; plain EXPLAIN EXECUTE does not.
	if st := resolveOne(t, s, "EXPLAIN ANALYZE EXECUTE p(1)")[0]; st.Action != ActionDelete {
		t.Fatalf("explain analyze execute: %+v", st)
	}
	if st := resolveOne(t, s, "EXPLAIN EXECUTE p(1)")[0]; st.Action != ActionRead {
		t.Fatalf("explain execute: %+v", st)
	}
	// Parameters that escape policy make the EXECUTE admin.
	s.Apply(resolveOne(t, s, "PREPARE r(text) AS SELECT $1"))
	if st := resolveOne(t, s, "EXECUTE r('a')")[0]; st.Action != ActionRead {
		t.Fatalf("execute r: %+v", st)
	}
	if st := resolveOne(t, s, "EXECUTE r(pg_read_file('/etc/passwd'))")[0]; st.Action != ActionAdmin {
		t.Fatalf("execute r with admin param: %+v", st)
	}
	// Re-preparing a name keeps the union (the server may have refused it).
	s.Apply(resolveOne(t, s, "PREPARE p AS SELECT 1"))
	if st := resolveOne(t, s, "EXECUTE p"); st[0].Action != ActionDelete {
		t.Fatalf("re-prepare must keep the stronger action: %+v", st[0])
	}
	// DEALLOCATE forgets; in the same string too.
	if st := resolveOne(t, s, "DEALLOCATE p; EXECUTE p"); st[1].Action != ActionAdmin {
		t.Fatalf("deallocate in string: %+v", st[1])
	}
	s.Apply(resolveOne(t, s, "DEALLOCATE p"))
	if _, ok := s.Lookup("p"); ok {
		t.Fatal("p still known")
	}
	if _, ok := s.Lookup("r"); !ok {
		t.Fatal("r forgotten")
	}
	s.Apply(resolveOne(t, s, "DISCARD ALL"))
	if _, ok := s.Lookup("r"); ok {
		t.Fatal("DISCARD ALL kept r")
	}
	s.Apply(resolveOne(t, s, "PREPARE q AS SELECT 1"))
	if st := resolveOne(t, s, "DEALLOCATE ALL; EXECUTE q"); st[1].Action != ActionAdmin {
		t.Fatalf("deallocate all in string: %+v", st[1])
	}
}

func TestSessionExtendedProtocol(t *testing.T) {
	s := NewSession()
	a, err := s.Parse("", "SELECT id FROM documents ORDER BY embedding <-> $1 LIMIT 5")
	if err != nil || a.Statements[0].Action != ActionSearch {
		t.Fatalf("parse: %v %+v", err, a)
	}
	if st, ok := s.Bind("", ""); !ok || st.Action != ActionSearch {
		t.Fatalf("bind unnamed: %+v", st)
	}
	// the unnamed statement is replaced by the next Parse
	s.Parse("", "DELETE FROM documents WHERE id = $1")
	if st, _ := s.Bind("", ""); st.Action != ActionDelete || !st.NeedsEstimate || st.SQL != "DELETE FROM documents WHERE id = $1" {
		t.Fatalf("rebind unnamed: %+v", st)
	}
	if st, ok := s.Portal(""); !ok || st.Action != ActionDelete {
		t.Fatalf("portal: %+v", st)
	}
	// named statements: shared with SQL EXECUTE
	s.Parse("ins", "INSERT INTO documents (title) VALUES ($1)")
	if st := resolveOne(t, s, "EXECUTE ins('x')")[0]; st.Action != ActionInsert {
		t.Fatalf("SQL EXECUTE of protocol statement: %+v", st)
	}
	s.Bind("p1", "ins")
	if st, _ := s.Portal("p1"); st.Action != ActionInsert {
		t.Fatalf("portal p1: %+v", st)
	}
	s.Close('P', "p1")
	if st, ok := s.Portal("p1"); ok || st.Action != ActionAdmin {
		t.Fatalf("closed portal: %+v", st)
	}
	s.Close('S', "ins")
	if st, ok := s.Bind("", "ins"); ok || st.Action != ActionAdmin {
		t.Fatalf("closed statement must be admin: %+v", st)
	}
	// unparseable Parse: admin, remembered as such
	if _, err := s.Parse("bad", "SELEC 1"); err == nil {
		t.Fatal("no error")
	}
	if st, _ := s.Lookup("bad"); st.Action != ActionAdmin {
		t.Fatalf("bad: %+v", st)
	}
	// cursors declared in SQL become portals
	s.Apply(resolveOne(t, s, "DECLARE c CURSOR FOR SELECT * FROM documents"))
	if st, ok := s.Portal("c"); !ok || st.Action != ActionRead {
		t.Fatalf("cursor portal: %+v", st)
	}
	s.EndTransaction()
	if _, ok := s.Portal("c"); ok {
		t.Fatal("portal survived the transaction")
	}
	// fast-path calls are classified by OID (built-in snapshot here)
	for oid, want := range map[uint32]Action{
		2311:   ActionRead,  // md5(text): pure
		2078:   ActionAdmin, // set_config: its arguments are not inspected
		2923:   ActionAdmin, // table_to_xml: reads hidden data
		2624:   ActionAdmin, // pg_read_file
		999999: ActionAdmin, // unknown OID
	} {
		if st := FunctionCall(oid, nil); st.Action != want {
			t.Errorf("FunctionCall(%d) = %s (%s), want %s", oid, st.Action, st.Reason, want)
		}
	}
}

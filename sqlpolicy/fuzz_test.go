package sqlpolicy

import "testing"

// FuzzClassify: random SQL never panics the classifier, unparseable input
// is a single admin statement, and every statement carries a known action
// that its Requires contain.
func FuzzClassify(f *testing.F) {
	for _, tc := range loadCorpus(f) {
		f.Add(tc.sql)
	}
	f.Add("SELECT query_to_xml('SELECT query_to_xml(''SELECT query_to_xml(''''DELETE FROM t'''', true, false, '''''')'', true, false, '''')', true, false, '')")
	f.Add("PREPARE p AS SELECT 1; EXECUTE p; DEALLOCATE p; EXECUTE p")
	f.Add("\x00")
	f.Fuzz(func(t *testing.T, sql string) {
		a, err := Classify(sql)
		if a == nil {
			t.Fatal("nil analysis")
		}
		if err != nil && (len(a.Statements) != 1 || a.Statements[0].Action != ActionAdmin) {
			t.Fatalf("error %v without a single admin statement: %+v", err, a.Statements)
		}
		for _, st := range a.Statements {
			if st.Action.rank() >= len(actionOrder) {
				t.Fatalf("unknown action %q", st.Action)
			}
			if !setOf(st.Requires...).has(st.Action) || setOf(st.Requires...).strongest() != st.Action {
				t.Fatalf("action %s not the strongest of %v", st.Action, st.Requires)
			}
		}
		NewSession().Resolve(a) // must not panic either
	})
}

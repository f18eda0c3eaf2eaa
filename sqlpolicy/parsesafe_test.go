package sqlpolicy

import (
	"strings"
	"testing"
)

// The bypass: with standard_conforming_strings off the server reads this
// text as a SELECT and a DELETE; pg_query (always on) as one SELECT. So the
// setting itself must not change under the policy.
const scsBypass = `SELECT 'x\''; DELETE FROM documents; --'`

func TestStandardConformingStringsRefusedForReaders(t *testing.T) {
	p := NewPolicy(specPolicy())
	if a, err := Classify(scsBypass); err != nil || len(a.Statements) != 1 || a.Statements[0].Action != ActionRead {
		t.Fatalf("pg_query no longer reads the bypass text as one SELECT: %v %+v", err, a)
	}
	for _, sql := range []string{
		"SET standard_conforming_strings = off",
		"SET LOCAL standard_conforming_strings TO false",
		"SELECT set_config('standard_conforming_strings', 'off', false)",
		"SELECT set_config('standard_conforming_strings', $1, false)",
		// ingest may update, but not through pg_settings' set_config rule.
		"UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
	} {
		d := p.Decide([]string{"analyst", "ingest"}, stmt(t, sql))
		if d.Allowed || d.Err == nil || d.Err.Code != "42501" || d.Action != ActionAdmin {
			t.Errorf("%s: allowed=%v action=%s err=%v", sql, d.Allowed, d.Action, d.Err)
			continue
		}
		if !strings.Contains(d.Err.Detail, "standard_conforming_strings") && !strings.Contains(d.Err.Detail, "pg_settings") {
			t.Errorf("%s: detail %q does not say why", sql, d.Err.Detail)
		}
	}
	for _, sql := range []string{
		"SET standard_conforming_strings = on",
		"SET standard_conforming_strings TO DEFAULT",
		"RESET standard_conforming_strings",
		"SELECT set_config('standard_conforming_strings', 'on', false)",
	} {
		if d := p.Decide([]string{"analyst"}, stmt(t, sql)); !d.Allowed {
			t.Errorf("%s: refused: %v", sql, d.Err)
		}
	}
}

func TestStartupParam(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		// What drivers send.
		{"application_name", "psql", true},
		{"client_encoding", "UTF8", true},
		{"DateStyle", "ISO, MDY", true},
		{"TimeZone", "UTC", true},
		{"extra_float_digits", "3", true},
		{"search_path", "public", true},
		{"IntervalStyle", "postgres", true},
		{"statement_timeout", "5000", true},
		{"hnsw.ef_search", "100", true},
		{"standard_conforming_strings", "on", true},
		// What the SET policy calls admin.
		{"standard_conforming_strings", "off", false},
		{"STANDARD_CONFORMING_STRINGS", "0", false},
		{"session_replication_role", "replica", false},
		{"log_statement", "none", false},
		{"local_preload_libraries", "x", false},
		{"pgaudit.log", "none", false},
		{"some_unknown_core_setting", "1", false},
	} {
		reason, ok := StartupParam(tc.name, tc.value)
		if ok != tc.ok || (!ok && reason == "") {
			t.Errorf("StartupParam(%q, %q) = %q, %v; want %v", tc.name, tc.value, reason, ok, tc.ok)
		}
	}
}

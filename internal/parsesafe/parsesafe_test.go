package parsesafe

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		// PostgreSQL's parse_bool: true values.
		{"standard_conforming_strings", "on", true},
		{"standard_conforming_strings", "ON", true},
		{"Standard_Conforming_Strings", "On", true},
		{"standard_conforming_strings", "true", true},
		{"standard_conforming_strings", "t", true},
		{"standard_conforming_strings", "TRU", true},
		{"standard_conforming_strings", "yes", true},
		{"standard_conforming_strings", "y", true},
		{"standard_conforming_strings", "1", true},
		// false, invalid, empty: refused.
		{"standard_conforming_strings", "off", false},
		{"STANDARD_CONFORMING_STRINGS", "OFF", false},
		{"standard_conforming_strings", "of", false},
		{"standard_conforming_strings", "o", false},
		{"standard_conforming_strings", "false", false},
		{"standard_conforming_strings", "f", false},
		{"standard_conforming_strings", "no", false},
		{"standard_conforming_strings", "0", false},
		{"standard_conforming_strings", "", false},
		{"standard_conforming_strings", " on", false},
		{"standard_conforming_strings", "on ", false},
		{"standard_conforming_strings", "onn", false},
		{"standard_conforming_strings", "truex", false},
		{"standard_conforming_strings", "11", false},
		// Other settings are not this package's business.
		{"escape_string_warning", "off", true},
		{"application_name", "off", true},
	} {
		reason, ok := Check(tc.name, tc.value)
		if ok != tc.ok {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.name, tc.value, ok, tc.ok)
		}
		if !ok && !strings.Contains(reason, "standard_conforming_strings") {
			t.Errorf("Check(%q, %q): reason %q does not name the setting", tc.name, tc.value, reason)
		}
		if ok && reason != "" {
			t.Errorf("Check(%q, %q): ok with reason %q", tc.name, tc.value, reason)
		}
	}
}

func TestCheckAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { Check("standard_conforming_strings", "on") }); n != 0 {
		t.Fatalf("Check allocates %v times", n)
	}
}

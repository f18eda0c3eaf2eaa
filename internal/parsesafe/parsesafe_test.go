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

func TestCheckClientEncoding(t *testing.T) {
	safe := []string{
		// every server encoding, as PostgreSQL reports it (ParameterStatus)
		"UTF8", "SQL_ASCII", "MULE_INTERNAL", "EUC_JP", "EUC_CN", "EUC_KR", "EUC_TW", "EUC_JIS_2004",
		"LATIN1", "LATIN2", "LATIN3", "LATIN4", "LATIN5", "LATIN6", "LATIN7", "LATIN8", "LATIN9", "LATIN10",
		"ISO_8859_5", "ISO_8859_6", "ISO_8859_7", "ISO_8859_8",
		"WIN866", "WIN874", "WIN1250", "WIN1251", "WIN1252", "WIN1253", "WIN1254", "WIN1255", "WIN1256",
		"WIN1257", "WIN1258", "KOI8R", "KOI8U",
		// aliases and spellings PostgreSQL accepts
		"utf8", "utf-8", "UTF_8", "unicode", "Unicode", "sql_ascii", "latin1", "ISO-8859-1", "iso8859_15",
		"ISO_8859-16", "iso-8859-5", "Windows-1252", "win_1251", "koi8", "KOI8-R", "alt", "win", "ABC", "tcvn",
		"TCVN5712", "vscii", "euc-jp", "EUC_JIS-2004", "mule_internal",
	}
	for _, v := range safe {
		if reason, ok := Check("client_encoding", v); !ok || reason != "" {
			t.Errorf("Check(client_encoding, %q) = %q, %v; want ok", v, reason, ok)
		}
		if !ASCIISafeEncoding(v) {
			t.Errorf("ASCIISafeEncoding(%q) = false", v)
		}
	}
	refused := []string{
		// the client-only encodings, canonical names
		"SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "GB18030", "JOHAB",
		// their aliases, in any spelling
		"sjis", "Shift_JIS", "SHIFT-JIS", "shiftjis", "mskanji", "MS_Kanji", "WIN932", "windows-932",
		"shift_jis_2004", "Shift-JIS-2004", "big5", "Big-5", "WIN950", "Windows950", "gbk", "WIN936",
		"windows_936", "uhc", "WIN949", "Windows-949", "gb-18030", "johab",
		// unknown, empty, or longer than NAMEDATALEN: fail closed
		"", "auto", "default", "utf16", "UTF-16", "ebcdic", "latin11", "iso88591x", "utf8 sjis",
		strings.Repeat("-", 60) + "utf8",
	}
	for _, v := range refused {
		reason, ok := Check("Client_Encoding", v)
		if ok {
			t.Errorf("Check(client_encoding, %q) ok, want refused", v)
		} else if !strings.Contains(reason, "client_encoding") {
			t.Errorf("Check(client_encoding, %q): reason %q does not name the setting", v, reason)
		}
	}
}

func TestGoverns(t *testing.T) {
	for _, name := range Settings {
		if !Governs(name) || !Governs(strings.ToUpper(name)) {
			t.Errorf("Governs(%q) = false", name)
		}
		if _, ok := Check(name, ""); ok {
			t.Errorf("Check(%q, \"\") ok: an empty value must fail closed", name)
		}
	}
	for _, name := range []string{"application_name", "search_path", "server_encoding", "names"} {
		if Governs(name) {
			t.Errorf("Governs(%q) = true", name)
		}
	}
}

func TestCheckClientEncodingAllocs(t *testing.T) {
	for _, v := range []string{"UTF8", "Shift_JIS", strings.Repeat("x", 70)} {
		if n := testing.AllocsPerRun(100, func() { Check("client_encoding", v) }); n != 0 {
			t.Fatalf("Check(client_encoding, %q) allocates %v times", v, n)
		}
	}
}

// Package parsesafe names the session settings under which pgwarden's
// parse of SQL text stops matching PostgreSQL's own.
//
// pg_query (sqlpolicy) lexes SQL as a server with
// standard_conforming_strings = on. A session that turns it off makes the
// server read backslashes in '...' literals as escapes, so the same text
// splits into different statements on each side:
//
//	SELECT 'x\''; DELETE FROM documents; --'
//
// is one SELECT of a string literal to pg_query but a SELECT and a DELETE
// to a server with standard_conforming_strings = off. Every door through
// which a session could reach such a value — SET, set_config, startup
// parameters, the value the server reports — asks this package, so the
// rule lives in one place. It has no dependencies and allocates nothing.
package parsesafe

import "strings"

// StandardConformingStrings is the setting pg_query's parse depends on.
const StandardConformingStrings = "standard_conforming_strings"

// Check reports whether a session may run with setting name (any case) at
// value without the server lexing SQL differently from pg_query; reason
// (for a client-facing message, without the value) says why not. Settings
// this package does not know about are ok.
func Check(name, value string) (reason string, ok bool) {
	if !strings.EqualFold(name, StandardConformingStrings) {
		return "", true
	}
	if BoolTrue(value) {
		return "", true
	}
	return "standard_conforming_strings must stay on: pgwarden parses SQL as the server does with it on, " +
		"and with it off backslashes in string literals would let one statement hide another", false
}

// BoolTrue reports whether PostgreSQL's parse_bool reads value as true:
// a non-empty prefix of "true" or "yes", "on", or "1", in any case, with no
// surrounding space. Anything else (false, invalid, empty) is not true.
func BoolTrue(value string) bool {
	if value == "" {
		return false
	}
	v := strings.ToLower(value)
	switch v[0] {
	case 't':
		return strings.HasPrefix("true", v)
	case 'y':
		return strings.HasPrefix("yes", v)
	case 'o':
		return v == "on"
	case '1':
		return v == "1"
	}
	return false
}

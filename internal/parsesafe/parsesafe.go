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
// to a server with standard_conforming_strings = off.
//
// pg_query also lexes the bytes it is given as they are, while PostgreSQL
// first converts a query from client_encoding to the server encoding and
// lexes the result. In SJIS, SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030 and
// JOHAB the second byte of a character may be an ASCII byte — 0x5C, a
// backslash, among them — so with client_encoding SJIS the bytes
//
//	SELECT E'<0xC3 0x81 0x5C>'; DELETE FROM documents; --'
//
// are SELECT E'<two characters>' and a DELETE to the server, but to
// pg_query the UTF-8 letter Á followed by \' (an escaped quote), so the rest
// is one string literal. client_encoding must therefore name an encoding in
// which every byte below 0x80 is the ASCII character it looks like: exactly
// PostgreSQL's server encodings.
//
// Every door through which a session could reach such a value — SET,
// set_config, startup parameters, the value the server reports — asks this
// package, so the rule lives in one place. It has no dependencies and
// allocates nothing.
package parsesafe

import "strings"

// StandardConformingStrings and ClientEncoding are the settings pg_query's
// parse depends on.
const (
	StandardConformingStrings = "standard_conforming_strings"
	ClientEncoding            = "client_encoding"
)

// Settings lists every setting Check has a rule for. PostgreSQL reports
// each of them (GUC_REPORT) at connect and whenever it changes.
var Settings = [...]string{StandardConformingStrings, ClientEncoding}

// Governs reports whether Check has a rule for setting name (any case):
// a SET or set_config of it must have a constant value that Check allows.
func Governs(name string) bool {
	return strings.EqualFold(name, StandardConformingStrings) || strings.EqualFold(name, ClientEncoding)
}

// Check reports whether a session may run with setting name (any case) at
// value without the server lexing SQL differently from pg_query; reason
// (for a client-facing message, without the value) says why not. Settings
// this package does not know about are ok.
func Check(name, value string) (reason string, ok bool) {
	switch {
	case strings.EqualFold(name, StandardConformingStrings):
		if BoolTrue(value) {
			return "", true
		}
		return "standard_conforming_strings must stay on: pgwarden parses SQL as the server does with it on, " +
			"and with it off backslashes in string literals would let one statement hide another", false
	case strings.EqualFold(name, ClientEncoding):
		if ASCIISafeEncoding(value) {
			return "", true
		}
		return "client_encoding must be an encoding whose bytes below 0x80 are always ASCII (UTF8, LATIN1-10, WIN125x, " +
			"EUC_*, ...): in SJIS, BIG5, GBK, UHC, GB18030 and JOHAB an ASCII byte such as a backslash can be half of a character, " +
			"so pgwarden's parse would not match the server's and one statement could hide another", false
	}
	return "", true
}

// asciiSafe holds PostgreSQL's encoding names and aliases (src/common/
// encnames.c, as clean_encoding_name leaves them: lower case, letters and
// digits only) of the encodings whose multibyte characters have every byte
// >= 0x80 — the server encodings (documentation table "PostgreSQL
// Character Sets", column Server? = Yes). The client-only encodings (SJIS
// and its aliases mskanji, shiftjis, win932, windows932; SHIFT_JIS_2004;
// BIG5, win950; GBK, win936; UHC, win949; GB18030; JOHAB) are missing on
// purpose, and so is anything unknown: an allowlist.
var asciiSafe = map[string]bool{
	"utf8": true, "unicode": true, "sqlascii": true, "muleinternal": true,
	"euccn": true, "eucjp": true, "eucjis2004": true, "euckr": true, "euctw": true,
	"latin1": true, "latin2": true, "latin3": true, "latin4": true, "latin5": true,
	"latin6": true, "latin7": true, "latin8": true, "latin9": true, "latin10": true,
	"iso88591": true, "iso88592": true, "iso88593": true, "iso88594": true, "iso88595": true,
	"iso88596": true, "iso88597": true, "iso88598": true, "iso88599": true, "iso885910": true,
	"iso885913": true, "iso885914": true, "iso885915": true, "iso885916": true,
	"koi8": true, "koi8r": true, "koi8u": true, "alt": true, "win866": true, "windows866": true,
	"win874": true, "windows874": true, "win": true,
	"win1250": true, "win1251": true, "win1252": true, "win1253": true, "win1254": true,
	"win1255": true, "win1256": true, "win1257": true, "win1258": true,
	"windows1250": true, "windows1251": true, "windows1252": true, "windows1253": true, "windows1254": true,
	"windows1255": true, "windows1256": true, "windows1257": true, "windows1258": true,
	"abc": true, "tcvn": true, "tcvn5712": true, "vscii": true,
}

// namedatalen is PostgreSQL's NAMEDATALEN: pg_char_to_encoding rejects a
// name this long or longer.
const namedatalen = 64

// ASCIISafeEncoding reports whether PostgreSQL would read name as an
// encoding in which every byte below 0x80 is the ASCII character it looks
// like. The name is compared as PostgreSQL does (pg_char_to_encoding):
// ASCII letters folded to lower case, everything but letters and digits
// dropped, so Shift_JIS, SHIFT-JIS and sjis are one name. Unknown and
// empty names are not safe.
func ASCIISafeEncoding(name string) bool {
	if name == "" || len(name) >= namedatalen {
		return false
	}
	var buf [namedatalen]byte
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		default:
			continue
		}
		buf[n] = c
		n++
	}
	return asciiSafe[string(buf[:n])]
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

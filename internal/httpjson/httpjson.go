// Package httpjson writes the JSON answers of pgwarden's HTTP endpoints
// (the admin listener's own routes, the approvals and sessions APIs, the live and
// verify routes, /mcp) one way: application/json, never cached (answers
// carry approvals, sessions and identities), nosniff. The APIs people read
// with curl are indented (Write); the admin listener's probes and errors
// stay on one line (Compact), as monitors match them. Recorded SQL and
// rows keep '<', '>' and '&' as they are (Verbatim): a record shows the
// pgvector operator <-> as typed, not as \u003c-\u003e.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers with status code and v as indented JSON.
func Write(w http.ResponseWriter, code int, v any) { write(w, code, v, true, true) }

// Compact answers with status code and v as one line of JSON.
func Compact(w http.ResponseWriter, code int, v any) { write(w, code, v, false, true) }

// Verbatim answers with status code and v as one line of JSON without
// HTML escaping: for recorded text, which is data and is served as
// application/json with nosniff, never rendered as HTML.
func Verbatim(w http.ResponseWriter, code int, v any) { write(w, code, v, false, false) }

// Error answers with status code and {"error": msg} (indented).
func Error(w http.ResponseWriter, code int, msg string) {
	Write(w, code, map[string]string{"error": msg})
}

func write(w http.ResponseWriter, code int, v any, indent, escapeHTML bool) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(escapeHTML)
	if indent {
		enc.SetIndent("", "  ")
	}
	_ = enc.Encode(v)
}

package httpjson

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
)

func TestError(t *testing.T) {
	rr := httptest.NewRecorder()
	Error(rr, 403, "pgwarden: no")
	h := rr.Header()
	if rr.Code != 403 || h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%d %v", rr.Code, h)
	}
	var got map[string]string
	if err := json.Unmarshal(rr.Body.Bytes(), &got); err != nil || got["error"] != "pgwarden: no" {
		t.Fatalf("body %q (%v)", rr.Body.String(), err)
	}
}

func TestCompactIsOneLine(t *testing.T) {
	rr := httptest.NewRecorder()
	Compact(rr, 503, map[string]string{"status": "unavailable"})
	if got := rr.Body.String(); got != "{\"status\":\"unavailable\"}\n" || rr.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("%q %v", got, rr.Header())
	}
}

func TestVerbatimKeepsOperators(t *testing.T) {
	rr := httptest.NewRecorder()
	Verbatim(rr, 200, map[string]string{"sql": "SELECT id FROM d ORDER BY e <-> $1 && x"})
	if got := rr.Body.String(); got != "{\"sql\":\"SELECT id FROM d ORDER BY e <-> $1 && x\"}\n" || rr.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%q %v", got, rr.Header())
	}
	rr = httptest.NewRecorder()
	Compact(rr, 200, map[string]string{"sql": "<->"})
	if got := rr.Body.String(); got != "{\"sql\":\"\\u003c-\\u003e\"}\n" {
		t.Fatalf("Compact escapes HTML: %q", got)
	}
}

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

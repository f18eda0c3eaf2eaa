package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
)

// verifyHandler serves GET /api/v1/sessions/verify: the record's hash
// chain(s) checked end to end, as the page's "verify" status and for
// monitoring. It reads the whole record, so callers ask on demand.
func (g *Gateway) verifyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var out strings.Builder
		ok, p, err := g.store.Verify(&out)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			g.log.Error().Err(err).Msg("verifying the session record failed")
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "reading the session store failed"})
			return
		}
		body := map[string]any{"ok": ok, "summary": strings.TrimSpace(out.String())}
		if p != nil {
			body["problem"] = p
		}
		_ = json.NewEncoder(w).Encode(body)
	})
}

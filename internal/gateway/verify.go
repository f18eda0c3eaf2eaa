package gateway

import (
	"net/http"
	"strings"

	"github.com/pgwarden/pgwarden/internal/httpjson"
)

// verifyHandler serves GET /api/v1/sessions/verify: the record's hash
// chain(s) checked end to end, as the page's "verify" status and for
// monitoring. It reads the whole record, so callers ask on demand.
func (g *Gateway) verifyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var out strings.Builder
		ok, p, err := g.store.Verify(&out)
		if err != nil {
			g.log.Error().Err(err).Msg("verifying the session record failed")
			httpjson.Error(w, http.StatusInternalServerError, "reading the session store failed")
			return
		}
		body := map[string]any{"ok": ok, "summary": strings.TrimSpace(out.String())}
		if p != nil {
			body["problem"] = p
		}
		httpjson.Write(w, http.StatusOK, body)
	})
}

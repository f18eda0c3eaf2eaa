package approvals

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/httpjson"
)

// maxBodyBytes bounds a decision request body.
const maxBodyBytes = 16 << 10

// decisionBody is the JSON of POST .../approve and .../deny.
type decisionBody struct {
	Comment string `json:"comment"`
	Reason  string `json:"reason"`
}

// decodeDecision parses an untrusted decision body. An empty body is an
// empty decision (approve needs no comment).
func decodeDecision(r io.Reader) (decisionBody, error) {
	var d decisionBody
	data, err := io.ReadAll(io.LimitReader(r, maxBodyBytes+1))
	if err != nil {
		return d, refuse(ErrInvalid, "cannot read request body")
	}
	if len(data) > maxBodyBytes {
		return d, refuse(ErrInvalid, "request body larger than %d bytes", maxBodyBytes)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return d, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return decisionBody{}, refuse(ErrInvalid, "request body must be a JSON object with \"comment\" or \"reason\"")
	}
	if dec.More() {
		return decisionBody{}, refuse(ErrInvalid, "request body has trailing data")
	}
	return d, nil
}

// APIHandler serves the approvals part of the admin API:
//
//	GET  /api/v1/approvals[?state=pending][&profile=P][&limit=N] -> [Approval, ...] newest first
//	GET  /api/v1/approvals/{id}                        -> Approval
//	POST /api/v1/approvals/{id}/approve {"comment"}    -> Approval
//	POST /api/v1/approvals/{id}/deny    {"reason"}     -> Approval
//
// The caller is identity.FromContext(r.Context()), put there by the admin
// bearer middleware; without one every route answers 401. Any verified
// caller may read; deciding needs an approver group (403) and someone
// other than the requester (403). Unknown ID 404, already decided 409,
// bad input 400. Errors are {"error": "..."}.
func (m *Manager) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/approvals", m.handleList)
	mux.HandleFunc("GET /api/v1/approvals/{id}", m.handleGet)
	mux.HandleFunc("POST /api/v1/approvals/{id}/approve", m.handleDecide(true))
	mux.HandleFunc("POST /api/v1/approvals/{id}/deny", m.handleDecide(false))
	return authenticated(mux)
}

func authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := identity.FromContext(r.Context()); !ok || p.User == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden"`)
			httpjson.Error(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (m *Manager) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			httpjson.Error(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = n
	}
	list, err := m.ListFiltered(r.Context(), ListFilter{State: State(q.Get("state")), Profile: q.Get("profile")}, limit)
	if err != nil {
		m.writeErr(w, err)
		return
	}
	if list == nil {
		list = []*Approval{}
	}
	httpjson.Write(w, http.StatusOK, list)
}

func (m *Manager) handleGet(w http.ResponseWriter, r *http.Request) {
	a, err := m.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		m.writeErr(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, a)
}

func (m *Manager) handleDecide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := identity.FromContext(r.Context())
		d, err := decodeDecision(http.MaxBytesReader(w, r.Body, maxBodyBytes+1))
		if err != nil {
			m.writeErr(w, err)
			return
		}
		var a *Approval
		if approve {
			a, err = m.Approve(r.Context(), r.PathValue("id"), p, d.Comment)
		} else {
			a, err = m.Deny(r.Context(), r.PathValue("id"), p, d.Reason)
		}
		if err != nil {
			m.writeErr(w, err)
			return
		}
		httpjson.Write(w, http.StatusOK, a)
	}
}

// statusOf maps a Manager error to its HTTP status.
func statusOf(err error) int {
	switch kindOf(err) {
	case ErrNotFound:
		return http.StatusNotFound
	case ErrForbidden:
		return http.StatusForbidden
	case ErrConflict:
		return http.StatusConflict
	case ErrInvalid:
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (m *Manager) writeErr(w http.ResponseWriter, err error) {
	code := statusOf(err)
	msg := err.Error()
	var e *Error
	if code == http.StatusInternalServerError || !errors.As(err, &e) {
		m.log.Error().Err(err).Msg("approvals API failure")
		msg = "internal error; see the gateway log"
	}
	httpjson.Error(w, code, msg)
}

//go:embed ui
var uiFS embed.FS

// uiCSP allows only the page's own script and style and API calls to its
// own origin: data shown on the page (SQL, reasons, comments) can never run.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// UIHandler serves the approver/auditor web page: /ui/ (index.html),
// /ui/app.js and /ui/app.css, embedded. It needs no authentication itself:
// the page holds the user's bearer token in sessionStorage and calls the
// API with it. Mount it at "/ui/" (it also answers a bare "/ui").
func UIHandler() http.Handler {
	files := map[string]string{
		"":           "ui/index.html",
		"index.html": "ui/index.html",
		"app.js":     "ui/app.js",
		"app.css":    "ui/app.css",
	}
	types := map[string]string{
		"ui/index.html": "text/html; charset=utf-8",
		"ui/app.js":     "text/javascript; charset=utf-8",
		"ui/app.css":    "text/css; charset=utf-8",
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/ui"), "/")
		file, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		data, err := uiFS.ReadFile(file)
		if err != nil {
			http.Error(w, "missing asset", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", types[file])
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", fmt.Sprint(len(data)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(data)
	})
}

package sessions

import (
	"errors"
	"net/http"
	"time"

	"github.com/pgwarden/pgwarden/internal/httpjson"
)

// APIHandler serves GET /api/v1/sessions (query: user, actor, database, profile,
// since, action, decision) and GET /api/v1/sessions/{id} as JSON. It does not
// authenticate: the admin package mounts it behind its token middleware.
func (s *Store) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := Filter{User: q.Get("user"), Actor: q.Get("actor"), Database: q.Get("database"), Profile: q.Get("profile"), Action: q.Get("action"), Decision: q.Get("decision")}
		if v := q.Get("since"); v != "" {
			t, err := ParseSince(v, time.Now())
			if err != nil {
				httpjson.Verbatim(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			f.Since = t
		}
		list, err := s.List(f)
		if err != nil {
			httpjson.Verbatim(w, http.StatusInternalServerError, map[string]string{"error": "reading the session store failed"})
			return
		}
		httpjson.Verbatim(w, http.StatusOK, map[string]any{"sessions": list})
	})
	mux.HandleFunc("GET /api/v1/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		evs, err := s.Get(id)
		if errors.Is(err, ErrNotFound) {
			httpjson.Verbatim(w, http.StatusNotFound, map[string]string{"error": "no such session"})
			return
		}
		if err != nil {
			httpjson.Verbatim(w, http.StatusInternalServerError, map[string]string{"error": "reading the session store failed"})
			return
		}
		httpjson.Verbatim(w, http.StatusOK, map[string]any{"id": id, "events": evs})
	})
	return mux
}

// ParseSince parses a --since / ?since= value: RFC 3339 time, or a
// duration before now ("1h", "30m").
func ParseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("since: want an RFC 3339 time or a duration such as 1h")
}

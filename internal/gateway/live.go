package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/httpjson"
	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions"
)

// Live sessions: who is connected now, and "end session".
//
//	GET  /api/v1/live                          -> {"sessions": [LiveSession, ...]} by started_at
//	POST /api/v1/live/{session}/terminate      {"reason": "..."} (optional) -> LiveSession
//
// Both need an approver group (policy.approval.approvers of the default
// rules or of any profile; 403 otherwise); ending a session needs an
// approver group of the session's own profile. The caller is the one the
// admin bearer middleware verified (401 without). Errors are
// {"error": "..."} like the approvals API's. A session held by another
// gateway of the shared store is listed (from its session_start in
// pgwarden.events) but cannot be ended here: 409 naming that gateway.

// LiveSession is one open session as the live API returns it.
type LiveSession struct {
	Session string `json:"session"`
	User    string `json:"user"`
	// Actor is the party acting for User (a delegated token's act sub);
	// omitted when none. Groups are then those both hold.
	Actor           string   `json:"actor,omitempty"`
	Groups          []string `json:"groups"`
	Database        string   `json:"database"`
	Profile         string   `json:"profile"`
	ClientAddr      string   `json:"client_addr"`
	ApplicationName string   `json:"application_name"`
	BackendUser     string   `json:"backend_user"`
	StartedAt       string   `json:"started_at"` // RFC 3339, UTC
	Gateway         string   `json:"gateway"`
	// Set on the answer of terminate only.
	EndedBy string `json:"ended_by,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Ended: the session was closed (and its record ended) before the
	// answer; false when it was still closing after terminateWait.
	Ended *bool `json:"ended,omitempty"`

	started time.Time
}

// terminateWait bounds how long terminate waits for the session to close
// (its session_end recorded) before it answers.
const terminateWait = 5 * time.Second

// maxLiveBody bounds a terminate request body.
const maxLiveBody = 16 << 10

// otherGatewaySkew is how far before a gateway's (store clock) start its
// sessions' session_start times (its own clock) may lie: the listing of
// other gateways' sessions reads only events since then (a gateway ends
// the sessions of its previous process when it starts).
const otherGatewaySkew = 5 * time.Minute

func (g *Gateway) liveAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/live", g.handleLiveList)
	mux.HandleFunc("POST /api/v1/live/{session}/terminate", g.handleTerminate)
	mux.HandleFunc("/api/v1/live/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, http.StatusNotFound, "no such API route")
	})
	return mux
}

// liveCaller is the verified caller, or false after answering 401/403.
func (g *Gateway) liveCaller(w http.ResponseWriter, r *http.Request) (identity.Principal, bool) {
	p, ok := identity.FromContext(r.Context())
	if !ok || p.User == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pgwarden"`)
		httpjson.Error(w, http.StatusUnauthorized, "a valid bearer token is required")
		return p, false
	}
	if !g.approvals.IsApprover(p) {
		httpjson.Error(w, http.StatusForbidden, p.User+" is not in an approver group: live sessions are for approvers")
		return p, false
	}
	return p, true
}

func (g *Gateway) handleLiveList(w http.ResponseWriter, r *http.Request) {
	if _, ok := g.liveCaller(w, r); !ok {
		return
	}
	list := g.ownLive()
	body := map[string]any{}
	if g.shared != nil {
		others, err := g.otherLive(r.Context(), "")
		if err != nil {
			g.log.Warn().Err(err).Msg("live sessions: reading other gateways' sessions from the shared store failed")
			body["incomplete"] = "the sessions of other gateways could not be read from the shared store"
		}
		list = append(list, others...)
	}
	slices.SortStableFunc(list, func(a, b LiveSession) int {
		if c := a.started.Compare(b.started); c != 0 {
			return c
		}
		return strings.Compare(a.Session, b.Session)
	})
	if list == nil {
		list = []LiveSession{}
	}
	body["sessions"] = list
	httpjson.Write(w, http.StatusOK, body)
}

func (g *Gateway) handleTerminate(w http.ResponseWriter, r *http.Request) {
	p, ok := g.liveCaller(w, r)
	if !ok {
		return
	}
	reason, err := decodeReason(http.MaxBytesReader(w, r.Body, maxLiveBody+1))
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("session")
	g.liveMu.Lock()
	h := g.live[id]
	g.liveMu.Unlock()
	if h == nil {
		if g.shared != nil {
			others, err := g.otherLive(r.Context(), id)
			if err != nil {
				g.log.Error().Err(err).Str("session", id).Msg("live sessions: looking the session up in the shared store failed")
				httpjson.Error(w, http.StatusInternalServerError, "internal error; see the gateway log")
				return
			}
			if len(others) > 0 {
				gw := others[0].Gateway
				httpjson.Write(w, http.StatusConflict, map[string]string{
					"error":   fmt.Sprintf("session %s is held by gateway %s: end it through that gateway's admin API", id, gw),
					"gateway": gw,
				})
				return
			}
		}
		httpjson.Error(w, http.StatusNotFound, fmt.Sprintf("no live session %q on this gateway", clipID(id)))
		return
	}
	if !g.approvals.IsApproverFor(p, h.info.Profile) {
		httpjson.Error(w, http.StatusForbidden, fmt.Sprintf("%s is not in an approver group of profile %s", p.User, h.info.Profile))
		return
	}
	if !h.ending.CompareAndSwap(false, true) {
		httpjson.Error(w, http.StatusConflict, "the session is already being ended")
		return
	}
	ls := g.liveOf(h)
	by := approvals.Via(p.User, p.Actor) // "bob via agent-7" for a delegated caller
	ls.EndedBy, ls.Reason = by, reason

	// Into the session's record first (who and why; session_end then says
	// "terminated"), then the client's FATAL. pgwire closes the upstream
	// and revokes the credential after the hooks' Close.
	note := "pgwarden: session ended by " + by + " (live sessions API)"
	if reason != "" {
		note += ": " + reason
	}
	if h.rec != nil {
		if err := h.rec.Error("", note); err != nil {
			g.log.Error().Err(err).Str("session", id).Msg("recording the end of a session failed")
		}
	}
	perr := pgerr.Fatal(pgerr.AdminShutdown, "session ended by %s", by)
	if reason != "" {
		perr = perr.WithDetail("%s", reason)
	}
	g.log.Info().Str("session", id).Str("user", h.info.Principal.User).Str("actor", h.info.Principal.Actor).Str("backend_user", h.info.BackendUser).
		Str("ended_by", p.User).Str("ended_by_actor", p.Actor).Str("reason", reason).Msg("session ended through the live sessions API")
	h.s.Terminate(perr)

	ended := false
	t := time.NewTimer(terminateWait)
	defer t.Stop()
	select {
	case <-h.done:
		ended = true
	case <-t.C:
	case <-r.Context().Done():
	}
	ls.Ended = &ended
	httpjson.Write(w, http.StatusOK, ls)
}

// ownLive lists this gateway's open sessions.
func (g *Gateway) ownLive() []LiveSession {
	g.liveMu.Lock()
	hs := make([]*hooks, 0, len(g.live))
	for _, h := range g.live {
		hs = append(hs, h)
	}
	g.liveMu.Unlock()
	out := make([]LiveSession, 0, len(hs))
	for _, h := range hs {
		out = append(out, g.liveOf(h))
	}
	return out
}

func (g *Gateway) liveOf(h *hooks) LiveSession {
	in := h.info
	groups := in.Principal.Groups
	if groups == nil {
		groups = []string{}
	}
	return LiveSession{
		Session: in.ID, User: in.Principal.User, Actor: in.Principal.Actor, Groups: groups, Database: in.Database, Profile: in.Profile,
		ClientAddr: in.ClientAddr, ApplicationName: in.ApplicationName, BackendUser: in.BackendUser,
		StartedAt: in.StartedAt.UTC().Format(time.RFC3339Nano), Gateway: g.cfg.Cluster.ID(),
		started: in.StartedAt,
	}
}

// otherLive lists the open sessions of the other running gateways of the
// shared store (only session when it is not ""): a session_start no
// session_end followed, written by a gateway that neither stopped nor was
// found lost and sent a heartbeat within cluster.dead_after.
func (g *Gateway) otherLive(ctx context.Context, session string) ([]LiveSession, error) {
	ctx, cancel := context.WithTimeout(ctx, sharedstore.OpTimeout)
	defer cancel()
	rows, err := g.shared.Pool.Query(ctx, `SELECT s.gateway, s.line FROM pgwarden.events s
		JOIN pgwarden.gateways gw ON gw.id = s.gateway
		WHERE s.gateway <> $1 AND s.type = 'session_start' AND s.session <> ''
		  AND ($4 = '' OR s.session = $4)
		  AND gw.stopped_at IS NULL AND gw.lost_at IS NULL
		  AND gw.heartbeat_at >= now() - make_interval(secs => $2)
		  AND s.time >= gw.started_at - make_interval(secs => $3)
		  AND NOT EXISTS (SELECT 1 FROM pgwarden.events e WHERE e.session = s.session AND e.type = 'session_end')
		ORDER BY s.time, s.gateway, s.seq`,
		g.cfg.Cluster.ID(), g.cfg.Cluster.DeadAfter.Seconds(), otherGatewaySkew.Seconds(), session)
	if err != nil {
		return nil, g.shared.Unreachable(err)
	}
	defer rows.Close()
	var out []LiveSession
	for rows.Next() {
		var gw, line string
		if err := rows.Scan(&gw, &line); err != nil {
			return out, g.shared.Unreachable(err)
		}
		var ev sessions.Event
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue // `pgwarden sessions verify` reports it
		}
		groups := ev.Groups
		if groups == nil {
			groups = []string{}
		}
		t := ev.TimeValue()
		out = append(out, LiveSession{
			Session: ev.Session, User: ev.User, Actor: ev.Actor, Groups: groups, Database: ev.Database, Profile: ev.Profile,
			ClientAddr: ev.ClientAddr, ApplicationName: ev.ApplicationName, BackendUser: ev.BackendUser,
			StartedAt: t.UTC().Format(time.RFC3339Nano), Gateway: gw, started: t,
		})
	}
	return out, g.shared.Unreachable(rows.Err())
}

// decodeReason parses a terminate body: empty, or {"reason": "..."}.
func decodeReason(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxLiveBody+1))
	if err != nil {
		return "", errors.New("cannot read request body")
	}
	if len(data) > maxLiveBody {
		return "", fmt.Errorf("request body larger than %d bytes", maxLiveBody)
	}
	if strings.TrimSpace(string(data)) == "" {
		return "", nil
	}
	var b struct {
		Reason string `json:"reason"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return "", errors.New(`request body must be a JSON object with "reason"`)
	}
	if dec.More() {
		return "", errors.New("request body has trailing data")
	}
	if len(b.Reason) > approvals.MaxCommentBytes {
		return "", fmt.Errorf("reason longer than %d bytes", approvals.MaxCommentBytes)
	}
	return strings.TrimSpace(b.Reason), nil
}

func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

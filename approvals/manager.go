package approvals

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Limits on free text taken from clients and approvers.
const (
	MaxReasonBytes  = 2000 // SET pgwarden.reason, clipped
	MaxCommentBytes = 2000 // approve comment / deny reason, refused above
)

// Manager holds statements, waits for decisions and enforces four eyes.
// One Manager serves the whole gateway; it is safe for concurrent use.
type Manager struct {
	cfg      config.Approval // the default rules (New's)
	store    Store
	log      zerolog.Logger
	now      func() time.Time
	observer func(Event)
	notify   *notifier // the default rules' webhook (nil: off)
	httpc    *http.Client

	// profiles are the rules of connection profiles that have their own
	// policy.approval (WithProfileRules); a request of any other profile
	// (and of "") follows the default rules. Read-only after New.
	profiles  map[string]*rules
	def       *rules      // the default rules (cfg, notify)
	notifiers []*notifier // every notifier, for Close

	mu   sync.Mutex
	live map[string]*waiter // wait-mode requests of live sessions, pending or approved-unexecuted
}

type waiter struct {
	session string
	changed chan struct{} // closed when the request leaves pending
	closed  bool
	state   State // the last state reported for it (remote changes report only news)
}

// rules are the approval rules one request follows.
type rules struct {
	name   string // the profile ("" for the default rules)
	cfg    config.Approval
	notify *notifier
}

// Option configures a Manager.
type Option func(*Manager)

// WithProfileRules gives the connection profile name its own approval
// rules (that profile's policy.approval): a request whose Request.Profile
// is name is held with cfg's mode, timeout and require_reason, only cfg's
// approvers may decide it, and cfg's webhook (else the default's) is
// notified. Profiles without rules of their own follow the rules given to
// New. An empty name is ignored: New's rules are the default.
func WithProfileRules(name string, cfg config.Approval) Option {
	return func(m *Manager) {
		if name == "" {
			return
		}
		if m.profiles == nil {
			m.profiles = map[string]*rules{}
		}
		m.profiles[name] = &rules{name: name, cfg: cfg}
	}
}

// WithObserver reports every state change (hold, decisions, expiry,
// withdrawal, execution) to fn, synchronously after it is stored. fn must
// not block for long; it may call back into the Manager.
func WithObserver(fn func(Event)) Option { return func(m *Manager) { m.observer = fn } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// WithHTTPClient sets the client used for the webhook (default: 5s timeout).
func WithHTTPClient(c *http.Client) Option { return func(m *Manager) { m.httpc = c } }

// New returns a Manager over an open store. Requests that Open expired
// are logged. Call Close when the gateway stops (it waits for webhook
// deliveries in flight, at most their timeout).
func New(cfg config.Approval, store Store, log zerolog.Logger, opts ...Option) *Manager {
	m := &Manager{
		cfg:   cfg,
		store: store,
		log:   log.With().Str("component", "approvals").Logger(),
		now:   time.Now,
		live:  map[string]*waiter{},
	}
	for _, o := range opts {
		o(m)
	}
	normalize(&m.cfg)
	byURL := map[string]*notifier{}
	m.notify = m.notifierFor(byURL, "", cfg.Webhook)
	m.def = &rules{cfg: m.cfg, notify: m.notify}
	for name, r := range m.profiles {
		normalize(&r.cfg)
		r.notify = m.notify
		if r.cfg.Webhook != "" {
			r.notify = m.notifierFor(byURL, name, r.cfg.Webhook)
		}
	}
	store.Watch(m.remoteChanged)
	for _, a := range store.ExpiredAtOpen() {
		m.log.Warn().Str("approval", a.ID).Str("requester", a.Requester).Str("session", a.Session).
			Str("note", a.Note).Msg("approval request expired at start-up")
	}
	return m
}

// normalize fills in the defaults of mode (wait) and timeout (10m).
func normalize(c *config.Approval) {
	if c.Mode == "" {
		c.Mode = ModeWait
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
}

// notifierFor returns the notifier of webhook URL u (one per distinct
// URL), nil when u is "" or unusable (logged; the URL itself never is).
func (m *Manager) notifierFor(byURL map[string]*notifier, profile, u string) *notifier {
	if u == "" {
		return nil
	}
	if n, ok := byURL[u]; ok {
		return n
	}
	if err := checkWebhookURL(u); err != nil {
		ev := m.log.Error().Err(err)
		if profile != "" {
			ev = ev.Str("profile", profile)
		}
		ev.Msg("policy.approval.webhook unusable; webhook notifications are off")
		byURL[u] = nil
		return nil
	}
	n := newNotifier(u, m.httpc, m.log)
	byURL[u] = n
	m.notifiers = append(m.notifiers, n)
	return n
}

// rulesFor returns the rules of profile: its own, else the default rules.
func (m *Manager) rulesFor(profile string) *rules {
	if r, ok := m.profiles[profile]; ok && profile != "" {
		return r
	}
	return m.def
}

// Close waits for webhook deliveries in flight. It does not close the store.
func (m *Manager) Close() {
	for _, n := range m.notifiers {
		n.close()
	}
}

// Mode is the default rules' policy.approval.mode: "wait" or "retry".
// A gateway with connection profiles asks ModeFor(profile).
func (m *Manager) Mode() string { return m.cfg.Mode }

// Timeout is the default rules' policy.approval.timeout (the decision
// deadline and, in retry mode, how long an approval stays usable).
// A gateway with connection profiles asks TimeoutFor(profile).
func (m *Manager) Timeout() time.Duration { return m.cfg.Timeout }

// ModeFor is the approval mode requests of profile are held in: its own
// rules' (WithProfileRules), else the default's.
func (m *Manager) ModeFor(profile string) string { return m.rulesFor(profile).cfg.Mode }

// TimeoutFor is the approval timeout of profile: its own rules', else the
// default's.
func (m *Manager) TimeoutFor(profile string) time.Duration { return m.rulesFor(profile).cfg.Timeout }

// Hold creates and stores a request for r, notifies, and returns it. In
// wait mode the caller then sends HeldNotice and calls Wait; in retry mode
// it returns RetryError at once. With require_reason and no r.Reason it
// returns a *pgerr.Error (42501, ReasonRequiredMessage) wrapping
// ErrReasonRequired and stores nothing.
func (m *Manager) Hold(ctx context.Context, r Request) (*Approval, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.Requester == "" || r.SQL == "" {
		return nil, refuse(ErrInvalid, "approvals: hold needs a requester and SQL")
	}
	rl := m.rulesFor(r.Profile)
	reason := strings.TrimSpace(r.Reason)
	if rl.cfg.RequireReason && reason == "" {
		return nil, pgerr.New(pgerr.InsufficientPrivilege, ReasonRequiredMessage).WithCause(ErrReasonRequired)
	}
	if len(reason) > MaxReasonBytes {
		reason = clip(reason, MaxReasonBytes)
	}
	now := m.now().UTC()
	norm := r.NormSQL
	if norm == "" {
		norm = r.SQL
	}
	a := &Approval{
		ID:           newID(),
		State:        Pending,
		Mode:         rl.cfg.Mode,
		Requester:    r.Requester,
		Actor:        r.Actor,
		Groups:       append([]string{}, r.Groups...),
		Session:      r.Session,
		Database:     r.Database,
		Profile:      r.Profile,
		SQL:          r.SQL,
		Params:       append([]string{}, r.Params...),
		Action:       r.Action,
		EstimateRows: r.EstimateRows,
		Reason:       reason,
		CreatedAt:    now,
		ExpiresAt:    now.Add(rl.cfg.Timeout),
		Fingerprint:  FingerprintProfile(r.Profile, r.Requester, r.Database, norm, r.Params),
	}
	var w *waiter
	if a.Mode == ModeWait {
		w = &waiter{session: r.Session, changed: make(chan struct{}), state: Pending}
		m.mu.Lock()
		m.live[a.ID] = w
		m.mu.Unlock()
	}
	if err := m.store.Create(a); err != nil {
		if w != nil {
			m.mu.Lock()
			delete(m.live, a.ID)
			m.mu.Unlock()
		}
		return nil, fmt.Errorf("approvals: store request: %w", err)
	}
	m.log.Info().Str("approval", a.ID).Str("requester", a.Requester).Str("actor", a.Actor).Strs("groups", a.Groups).
		Str("session", a.Session).Str("database", a.Database).Str("profile", a.Profile).Str("action", a.Action).
		Int64("estimate_rows", a.EstimateRows).Str("reason", a.Reason).Str("mode", a.Mode).
		Time("expires_at", a.ExpiresAt).
		Str("approve_with", "pgwarden approvals approve "+a.ID).
		Msg("statement held for approval")
	m.emit("hold", a)
	if rl.notify != nil {
		rl.notify.send(holdText(a))
	}
	return a.Clone(), nil
}

// Wait blocks until the request held in wait mode is decided, its
// timeout passes (expired), its session ends, or ctx is cancelled (a
// client CancelRequest): then it is withdrawn, also when an approval
// arrived at the same instant — a cancelled statement never runs. Other
// requests are never blocked by it. On Approved the caller must call
// MarkExecuted before forwarding the statement, and forward only if that
// returns nil.
func (m *Manager) Wait(ctx context.Context, id string) (Outcome, error) {
	m.mu.Lock()
	w := m.live[id]
	m.mu.Unlock()
	a, err := m.store.Get(id)
	if err != nil {
		return Outcome{}, err
	}
	if a.State != Pending {
		return outcomeOf(a), nil
	}
	if w == nil {
		return Outcome{}, refuse(ErrInvalid, "approval %s is not held by a session of this gateway", id)
	}
	timer := time.NewTimer(a.ExpiresAt.Sub(m.now()))
	defer timer.Stop()
	select {
	case <-w.changed:
	case <-timer.C:
		m.transition(id, "expired", func(a *Approval) bool {
			if a.State != Pending {
				return false
			}
			a.State, a.Note = Expired, m.undecidedNote(a)
			return true
		})
	case <-ctx.Done():
		m.transition(id, "withdrawn", func(a *Approval) bool {
			if a.State != Pending && a.State != Approved {
				return false
			}
			a.State, a.Note = Withdrawn, "the client cancelled the statement"
			return true
		})
	}
	a, err = m.store.Get(id)
	if err != nil {
		return Outcome{}, err
	}
	return outcomeOf(a), nil
}

func outcomeOf(a *Approval) Outcome {
	o := Outcome{State: a.State, Approval: a}
	switch a.State {
	case Approved:
		o.Reason = "approved by " + a.DecidedBy
	case Denied:
		o.Reason = "denied by " + a.DecidedBy
		if a.Comment != "" {
			o.Reason += ": " + a.Comment
		}
	case Executed:
		o.Reason = "already executed"
	case Pending:
		o.Reason = "still pending"
	default: // expired, withdrawn: pgwarden's own note says why
		o.Reason = string(a.State) + ": " + a.Note
	}
	return o
}

// MarkExecuted moves an approved request to executed: exactly once, even
// with concurrent callers (the store serializes it). Any other state
// (already executed, withdrawn, expired by session end) is ErrConflict and
// the statement must not run.
func (m *Manager) MarkExecuted(id string) error {
	var conflict error
	a, err := m.store.Update(id, func(a *Approval) (bool, error) {
		if a.State != Approved {
			conflict = refuse(ErrConflict, "approval %s is %s, not approved", id, a.State)
			return false, conflict
		}
		t := m.now().UTC()
		a.State, a.ExecutedAt = Executed, &t
		return true, nil
	})
	if err != nil {
		return err
	}
	m.changed(a, "executed")
	return nil
}

// Claim is ClaimFor of a request without a profile ("").
func (m *Manager) Claim(requester, database, normSQL string, params []string) (*Approval, bool) {
	return m.ClaimFor("", requester, database, normSQL, params)
}

// ClaimFor is ClaimAs for a requester no actor acts for.
func (m *Manager) ClaimFor(profile, requester, database, normSQL string, params []string) (*Approval, bool) {
	return m.ClaimAs(profile, requester, "", database, normSQL, params)
}

// ClaimAs is retry mode's re-run check: it finds an approved, unexpired,
// unexecuted request of this requester, made with the same actor acting
// for them (or none, actor ""), for the identical statement (same profile,
// database, normalized SQL and parameters) and marks it executed in the
// same transaction. An approval given to "alice via agent-7" is not
// alice's own, nor another agent's: approvers judged who asked. Only one
// caller ever gets true for a request; a third run finds nothing and is
// held again. Store failures return false (fail closed: the statement is
// held, not run).
func (m *Manager) ClaimAs(profile, requester, actor, database, normSQL string, params []string) (*Approval, bool) {
	fp := FingerprintProfile(profile, requester, database, normSQL, params)
	now := m.now()
	won, expired, err := m.store.Claim(fp, func(a *Approval) bool {
		if a.State != Approved || a.Mode != ModeRetry || a.Requester != requester || a.Actor != actor || a.Profile != profile {
			return false
		}
		if !now.Before(a.ExpiresAt) {
			a.State, a.Note = Expired, "approval not used before it expired"
			return false
		}
		t := now.UTC()
		a.State, a.ExecutedAt = Executed, &t
		return true
	})
	if err != nil {
		m.log.Error().Err(err).Str("requester", requester).Msg("approval claim failed; holding the statement")
		return nil, false
	}
	for _, a := range expired {
		m.changed(a, "expired")
	}
	if won == nil {
		return nil, false
	}
	m.changed(won, "executed")
	return won.Clone(), true
}

// SessionEnded expires the wait-mode requests of a session that are still
// pending or approved but not executed: nobody else may run them later.
// Retry-mode requests are tied to the requester and stay valid.
func (m *Manager) SessionEnded(sessionID string) {
	m.mu.Lock()
	if len(m.live) == 0 {
		m.mu.Unlock()
		return
	}
	var ids []string
	for id, w := range m.live {
		if w.session == sessionID {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.transition(id, "expired", func(a *Approval) bool {
			if a.State != Pending && a.State != Approved {
				return false
			}
			a.State, a.Note = Expired, "the session that held it ended"
			return true
		})
	}
}

// Approve decides for the statement. by must be in an approver group and
// must have had no part in the request: neither by.User nor by.Actor may
// be its requester or the actor that acted for them.
func (m *Manager) Approve(ctx context.Context, id string, by identity.Principal, comment string) (*Approval, error) {
	return m.decide(ctx, id, by, comment, true)
}

// Deny refuses the statement with a reason (required).
func (m *Manager) Deny(ctx context.Context, id string, by identity.Principal, reason string) (*Approval, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, refuse(ErrInvalid, "a deny needs a reason")
	}
	return m.decide(ctx, id, by, reason, false)
}

// IsApprover reports whether p is in one of policy.approval.approvers of
// the default rules or of any profile's (WithProfileRules): whether p
// approves anything at all. With no approver groups configured nobody is
// (fail closed).
func (m *Manager) IsApprover(p identity.Principal) bool {
	if inAny(p, m.cfg.Approvers) {
		return true
	}
	for _, r := range m.profiles {
		if inAny(p, r.cfg.Approvers) {
			return true
		}
	}
	return false
}

// IsApproverFor reports whether p may decide requests of profile: p is in
// one of the approver groups of profile's rules (its own, else the
// default's).
func (m *Manager) IsApproverFor(p identity.Principal, profile string) bool {
	return inAny(p, m.rulesFor(profile).cfg.Approvers)
}

func inAny(p identity.Principal, groups []string) bool {
	for _, g := range groups {
		if p.HasGroup(g) {
			return true
		}
	}
	return false
}

// allApprovers lists the approver groups of every rule set, once each.
func (m *Manager) allApprovers() []string {
	out := append([]string{}, m.cfg.Approvers...)
	names := make([]string, 0, len(m.profiles))
	for n := range m.profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, g := range m.profiles[n].cfg.Approvers {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}

// undecidedNote is the note of a pending request that expired undecided,
// naming its own rules' timeout.
func (m *Manager) undecidedNote(a *Approval) string {
	return fmt.Sprintf("not decided within %s", m.rulesFor(a.Profile).cfg.Timeout)
}

// tookPart reports whether the decider by, or the actor acting for them,
// is one of the parties of request a (its requester, or the actor that
// acted for the requester), and names that party: an agent that asked for
// alice must not approve its own request acting for bob.
func tookPart(a *Approval, by identity.Principal) (string, bool) {
	for _, p := range []string{by.User, by.Actor} {
		if p != "" && (p == a.Requester || p == a.Actor) {
			return p, true
		}
	}
	return "", false
}

func (m *Manager) decide(ctx context.Context, id string, by identity.Principal, text string, approve bool) (*Approval, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if by.User == "" {
		return nil, refuse(ErrForbidden, "the caller has no user name")
	}
	if !m.IsApprover(by) {
		return nil, refuse(ErrForbidden, "%s is not in an approver group (%s)", by.User, strings.Join(m.allApprovers(), ", "))
	}
	if len(text) > MaxCommentBytes {
		return nil, refuse(ErrInvalid, "comment/reason longer than %d bytes", MaxCommentBytes)
	}
	if !validID(id) {
		return nil, refuse(ErrNotFound, "approval %q not found", clip(id, 64))
	}
	now := m.now().UTC()
	evType := "denied"
	if approve {
		evType = "approved"
	}
	expiredNow := false
	a, err := m.store.Update(id, func(a *Approval) (bool, error) {
		rl := m.rulesFor(a.Profile)
		if !inAny(by, rl.cfg.Approvers) {
			which := "the default approval rules"
			switch {
			case rl.name != "":
				which = "profile " + rl.name
			case a.Profile != "":
				which = "profile " + a.Profile + " (it follows the default approval rules)"
			}
			return false, refuse(ErrForbidden, "%s is not in an approver group of %s (%s), which approval %s needs",
				by.User, which, strings.Join(rl.cfg.Approvers, ", "), id)
		}
		if a.Requester == by.User {
			return false, refuse(ErrForbidden, "four eyes: %s cannot decide their own request %s; another approver must", by.User, id)
		}
		if who, ok := tookPart(a, by); ok {
			return false, refuse(ErrForbidden, "four eyes: %s took part in request %s (%s) and cannot decide it; another approver must", who, id, a.RequesterVia())
		}
		if a.State == Pending && !now.Before(a.ExpiresAt) {
			a.State, a.Note = Expired, m.undecidedNote(a)
			expiredNow = true
			return true, refuse(ErrConflict, "approval %s is already expired", id)
		}
		if a.State != Pending {
			msg := fmt.Sprintf("approval %s is already %s", id, a.State)
			if a.DecidedBy != "" {
				msg += " (decided by " + a.DecidedBy + ")"
			}
			return false, &Error{Kind: ErrConflict, Msg: msg}
		}
		a.DecidedBy, a.DecidedByActor, a.DecidedAt, a.Comment = by.User, by.Actor, &now, strings.TrimSpace(text)
		if approve {
			a.State = Approved
			if a.Mode == ModeRetry {
				a.ExpiresAt = now.Add(rl.cfg.Timeout) // the approval's validity for the re-run
			}
		} else {
			a.State = Denied
		}
		return true, nil
	})
	if a == nil {
		return nil, err
	}
	if expiredNow {
		m.changed(a, "expired")
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	m.log.Info().Str("approval", a.ID).Str("decision", evType).Str("by", by.User).Str("by_actor", by.Actor).Str("requester", a.Requester).Str("actor", a.Actor).
		Str("comment", a.Comment).Msg("approval decided")
	m.changed(a, evType)
	return a.Clone(), nil
}

// Get returns one request (ErrNotFound if unknown).
func (m *Manager) Get(ctx context.Context, id string) (*Approval, error) {
	if !validID(id) {
		return nil, refuse(ErrNotFound, "approval %q not found", clip(id, 64))
	}
	m.Sweep()
	return m.store.Get(id)
}

// List returns requests newest first; state "" lists all. At most limit
// (<= 0: 1000).
func (m *Manager) List(ctx context.Context, state State, limit int) ([]*Approval, error) {
	return m.ListFiltered(ctx, ListFilter{State: state}, limit)
}

// ListFiltered returns the requests f selects (state, profile), newest
// first, at most limit (<= 0: 1000).
func (m *Manager) ListFiltered(ctx context.Context, f ListFilter, limit int) ([]*Approval, error) {
	if f.State != "" && !f.State.Valid() {
		return nil, refuse(ErrInvalid, "unknown state %q (pending, approved, denied, expired, withdrawn, executed)", clip(string(f.State), 32))
	}
	if len(f.Profile) > 200 {
		return nil, refuse(ErrInvalid, "profile name longer than 200 bytes")
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	m.Sweep()
	return m.store.List(f, limit)
}

// Sweep expires requests whose expires_at has passed: pending ones in
// either mode (undecided in time) and approved retry-mode ones (not used
// in time). It runs before every read, so state seen through the API is
// current; it writes only when something is due.
func (m *Manager) Sweep() {
	now := m.now()
	due := func(a *Approval) bool {
		return !now.Before(a.ExpiresAt) && (a.State == Pending || (a.State == Approved && a.Mode == ModeRetry))
	}
	open, err := m.store.List(ListFilter{State: Pending}, 0)
	if err == nil {
		more, err2 := m.store.List(ListFilter{State: Approved}, 0)
		open, err = append(open, more...), err2
	}
	if err != nil {
		m.log.Error().Err(err).Msg("approval sweep failed")
		return
	}
	anyDue := false
	for _, a := range open {
		if due(a) {
			anyDue = true
			break
		}
	}
	if !anyDue {
		return
	}
	changed, err := m.store.UpdateOpen(func(a *Approval) bool {
		if !due(a) {
			return false
		}
		if a.State == Pending {
			a.Note = m.undecidedNote(a)
		} else {
			a.Note = "approval not used before it expired"
		}
		a.State = Expired
		return true
	})
	if err != nil {
		m.log.Error().Err(err).Msg("approval sweep failed")
		return
	}
	for _, a := range changed {
		m.changed(a, "expired")
	}
}

// transition applies fn in one store transaction and reports the change
// when fn made one.
func (m *Manager) transition(id, evType string, fn func(a *Approval) bool) {
	did := false
	a, err := m.store.Update(id, func(a *Approval) (bool, error) {
		did = fn(a)
		return did, nil
	})
	if err != nil {
		m.log.Error().Err(err).Str("approval", id).Msg("approval state change failed")
		return
	}
	if did {
		m.changed(a, evType)
	}
}

// remoteChanged is the store's word that another gateway changed request
// id (an approver decided through its API, or it expired the request of a
// session here it believed lost). Only requests a session of this gateway
// waits for matter: their waiter wakes and the change is reported once.
// An empty id means the store may have missed changes (its listener
// reconnected): every request waited for here is looked at again.
func (m *Manager) remoteChanged(id string) {
	if id == "" {
		m.mu.Lock()
		ids := make([]string, 0, len(m.live))
		for id := range m.live {
			ids = append(ids, id)
		}
		m.mu.Unlock()
		for _, id := range ids {
			m.remoteChanged(id)
		}
		return
	}
	m.mu.Lock()
	w := m.live[id]
	m.mu.Unlock()
	if w == nil {
		return
	}
	a, err := m.store.Get(id)
	if err != nil {
		m.log.Error().Err(err).Str("approval", id).Msg("reading a request another gateway changed failed")
		return
	}
	m.mu.Lock()
	news := a.State != w.state
	m.mu.Unlock()
	if news {
		m.changed(a, string(a.State))
	}
}

// changed wakes a waiter, forgets final requests, logs and reports.
func (m *Manager) changed(a *Approval, evType string) {
	m.mu.Lock()
	if w := m.live[a.ID]; w != nil {
		w.state = a.State
		if a.State != Pending && !w.closed {
			close(w.changed)
			w.closed = true
		}
		if a.State.Final() {
			delete(m.live, a.ID)
		}
	}
	m.mu.Unlock()
	if evType == "expired" || evType == "withdrawn" {
		m.log.Info().Str("approval", a.ID).Str("state", string(a.State)).Str("note", a.Note).Msg("approval request closed")
	} else if evType == "executed" {
		m.log.Info().Str("approval", a.ID).Str("requester", a.Requester).Msg("approved statement released for execution")
	}
	m.emit(evType, a)
}

func (m *Manager) emit(evType string, a *Approval) {
	if m.observer == nil {
		return
	}
	m.observer(Event{Type: evType, Time: m.now().UTC(), Approval: a.Clone()})
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// do not cut a UTF-8 sequence in half
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// kindOf returns the sentinel an error wraps ("" kind -> nil).
func kindOf(err error) error {
	for _, k := range []error{ErrNotFound, ErrForbidden, ErrConflict, ErrInvalid, ErrReasonRequired} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

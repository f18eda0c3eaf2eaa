package approvals

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// State is the lifecycle state of an approval request.
type State string

// The states of docs/SPEC.md. Pending and Approved are open; the others are
// final (no transition leaves them).
const (
	Pending   State = "pending"
	Approved  State = "approved"
	Denied    State = "denied"
	Expired   State = "expired"
	Withdrawn State = "withdrawn"
	Executed  State = "executed"
)

// Valid reports whether s is one of the six states.
func (s State) Valid() bool {
	switch s {
	case Pending, Approved, Denied, Expired, Withdrawn, Executed:
		return true
	}
	return false
}

// Final reports whether no further transition is possible.
func (s State) Final() bool { return s != Pending && s != Approved }

// Modes of policy.approval.mode.
const (
	ModeWait  = "wait"
	ModeRetry = "retry"
)

// Approval is one held statement, as stored and as returned by the API.
// Comment holds the approver's comment on approve and the reason given on
// deny; Reason is the requester's own justification (SET pgwarden.reason).
type Approval struct {
	ID        string `json:"id"`
	State     State  `json:"state"`
	Mode      string `json:"mode"`
	Requester string `json:"requester"`
	// Actor is the party that acted for Requester in the session that held
	// the statement (a delegated token's act sub; "" when none, and on
	// requests made before delegation existed). Groups are then the
	// groups both hold.
	Actor    string   `json:"actor,omitempty"`
	Groups   []string `json:"groups"`
	Session  string   `json:"session"`
	Database string   `json:"database"`
	// Profile is the connection profile (upstream server) of the session
	// that held the statement; its approval rules apply ("" on requests
	// made before profiles existed: the default rules).
	Profile      string    `json:"profile,omitempty"`
	SQL          string    `json:"sql"`
	Params       []string  `json:"params"`
	Action       string    `json:"action"`
	EstimateRows int64     `json:"estimate_rows"`
	Reason       string    `json:"reason"`
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	DecidedBy    string    `json:"decided_by"`
	// DecidedByActor is the party that acted for DecidedBy when the
	// decision came with a delegated token ("" when none).
	DecidedByActor string     `json:"decided_by_actor,omitempty"`
	DecidedAt      *time.Time `json:"decided_at"`
	Comment        string     `json:"comment"`
	ExecutedAt     *time.Time `json:"executed_at,omitempty"`
	// Note explains a state pgwarden set by itself (expired, withdrawn).
	Note string `json:"note,omitempty"`
	// Gateway is the gateway whose session holds the request (shared store only).
	Gateway string `json:"gateway,omitempty"`
	// Fingerprint identifies (profile, requester, database, normalized SQL, params)
	// for retry-mode matching; a SHA-256, never the SQL itself.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// RequesterVia is the requester as people read it: "alice via agent-7"
// when an actor acted for them.
func (a *Approval) RequesterVia() string { return Via(a.Requester, a.Actor) }

// Via names user and the actor acting for them: "user via actor", or
// user alone when actor is "".
func Via(user, actor string) string {
	if actor == "" {
		return user
	}
	return user + " via " + actor
}

// Clone returns a deep copy.
func (a *Approval) Clone() *Approval {
	c := *a
	c.Groups = append([]string(nil), a.Groups...)
	c.Params = append([]string(nil), a.Params...)
	if a.DecidedAt != nil {
		t := *a.DecidedAt
		c.DecidedAt = &t
	}
	if a.ExecutedAt != nil {
		t := *a.ExecutedAt
		c.ExecutedAt = &t
	}
	return &c
}

// ErrCorrupt wraps every record Decode refuses.
var ErrCorrupt = errors.New("approvals: corrupt record")

// Decode reads a stored record (JSON), refusing one without an ID or with
// an unknown state: a store's bytes are checked before anything acts on them.
func Decode(v []byte) (*Approval, error) {
	a := new(Approval)
	if err := json.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !a.State.Valid() || a.ID == "" {
		return nil, fmt.Errorf("%w: state %q id %q", ErrCorrupt, a.State, a.ID)
	}
	return a, nil
}

// Request is what the relay glue knows about a statement it must hold.
type Request struct {
	Requester string   // Principal.User
	Actor     string   // Principal.Actor: who acts for Requester ("" when none)
	Groups    []string // Principal.Groups (the effective groups)
	Session   string   // pgwire SessionInfo.ID
	Database  string
	// Profile is the connection profile of the session: its approval
	// rules (WithProfileRules) decide mode, timeout, require_reason,
	// approvers and webhook; "" or a profile without rules of its own
	// follows the default rules.
	Profile string
	SQL     string // exact text as the client sent it
	// NormSQL is the normalized statement used to match a retry-mode re-run
	// (e.g. pg_query's normalized form); "" means SQL itself.
	NormSQL string
	// Params are the bound parameter values in text form. Encode NULL
	// distinctly from '' (e.g. as "\\N") so the two never match each other.
	Params       []string
	Action       string // the action that needs approval (several joined by ",")
	EstimateRows int64  // planner estimate; -1 if unknown
	Reason       string // SET pgwarden.reason, "" if none
}

// Outcome is how a wait ended.
type Outcome struct {
	State State
	// Reason starts with the state and says why, e.g. "denied by dba-2:
	// use a WHERE", "expired: not decided within 10m0s", "withdrawn: the
	// client cancelled the statement".
	Reason   string
	Approval *Approval // the request as it was when the wait ended
}

// Err returns the client error for an outcome that must not run (57014),
// or nil when the statement was approved.
func (o Outcome) Err() *pgerr.Error {
	if o.State == Approved {
		return nil
	}
	id := ""
	if o.Approval != nil {
		id = o.Approval.ID
	}
	return pgerr.New(pgerr.QueryCanceled, "pgwarden: approval %s %s", id, o.Reason)
}

// Event is a state change, reported to the observer (WithObserver) so the
// glue can write it into the session record.
type Event struct {
	// Type is "hold" for a new request, else the new state
	// ("approved", "denied", "expired", "withdrawn", "executed").
	Type     string
	Time     time.Time
	Approval *Approval // a copy, safe to keep
}

// Sentinel kinds; every error returned by the Manager for a refusal wraps
// one of these (errors.Is) and carries a message fit for an API client.
var (
	ErrNotFound       = errors.New("approval not found")
	ErrForbidden      = errors.New("forbidden")
	ErrConflict       = errors.New("approval already decided")
	ErrInvalid        = errors.New("invalid request")
	ErrReasonRequired = errors.New("a reason is required")
)

// Error is a refusal with a message for the caller (HTTP body, CLI output).
type Error struct {
	Kind error // one of the sentinels above
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// ReasonRequiredMessage is sent (42501) when policy.approval.require_reason
// is on and the session set no reason before a statement that needs approval.
const ReasonRequiredMessage = "pgwarden: this statement needs approval and policy.approval.require_reason is on: " +
	"give a reason first, e.g. SET pgwarden.reason = 'ticket OPS-123: purge test docs'; then run the statement again"

// HeldNotice is the NoticeResponse a wait-mode client receives before it blocks.
func HeldNotice(a *Approval) *pgproto3.NoticeResponse {
	return pgerr.Notice("pgwarden: statement held for approval %s; an approver runs: pgwarden approvals approve %s", a.ID, a.ID)
}

// RetryError is the 55000 error a retry-mode client receives at once.
func RetryError(a *Approval, validity time.Duration) *pgerr.Error {
	return pgerr.New(pgerr.ObjectNotInPrerequisiteState,
		"pgwarden: statement held for approval %s; an approver runs: pgwarden approvals approve %s; then run the identical statement again (valid %s after approval)",
		a.ID, a.ID, validity).
		WithHint("pgwarden approvals show %s shows its state", a.ID)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns 16 characters of lowercase base32 (80 random bits): URL-safe
// and unguessable.
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return idEncoding.EncodeToString(b[:])
}

// validID reports whether s could be an ID we issued (bounds lookups of
// untrusted input before they reach the store).
func validID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Fingerprint is FingerprintProfile without a profile ("").
func Fingerprint(requester, database, normSQL string, params []string) string {
	return FingerprintProfile("", requester, database, normSQL, params)
}

// FingerprintProfile hashes what a retry-mode re-run must repeat exactly:
// the profile, the requester, the database, the normalized SQL and every
// parameter. Length prefixes keep ("ab","c") and ("a","bc") apart. The
// profile is hashed last and only when set, so the fingerprint of a
// request without one is the one earlier builds stored (the parameter
// count before it keeps the two forms apart).
func FingerprintProfile(profile, requester, database, normSQL string, params []string) string {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(requester)
	put(database)
	put(normSQL)
	binary.BigEndian.PutUint64(n[:], uint64(len(params)))
	h.Write(n[:])
	for _, p := range params {
		put(p)
	}
	if profile != "" {
		put(profile)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

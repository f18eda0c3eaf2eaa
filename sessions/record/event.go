// Package record is the session record's model: the Event (one line of a
// recording), its canonical JSON encoding, the SHA-256 hash chain, and
// the vocabulary readers and writers of recordings share (Problem,
// Verdict, Follower). It is a leaf: the recorder (package sessions) and
// every backend import it, so no backend imports sessions.
package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event types (field "type").
const (
	TypeSessionStart = "session_start"
	TypeStatement    = "statement"
	TypeApproval     = "approval"
	TypeError        = "error"
	TypeSessionEnd   = "session_end"
	// TypeRetention is written by the recorder itself (session "") after
	// retention deleted old segments: it attests, inside the chain, the last
	// deleted event so that verify accepts the missing prefix.
	TypeRetention = "retention"
)

// Decisions (field "decision").
const (
	DecisionAllow    = "allow"
	DecisionDeny     = "deny"
	DecisionHold     = "hold"
	DecisionApproved = "approved"
	DecisionDenied   = "denied"
)

// TimeFormat is the layout of Event.Time: RFC 3339, UTC, nanoseconds.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Event is one line of the session record. The JSON field order is the
// struct order and is part of the canonical form (see docs/recording.md):
// never reorder or rename fields; a new field must be optional (omitempty,
// so that lines written before it existed encode, and so hash, exactly as
// they did) and goes before PrevHash.
type Event struct {
	Seq     int64  `json:"seq"` // store-wide sequence, +1 per event
	Time    string `json:"time"`
	Session string `json:"session,omitempty"`
	Type    string `json:"type"`
	User    string `json:"user,omitempty"`
	// Actor is the party acting for User (the sub of a delegated token's
	// RFC 8693 act claim), on every event of the session like User; Groups
	// are then those both hold. Absent for undelegated sessions and on
	// records written before delegation existed.
	Actor           string   `json:"actor,omitempty"`
	Groups          []string `json:"groups,omitempty"`
	ClientAddr      string   `json:"client_addr,omitempty"`
	ApplicationName string   `json:"application_name,omitempty"`
	Database        string   `json:"database,omitempty"`
	// Profile is the connection profile (the upstream server) the session
	// went to; on every event of the session, like Database. Absent on
	// records written before profiles existed.
	Profile       string      `json:"profile,omitempty"`
	BackendUser   string      `json:"backend_user,omitempty"`
	SQL           string      `json:"sql,omitempty"`
	Params        []*string   `json:"params,omitempty"` // nil element = NULL
	Actions       []string    `json:"actions,omitempty"`
	Decision      string      `json:"decision,omitempty"`
	Columns       []string    `json:"columns,omitempty"`
	Rows          [][]*string `json:"rows,omitempty"` // masked; nil cell = NULL
	RowsTotal     int64       `json:"rows_total,omitempty"`
	DurationUS    int64       `json:"duration_us,omitempty"`
	Error         string      `json:"error,omitempty"`
	Reason        string      `json:"reason,omitempty"`
	ApprovalID    string      `json:"approval_id,omitempty"`
	ApprovalState string      `json:"approval_state,omitempty"`
	DecidedBy     string      `json:"decided_by,omitempty"`
	// DecidedByActor: the agent that acted for DecidedBy (RFC 8693 "act").
	DecidedByActor string `json:"decided_by_actor,omitempty"`
	// Retention markers only: the last event deleted by retention.
	PurgedThroughSeq  int64  `json:"purged_through_seq,omitempty"`
	PurgedThroughHash string `json:"purged_through_hash,omitempty"`
	// Gateway names the gateway that wrote the event (shared store only:
	// each gateway keeps its own chain there; seq and prev_hash are per gateway).
	Gateway  string `json:"gateway,omitempty"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash,omitempty"`

	// rowsJSON is what the writer records as "rows": a statement's
	// ResultRows, already in canonical JSON (events read back have Rows).
	rowsJSON []byte
}

// SetRowsJSON sets what the writer records as "rows" when Rows is empty:
// b is the rows already in canonical JSON, without the enclosing brackets
// (sessions.ResultRows). The event keeps b.
func (e *Event) SetRowsJSON(b []byte) { e.rowsJSON = b }

// TimeValue parses Time (zero on error).
func (e *Event) TimeValue() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Time)
	return t
}

// Encoder appends canonical event lines to a reused buffer. It is not safe
// for concurrent use.
type Encoder struct {
	buf []byte
	sum [sha256.Size]byte
	hex [sha256.Size * 2]byte
}

// NewEncoder returns an Encoder.
func NewEncoder() *Encoder { return &Encoder{buf: make([]byte, 0, 4096)} }

// Canonical returns the canonical form of ev: its JSON encoding as
// encoding/json writes it (struct field order, no HTML escaping, no
// whitespace) with the hash field absent, produced by AppendCanonical.
// The returned slice is valid until the next call.
func (e *Encoder) Canonical(ev *Event) []byte {
	e.buf = AppendCanonical(e.buf[:0], ev, false)
	return e.buf
}

// ChainHash is an event's hash (hex) as the recorder's chain state keeps
// it, without a string per event; n is 0 (no event before) or 64.
type ChainHash struct {
	n uint8
	b [sha256.Size * 2]byte
}

func (h *ChainHash) String() string { return string(h.b[:h.n]) }

// ChainHashOf is the ChainHash of a hash in hex (an Event's Hash).
func ChainHashOf(s string) (h ChainHash) {
	h.n = uint8(copy(h.b[:], s))
	return h
}

// ChainLine is Line for an event whose body (AppendBody) was encoded
// before: it adds the event's place in the chain (seq, time, prev), hashes,
// stores the hash in out and returns the full line, valid until the next
// call. It is what the recorder does under the store lock: no allocation,
// no field encoding, one SHA-256. Byte for byte what Line writes
// (TestChainLineMatchesLine).
func (e *Encoder) ChainLine(seq int64, t time.Time, body []byte, prev, out *ChainHash) []byte {
	b := append(e.buf[:0], `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, TimeFormat)
	b = append(b, '"')
	b = append(b, body...)
	b = append(b, `,"prev_hash":"`...)
	b = append(b, prev.b[:prev.n]...)
	b = append(b, `"}`...)
	e.sum = sha256.Sum256(b)
	hex.Encode(out.b[:], e.sum[:])
	out.n = uint8(len(out.b))
	b = append(b[:len(b)-1], `,"hash":"`...)
	b = append(b, out.b[:]...)
	b = append(b, "\"}\n"...)
	e.buf = b
	return b
}

// Line computes ev.Hash over the canonical form and returns the full line
// (with hash, ending in '\n'). Valid until the next call.
func (e *Encoder) Line(ev *Event) []byte {
	c := e.Canonical(ev)
	e.sum = sha256.Sum256(c)
	hex.Encode(e.hex[:], e.sum[:])
	ev.Hash = string(e.hex[:])
	// c is "{...}" without hash: splice `,"hash":"..."}` at the end.
	e.buf = append(e.buf[:len(c)-1], `,"hash":"`...)
	e.buf = append(e.buf, e.hex[:]...)
	e.buf = append(e.buf, "\"}\n"...)
	return e.buf
}

// CheckLine verifies one stored line (without its '\n'): strict decoding,
// the hash over the canonical form, and that the line is byte-for-byte the
// canonical encoding (so no edit that decodes the same goes unnoticed).
func (e *Encoder) CheckLine(raw []byte, ev *Event) error {
	*ev = Event{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ev); err != nil {
		return fmt.Errorf("not a valid event: %v", err)
	}
	if dec.More() {
		return errors.New("trailing data after the event")
	}
	stored := ev.Hash
	want := e.Line(ev)
	if ev.Hash != stored {
		ev.Hash = stored
		return fmt.Errorf("hash mismatch: content does not match its hash %s", Short(stored))
	}
	if !bytes.Equal(want[:len(want)-1], raw) {
		return errors.New("line is not in canonical form (edited)")
	}
	return nil
}

// DecodeLoose decodes a line without checking it (readers other than verify).
func DecodeLoose(raw []byte, ev *Event) error {
	*ev = Event{}
	return json.Unmarshal(raw, ev)
}

// Short is a hash shortened for messages (its first 12 digits).
func Short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

package sessions

import "github.com/pgwarden/pgwarden/sessions/record"

// The record model lives in sessions/record (a leaf every backend
// imports); these names keep it where callers have always found it.
type (
	// Event is one line of the session record (see record.Event).
	Event = record.Event
	// Problem is the first broken place found by Verify.
	Problem = record.Problem
	// Verdict is the result of Log.Verify.
	Verdict = record.Verdict
	// Follower reads a recording and can be polled for more (Log.Follow).
	Follower = record.Follower
)

// Event types (field "type").
const (
	TypeSessionStart = record.TypeSessionStart
	TypeStatement    = record.TypeStatement
	TypeApproval     = record.TypeApproval
	TypeError        = record.TypeError
	TypeSessionEnd   = record.TypeSessionEnd
	TypeRetention    = record.TypeRetention
)

// Decisions (field "decision").
const (
	DecisionAllow    = record.DecisionAllow
	DecisionDeny     = record.DecisionDeny
	DecisionHold     = record.DecisionHold
	DecisionApproved = record.DecisionApproved
	DecisionDenied   = record.DecisionDenied
)

// Reasons of session_end written by the recorder itself.
const (
	ReasonGatewayRestart  = record.ReasonGatewayRestart  // recovered at Open after a crash
	ReasonGatewayShutdown = record.ReasonGatewayShutdown // Recorder.Close with the session still open
	// ReasonGatewayLost ends the sessions of a gateway another one found dead.
	ReasonGatewayLost = record.ReasonGatewayLost
)

// TimeFormat is the layout of Event.Time: RFC 3339, UTC, nanoseconds.
const TimeFormat = record.TimeFormat

const hexDigits = "0123456789abcdef"

// The package's short names for the record package's encoder.
type (
	encoder   = record.Encoder
	chainHash = record.ChainHash
)

func newEncoder() *encoder { return record.NewEncoder() }

func appendCanonical(dst []byte, ev *Event, withHash bool) []byte {
	return record.AppendCanonical(dst, ev, withHash)
}
func appendBody(dst []byte, ev *Event) []byte      { return record.AppendBody(dst, ev) }
func appendJSONString(dst []byte, s string) []byte { return record.AppendJSONString(dst, s) }

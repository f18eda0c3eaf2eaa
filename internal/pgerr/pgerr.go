// Package pgerr is the one place where pgwarden builds errors meant for
// PostgreSQL clients: a SQLSTATE-carrying value whose message always starts
// with "pgwarden: ". Packages return *pgerr.Error for refusals a client must
// see; pgwire turns it into an ErrorResponse. Internal detail goes into the
// wrapped cause (for logs), never into Message.
package pgerr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Code is a PostgreSQL SQLSTATE.
type Code string

// The SQLSTATEs pgwarden sends (see docs/SPEC.md, "Errors sent to clients").
const (
	InvalidPassword              Code = "28P01" // bad or missing token
	InvalidAuthorization         Code = "28000" // TLS required, database not allowed
	InsufficientPrivilege        Code = "42501" // policy or masking refusal
	QueryCanceled                Code = "57014" // approval denied, timed out, withdrawn; cancel
	ObjectNotInPrerequisiteState Code = "55000" // approval pending (retry mode)
	UnableToConnect              Code = "08001" // credential minting or upstream connect failed
	ConnectionFailure            Code = "08006" // upstream lost mid-session
	ProtocolViolation            Code = "08P01" // malformed or oversized message
	TooManyConnections           Code = "53300"
	ConfigurationLimitExceeded   Code = "53400" // an MCP limit (calls per minute, rows per hour)
	InvalidParameterValue        Code = "22023" // an MCP tool's argument is not usable
	UndefinedTable               Code = "42P01" // an MCP tool names a table that does not exist
	FeatureNotSupported          Code = "0A000"
	AdminShutdown                Code = "57P01" // session ended by pgwarden (credential expired, shutdown)
	InternalError                Code = "XX000"
)

// Severity values as PostgreSQL sends them.
const (
	SeverityError  = "ERROR"
	SeverityFatal  = "FATAL"
	SeverityNotice = "NOTICE"
)

// Prefix starts every pgwarden-originated message.
const Prefix = "pgwarden: "

// Error is a client-facing refusal. Message is safe to show to the client;
// Cause (optional) carries internal detail for logs only.
type Error struct {
	Severity string
	Code     Code
	Message  string // always starts with Prefix
	Detail   string
	Hint     string
	Cause    error
}

func newErr(sev string, code Code, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(msg, Prefix) {
		msg = Prefix + msg
	}
	return &Error{Severity: sev, Code: code, Message: msg}
}

// New returns an ERROR-severity error with the given SQLSTATE.
func New(code Code, format string, args ...any) *Error {
	return newErr(SeverityError, code, format, args...)
}

// Fatal returns a FATAL-severity error: the session ends after it is sent.
func Fatal(code Code, format string, args ...any) *Error {
	return newErr(SeverityFatal, code, format, args...)
}

// WithCause attaches internal detail (for logs, never sent to clients).
func (e *Error) WithCause(err error) *Error { e.Cause = err; return e }

// WithDetail sets the client-visible DETAIL field.
func (e *Error) WithDetail(format string, args ...any) *Error {
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

// WithHint sets the client-visible HINT field.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

func (e *Error) Error() string {
	s := string(e.Code) + " " + e.Message
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

// Response renders the error as the wire message a client receives.
func (e *Error) Response() *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{
		Severity:            e.Severity,
		SeverityUnlocalized: e.Severity,
		Code:                string(e.Code),
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
	}
}

// Notice renders a NoticeResponse carrying message (prefixed like errors).
func Notice(format string, args ...any) *pgproto3.NoticeResponse {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(msg, Prefix) {
		msg = Prefix + msg
	}
	return &pgproto3.NoticeResponse{Severity: SeverityNotice, SeverityUnlocalized: SeverityNotice, Code: "00000", Message: msg}
}

// As reports whether err is (or wraps) a *Error.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// ToolError is the structured content of a refused or failed tool call:
// the SQLSTATE and message the gateway (or PostgreSQL) sent, as a psql
// user would see them.
type ToolError struct {
	SQLState string `json:"sqlstate"`
	Message  string `json:"message"`
	Detail   string `json:"detail,omitempty"`
	Hint     string `json:"hint,omitempty"`
	// ApprovalID names the approval a retry-mode hold (55000) waits for:
	// once approved, the identical call runs the statement (once).
	ApprovalID string `json:"approval_id,omitempty"`
}

// heldRe finds the approval ID in the gateway's 55000 message
// (approvals.RetryError: "statement held for approval <id>; ...").
var heldRe = regexp.MustCompile(`held for approval ([a-z2-7]{16})\b`)

// asToolError turns err into what the agent is told. Errors that carry a
// SQLSTATE (the gateway's and PostgreSQL's, pgwarden's own refusals) keep
// it; a lost connection is 08006 and a cancelled call 57014.
func asToolError(err error) ToolError {
	var pe *pgconn.PgError
	var own *pgerr.Error
	switch {
	case errors.As(err, &own):
		return ToolError{SQLState: string(own.Code), Message: own.Message, Detail: own.Detail, Hint: own.Hint}
	case errors.As(err, &pe):
		te := ToolError{SQLState: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint}
		if pe.Code == string(pgerr.ObjectNotInPrerequisiteState) {
			if m := heldRe.FindStringSubmatch(pe.Message); m != nil {
				te.ApprovalID = m[1]
			}
		}
		return te
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ToolError{SQLState: string(pgerr.QueryCanceled), Message: "pgwarden: the call was cancelled or timed out before the gateway answered"}
	}
	return ToolError{SQLState: string(pgerr.ConnectionFailure), Message: "pgwarden: the connection to the gateway failed (the next call reconnects): " + safeText(err.Error())}
}

// safeText keeps an error text short and on one line.
func safeText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// errorResult is a tool error (isError) with the error as text and as
// structured content.
func errorResult(te ToolError) *sdk.CallToolResult {
	var b strings.Builder
	b.WriteString(te.Message)
	b.WriteString(" (SQLSTATE " + te.SQLState + ")")
	if te.Detail != "" {
		b.WriteString("\nDETAIL: " + te.Detail)
	}
	if te.Hint != "" {
		b.WriteString("\nHINT: " + te.Hint)
	}
	if te.ApprovalID != "" {
		b.WriteString("\nThis statement needs a second person's approval (approval " + te.ApprovalID +
			"). Tell the user; once an approver has approved it (pgwarden approvals approve " + te.ApprovalID +
			", or the approvals page), call this tool again with exactly the same arguments: the statement then runs, once.")
	}
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: b.String()}}, StructuredContent: te}
}

// jsonResult is a successful result: v as structured content and as JSON text.
func jsonResult(v any) (*sdk.CallToolResult, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: string(b)}}, StructuredContent: json.RawMessage(b)}, nil
}

// argError is a tool argument the server cannot use (22023).
func argError(tool, arg, format string, args ...any) *pgerr.Error {
	e := pgerr.New(pgerr.InvalidParameterValue, format, args...)
	e.Message = pgerr.Prefix + tool + ": " + arg + " " + strings.TrimPrefix(e.Message, pgerr.Prefix)
	return e
}

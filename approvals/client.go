package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// maxResponseBytes bounds what the client reads from the admin API.
const maxResponseBytes = 32 << 20

// Client talks to the admin API's approvals routes with a bearer token.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:6480
	Token   string       // OIDC token; sent only as Authorization: Bearer
	HTTP    *http.Client // nil: a client with a 30s timeout
}

// APIError is a non-2xx answer of the admin API.
type APIError struct {
	Status  int
	Message string // the server's {"error"} text, or the status line
}

func (e *APIError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

// List returns approvals in state ("" for all), newest first.
func (c *Client) List(ctx context.Context, state string) ([]Approval, error) {
	return c.ListFiltered(ctx, state, "")
}

// ListFiltered returns approvals in state ("" for all) of connection
// profile ("" for every profile), newest first.
func (c *Client) ListFiltered(ctx context.Context, state, profile string) ([]Approval, error) {
	path := "/api/v1/approvals"
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if profile != "" {
		q.Set("profile", profile)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []Approval
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Get returns one approval.
func (c *Client) Get(ctx context.Context, id string) (*Approval, error) {
	var a Approval
	if err := c.do(ctx, http.MethodGet, "/api/v1/approvals/"+url.PathEscape(id), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Approve approves id with an optional comment.
func (c *Client) Approve(ctx context.Context, id, comment string) (*Approval, error) {
	var a Approval
	if err := c.do(ctx, http.MethodPost, "/api/v1/approvals/"+url.PathEscape(id)+"/approve", map[string]string{"comment": comment}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Deny denies id with a reason (required by the server).
func (c *Client) Deny(ctx context.Context, id, reason string) (*Approval, error) {
	var a Approval
	if err := c.do(ctx, http.MethodPost, "/api/v1/approvals/"+url.PathEscape(id)+"/deny", map[string]string{"reason": reason}, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		return errors.New("no admin API URL")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return fmt.Errorf("bad admin API URL %q", base)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("admin API %s unreachable: %w", base, ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading admin API answer: %w", err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("admin API answer larger than %d bytes", maxResponseBytes)
	}
	if resp.StatusCode/100 != 2 {
		return decodeAPIError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API answered something that is not the expected JSON: %w", err)
	}
	return nil
}

// decodeAPIError turns an error answer (untrusted bytes) into an *APIError.
func decodeAPIError(status int, data []byte) *APIError {
	var e struct {
		Error string `json:"error"`
	}
	msg := http.StatusText(status)
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = clip(e.Error, 1000)
	}
	return &APIError{Status: status, Message: msg}
}

const cliUsage = `usage: pgwarden approvals <command>

  list [--state S] [--profile P] [--json]
                                     list approvals (default state pending; --state all for every state;
                                     --profile: only requests of that connection profile)
  show ID [--json]                   show one approval
  approve ID [--comment C]           approve (you must be an approver and not the requester)
  deny ID --reason R                 deny with a reason

The admin API is --admin URL (default from --config, else http://127.0.0.1:6480);
the bearer token is --token or PGWARDEN_TOKEN.
`

// cliArgs splits args into positionals and --name value / --name=value
// flags (flags may come before or after positionals). bools lists flags
// that take no value.
func cliArgs(args []string, valued, bools []string) (pos []string, flags map[string]string, err error) {
	flags = map[string]string{}
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		switch {
		case in(bools, name):
			if hasVal {
				return nil, nil, fmt.Errorf("flag --%s takes no value", name)
			}
			flags[name] = "true"
		case in(valued, name):
			if !hasVal {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("flag --%s needs a value", name)
				}
				i++
				val = args[i]
			}
			flags[name] = val
		default:
			return nil, nil, fmt.Errorf("unknown flag %s", a)
		}
	}
	return pos, flags, nil
}

// RunCLI runs `pgwarden approvals <args>` against c and returns the exit
// code: 0 ok, 1 runtime failure or refusal, 2 bad usage.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer, c *Client) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cliUsage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pgwarden approvals %s: %s\n\n%s", cmd, fmt.Sprintf(format, a...), cliUsage)
		return 2
	}
	fail := func(err error) int {
		var ae *APIError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusUnauthorized:
				fmt.Fprintf(stderr, "pgwarden approvals %s: not authenticated (%s); pass --token or set PGWARDEN_TOKEN to a valid token\n", cmd, ae.Message)
			case http.StatusForbidden:
				fmt.Fprintf(stderr, "pgwarden approvals %s: refused: %s\n", cmd, ae.Message)
			case http.StatusNotFound:
				fmt.Fprintf(stderr, "pgwarden approvals %s: %s\n", cmd, ae.Message)
			case http.StatusConflict:
				fmt.Fprintf(stderr, "pgwarden approvals %s: conflict: %s\n", cmd, ae.Message)
			default:
				fmt.Fprintf(stderr, "pgwarden approvals %s: admin API error %d: %s\n", cmd, ae.Status, ae.Message)
			}
			return 1
		}
		fmt.Fprintf(stderr, "pgwarden approvals %s: %v\n", cmd, err)
		return 1
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, cliUsage)
		return 0
	case "list":
		pos, fl, err := cliArgs(rest, []string{"state", "profile"}, []string{"json"})
		if err != nil {
			return usage("%v", err)
		}
		if len(pos) != 0 {
			return usage("unexpected argument %q", pos[0])
		}
		state, ok := fl["state"]
		if !ok {
			state = string(Pending)
		}
		if state == "all" {
			state = ""
		}
		if state != "" && !State(state).Valid() {
			return usage("unknown state %q", state)
		}
		list, err := c.ListFiltered(ctx, state, fl["profile"])
		if err != nil {
			return fail(err)
		}
		if fl["json"] != "" {
			return printJSON(stdout, stderr, list)
		}
		printTable(stdout, list)
		return 0
	case "show":
		pos, fl, err := cliArgs(rest, nil, []string{"json"})
		if err != nil {
			return usage("%v", err)
		}
		if len(pos) != 1 {
			return usage("needs exactly one approval ID")
		}
		a, err := c.Get(ctx, pos[0])
		if err != nil {
			return fail(err)
		}
		if fl["json"] != "" {
			return printJSON(stdout, stderr, a)
		}
		printApproval(stdout, a)
		return 0
	case "approve", "deny":
		flag := "comment"
		if cmd == "deny" {
			flag = "reason"
		}
		pos, fl, err := cliArgs(rest, []string{flag}, []string{"json"})
		if err != nil {
			return usage("%v", err)
		}
		if len(pos) != 1 {
			return usage("needs exactly one approval ID")
		}
		var a *Approval
		if cmd == "approve" {
			a, err = c.Approve(ctx, pos[0], fl["comment"])
		} else {
			if strings.TrimSpace(fl["reason"]) == "" {
				return usage("--reason R is required")
			}
			a, err = c.Deny(ctx, pos[0], fl["reason"])
		}
		if err != nil {
			return fail(err)
		}
		if fl["json"] != "" {
			return printJSON(stdout, stderr, a)
		}
		fmt.Fprintf(stdout, "approval %s is now %s (by %s)\n", a.ID, a.State, a.DecidedBy)
		return 0
	default:
		return usage("unknown command")
	}
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "pgwarden approvals: %v\n", err)
		return 1
	}
	return 0
}

// oneLine flattens SQL for a table cell and clips it.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return clip(s, n-3) + "..."
	}
	return s
}

func printTable(w io.Writer, list []Approval) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no approvals")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREQUESTER\tACTION\tPROFILE\tDATABASE\tEST.ROWS\tCREATED\tEXPIRES\tREASON\tSQL")
	for _, a := range list {
		profile := oneLine(a.Profile, 30)
		if profile == "" {
			profile = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", a.ID, a.State, oneLine(a.RequesterVia(), 60), oneLine(a.Action, 20),
			profile, oneLine(a.Database, 30), a.EstimateRows, a.CreatedAt.Local().Format(time.DateTime), a.ExpiresAt.Local().Format(time.DateTime),
			oneLine(a.Reason, 40), oneLine(a.SQL, 60))
	}
	tw.Flush()
}

func printApproval(w io.Writer, a *Approval) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("id", a.ID)
	row("state", string(a.State))
	row("mode", a.Mode)
	row("requester", a.Requester)
	if a.Actor != "" {
		row("actor", a.Actor)
	}
	row("groups", strings.Join(a.Groups, ", "))
	row("session", a.Session)
	row("database", a.Database)
	if a.Profile != "" {
		row("profile", a.Profile)
	}
	row("action", a.Action)
	row("estimate_rows", fmt.Sprint(a.EstimateRows))
	row("reason", a.Reason)
	row("created_at", a.CreatedAt.Format(time.RFC3339))
	row("expires_at", a.ExpiresAt.Format(time.RFC3339))
	if a.DecidedBy != "" {
		row("decided_by", Via(a.DecidedBy, a.DecidedByActor))
	}
	if a.DecidedAt != nil {
		row("decided_at", a.DecidedAt.Format(time.RFC3339))
	}
	if a.Comment != "" {
		row("comment", a.Comment)
	}
	if a.ExecutedAt != nil {
		row("executed_at", a.ExecutedAt.Format(time.RFC3339))
	}
	if a.Note != "" {
		row("note", a.Note)
	}
	if len(a.Params) > 0 {
		p, _ := json.Marshal(a.Params)
		row("params", string(p))
	}
	tw.Flush()
	fmt.Fprintf(w, "sql:\n%s\n", a.SQL)
}

// GlobalFlags are the connection flags of `pgwarden approvals`, which the
// command wiring resolves before calling RunCLI: Admin (else admin.listen of
// Config, else DefaultAdminURL) and Token (else PGWARDEN_TOKEN).
type GlobalFlags struct {
	Admin  string
	Config string
	Token  string
}

// DefaultAdminURL is the admin API used when neither --admin nor --config names one.
const DefaultAdminURL = "http://127.0.0.1:6480"

// SplitGlobalFlags removes --admin, --config and --token (with a value,
// as "--x v" or "--x=v", anywhere in args) and returns them with the
// remaining arguments for RunCLI. An error is a usage error (exit 2).
func SplitGlobalFlags(args []string) (GlobalFlags, []string, error) {
	var g GlobalFlags
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			continue
		}
		var dst *string
		switch name {
		case "admin":
			dst = &g.Admin
		case "config":
			dst = &g.Config
		case "token":
			dst = &g.Token
		default:
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return g, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	return g, rest, nil
}

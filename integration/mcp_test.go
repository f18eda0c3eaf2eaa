package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions"
)

// These tests drive pgwarden's MCP server with the official Go SDK's own
// client: over streamable HTTP at /mcp on the admin listener, and over
// stdio against `pgwarden mcp` run as a subprocess. Every call goes
// through the gateway's Postgres listener as the caller, so what they
// check (masked rows, refusals, approvals, the record) is the gateway's
// own behaviour seen through MCP.

// startMCPGateway is startGateway with mcp.enabled.
func startMCPGateway(t *testing.T, mutate func(*config.Config)) *gw {
	t.Helper()
	return startGateway(t, func(c *config.Config) {
		c.MCP.Enabled = true
		if mutate != nil {
			mutate(c)
		}
	})
}

// bearer adds "Authorization: Bearer <token>" to every request; the token
// can be swapped mid-session.
type bearer struct {
	token atomic.Pointer[string]
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t := b.token.Load(); t != nil {
		r.Header.Set("Authorization", "Bearer "+*t)
	}
	return b.next.RoundTrip(r)
}

// mcpHTTP connects an SDK client named client to the gateway's /mcp with token.
func mcpHTTP(t *testing.T, w *gw, client, token string) (*sdk.ClientSession, *bearer) {
	t.Helper()
	return mcpHTTPWith(t, w, client, token, nil)
}

func mcpHTTPWith(t *testing.T, w *gw, client, token string, opts *sdk.ClientOptions) (*sdk.ClientSession, *bearer) {
	t.Helper()
	return mcpHTTPVia(t, w, client, token, opts, http.DefaultTransport)
}

// mcpHTTPVia is mcpHTTPWith over the transport next.
func mcpHTTPVia(t *testing.T, w *gw, client, token string, opts *sdk.ClientOptions, next http.RoundTripper) (*sdk.ClientSession, *bearer) {
	t.Helper()
	b := &bearer{next: next}
	b.token.Store(&token)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: client, Version: "1.0"}, opts)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: w.AdminURL + "/mcp", HTTPClient: &http.Client{Transport: b}}, nil)
	if err != nil {
		t.Fatalf("MCP connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, b
}

// callTool calls a tool and returns its result (a protocol error fails the test).
func callTool(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// mcpResult is query's and similarity_search's result.
type mcpResult struct {
	Columns        []string            `json:"columns"`
	Rows           [][]json.RawMessage `json:"rows"`
	RowCount       int                 `json:"row_count"`
	Truncated      bool                `json:"truncated"`
	TruncatedBy    string              `json:"truncated_by"`
	CommandTag     string              `json:"command_tag"`
	MaskedColumns  []string            `json:"masked_columns"`
	ScannedColumns []string            `json:"scanned_columns"`
	Notices        []string            `json:"notices"`
}

type mcpError struct {
	SQLState   string `json:"sqlstate"`
	Message    string `json:"message"`
	ApprovalID string `json:"approval_id"`
}

// structured decodes a result's structured content into v, after checking
// that its text content carries the same JSON (or, for an error, the
// message and SQLSTATE).
func structured(t *testing.T, res *sdk.CallToolResult, v any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("want one text content, got %d", len(res.Content))
	}
	text := res.Content[0].(*sdk.TextContent).Text
	if !res.IsError {
		var a, c any
		if json.Unmarshal([]byte(text), &a) != nil || json.Unmarshal(b, &c) != nil || fmt.Sprint(a) != fmt.Sprint(c) {
			t.Fatalf("text content %s is not the structured content %s", text, b)
		}
	}
}

// okResult requires a successful query-shaped result.
func okResult(t *testing.T, res *sdk.CallToolResult) mcpResult {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool error: %s", res.Content[0].(*sdk.TextContent).Text)
	}
	var r mcpResult
	structured(t, res, &r)
	return r
}

// toolError requires a tool error with SQLSTATE code and returns it.
func toolError(t *testing.T, res *sdk.CallToolResult, code string) mcpError {
	t.Helper()
	if !res.IsError {
		t.Fatalf("want a tool error %s, got %v", code, res.StructuredContent)
	}
	var e mcpError
	structured(t, res, &e)
	text := res.Content[0].(*sdk.TextContent).Text
	if e.SQLState != code || !strings.HasPrefix(e.Message, "pgwarden: ") || !strings.Contains(text, e.Message+" (SQLSTATE "+code+")") {
		t.Fatalf("want SQLSTATE %s and a pgwarden: message in text and structure, got %+v / %q", code, e, text)
	}
	return e
}

func str(t *testing.T, v json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		t.Fatalf("%s is not a string", v)
	}
	return s
}

func TestMCPMaskedRows(t *testing.T) {
	w := startMCPGateway(t, nil)
	ctx := context.Background()
	type cust struct{ name, email, ssn string }
	raw := map[int64]cust{}
	rows, err := direct(t).Query(ctx, "SELECT id, name, email, ssn FROM customers WHERE id <= 3")
	must0(t, err)
	for rows.Next() {
		var id int64
		var c cust
		must0(t, rows.Scan(&id, &c.name, &c.email, &c.ssn))
		raw[id] = c
	}
	must0(t, rows.Err())

	cs, _ := mcpHTTP(t, w, "masking-test", w.Issuer.token(t, "alice@example.com", "analyst"))

	t.Run("query", func(t *testing.T) {
		r := okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT id, name, email, ssn FROM customers WHERE id <= $1 ORDER BY id", "params": []any{3}}))
		if r.RowCount != 3 || len(r.Rows) != 3 || r.Truncated || r.CommandTag != "SELECT 3" {
			t.Fatalf("result: %+v", r)
		}
		if !slices.Equal(r.Columns, []string{"id", "name", "email", "ssn"}) || !slices.Equal(r.MaskedColumns, []string{"name", "email", "ssn"}) {
			t.Fatalf("columns %v masked %v", r.Columns, r.MaskedColumns)
		}
		for _, row := range r.Rows {
			var id int64
			must0(t, json.Unmarshal(row[0], &id)) // an integer column is a JSON number
			c := raw[id]
			name, email, ssn := str(t, row[1]), str(t, row[2]), str(t, row[3])
			if name == c.name || email == c.email || ssn == c.ssn {
				t.Fatalf("row %d came back unmasked: %s", id, row)
			}
			if !strings.Contains(email, "@") || !strings.HasSuffix(ssn, c.ssn[len(c.ssn)-4:]) {
				t.Fatalf("row %d: email %q / ssn %q are not the rules' masks of %q / %q", id, email, ssn, c.email, c.ssn)
			}
		}
	})

	t.Run("similarity_search", func(t *testing.T) {
		var meta string
		must0(t, direct(t).QueryRow(ctx, "SELECT metadata::text FROM documents WHERE id = 2").Scan(&meta))
		for _, args := range []map[string]any{
			{"table": "documents", "column": "embedding", "like_id": 1, "k": 3},
			{"table": "public.documents", "column": "embedding", "vector": vectorArg(t, 2), "k": 3, "metric": "l2"},
		} {
			r := okResult(t, callTool(t, cs, "similarity_search", args))
			if r.RowCount != 3 || r.Columns[len(r.Columns)-1] != "distance" || slices.Contains(r.Columns, "embedding") {
				t.Fatalf("%v: %+v", args, r)
			}
			if !slices.Contains(r.MaskedColumns, "metadata") {
				t.Fatalf("%v: metadata not reported masked: %v", args, r.MaskedColumns)
			}
			var prev float64
			for i, row := range r.Rows {
				var d float64
				must0(t, json.Unmarshal(row[len(row)-1], &d))
				if i > 0 && d < prev {
					t.Fatalf("not nearest first: %v", r.Rows)
				}
				prev = d
				if _, like := args["like_id"]; like && string(row[0]) == "1" {
					t.Fatal("like_id's own row came back")
				}
			}
			if _, byVector := args["vector"]; byVector {
				// the query vector is document 2's own: it is the nearest, at distance 0
				if string(r.Rows[0][0]) != "2" || string(r.Rows[0][len(r.Rows[0])-1]) != "0" {
					t.Fatalf("document 2 is not first at distance 0: %s", r.Rows[0])
				}
				got := string(r.Rows[0][slices.Index(r.Columns, "metadata")])
				for _, k := range []string{"email", "author"} {
					var m map[string]any
					must0(t, json.Unmarshal([]byte(meta), &m))
					if v, ok := m[k].(string); ok && strings.Contains(got, v) {
						t.Fatalf("metadata.%s came back raw: %s", k, got)
					}
				}
			}
		}
	})

	t.Run("list_tables and describe_table", func(t *testing.T) {
		var list struct {
			Tables []struct {
				Schema, Name, Kind string
				MaskedColumns      []string `json:"masked_columns"`
			} `json:"tables"`
		}
		res := callTool(t, cs, "list_tables", nil)
		if res.IsError {
			t.Fatal(res.Content[0].(*sdk.TextContent).Text)
		}
		structured(t, res, &list)
		found := 0
		for _, tb := range list.Tables {
			switch tb.Name {
			case "customers":
				found++
				if tb.Schema != "public" || tb.Kind != "table" || !slices.Contains(tb.MaskedColumns, "email") || !slices.Contains(tb.MaskedColumns, "ssn") || slices.Contains(tb.MaskedColumns, "id") {
					t.Fatalf("customers: %+v", tb)
				}
			case "documents":
				found++
				if !slices.Equal(tb.MaskedColumns, []string{"metadata"}) {
					t.Fatalf("documents: %+v", tb)
				}
			}
		}
		if found != 2 {
			t.Fatalf("list_tables: %+v", list)
		}
		var d struct {
			Schema, Name string
			Columns      []struct {
				Name, Type       string
				Nullable, Masked bool
				PrimaryKey       bool `json:"primary_key"`
			}
		}
		res = callTool(t, cs, "describe_table", map[string]any{"table": "Public.Customers"})
		if res.IsError {
			t.Fatal(res.Content[0].(*sdk.TextContent).Text)
		}
		structured(t, res, &d)
		cols := map[string]bool{}
		for _, c := range d.Columns {
			cols[c.Name] = c.Masked
			if c.Name == "id" && !c.PrimaryKey {
				t.Fatalf("id is not marked primary key: %+v", d)
			}
		}
		if d.Schema != "public" || d.Name != "customers" || !cols["email"] || !cols["ssn"] || cols["id"] {
			t.Fatalf("describe_table customers: %+v", d)
		}
		toolError(t, callTool(t, cs, "describe_table", map[string]any{"table": "no_such_table"}), "42P01")
		toolError(t, callTool(t, cs, "describe_table", map[string]any{"table": "a.b.c"}), "22023")
	})

	t.Run("unmask", func(t *testing.T) {
		dba, _ := mcpHTTP(t, w, "masking-test", w.Issuer.token(t, "dora@example.com", "dba"))
		r := okResult(t, callTool(t, dba, "query", map[string]any{"sql": "SELECT email FROM customers WHERE id = 1"}))
		if len(r.MaskedColumns) != 0 || str(t, r.Rows[0][0]) != raw[1].email {
			t.Fatalf("a group with unmask gets raw values and no masked columns: %+v", r)
		}
	})
}

// vectorArg is document id's embedding as a JSON array of numbers.
func vectorArg(t *testing.T, id int) []float64 {
	t.Helper()
	var s string
	must0(t, direct(t).QueryRow(context.Background(), "SELECT embedding::text FROM documents WHERE id = $1", id).Scan(&s))
	var v []float64
	must0(t, json.Unmarshal([]byte(s), &v))
	return v
}

func TestMCPRefusals(t *testing.T) {
	w := startMCPGateway(t, nil)
	cs, _ := mcpHTTP(t, w, "refusal-test", w.Issuer.token(t, "alice@example.com", "analyst"))
	e := toolError(t, callTool(t, cs, "query", map[string]any{"sql": "DELETE FROM customers WHERE id = 1"}), "42501")
	if !strings.Contains(e.Message, "delete") {
		t.Fatalf("the refusal does not name the action: %q", e.Message)
	}
	if n := countRows(t, "customers WHERE id = 1"); n != 1 {
		t.Fatal("the refused DELETE ran")
	}
	// The session goes on after a refusal.
	okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT 1 AS one"}))
	// PostgreSQL's own errors come through with their SQLSTATE too.
	res := callTool(t, cs, "query", map[string]any{"sql": "SELECT 1 / $1::int AS q", "params": []any{0}})
	if !res.IsError || !strings.Contains(res.Content[0].(*sdk.TextContent).Text, "division by zero (SQLSTATE 22012)") {
		t.Fatalf("division by zero: %s", res.Content[0].(*sdk.TextContent).Text)
	}
	// The outcomes are counted by tool and SQLSTATE.
	resp, err := http.Get(w.AdminURL + "/metrics")
	must0(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`pgwarden_mcp_calls_total{sqlstate="42501",tool="query"} 1`, `pgwarden_mcp_calls_total{sqlstate="00000",tool="query"} 1`, `pgwarden_mcp_calls_total{sqlstate="22012",tool="query"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Bad arguments are tool errors naming the argument.
	for _, args := range []map[string]any{
		{"table": "documents", "column": "title", "like_id": 1},
		{"table": "documents", "column": "embedding", "vector": []float64{1, 2}},
		{"table": "documents", "column": "embedding", "like_id": 1, "filter": map[string]any{"nope": 1}},
		{"table": "documents", "column": "embedding", "like_id": 1, "k": 0},
		{"table": "documents", "column": "embedding"},
	} {
		res := callTool(t, cs, "similarity_search", args)
		if !res.IsError {
			t.Fatalf("%v: want a tool error, got %v", args, res.StructuredContent)
		}
	}
}

func TestMCPApprovalRetry(t *testing.T) {
	table := "mcp_approval_docs"
	approvalTable(t, table, 5)
	w := startMCPGateway(t, func(c *config.Config) {
		c.Policy.Approval.Mode = "retry"
		c.Policy.Approval.Actions = []string{"delete"}
		c.Policy.Approval.Approvers = []string{"dba"}
	})
	cs, _ := mcpHTTP(t, w, "approval-test", w.Issuer.token(t, "ivan@example.com", "ingest"))
	args := map[string]any{"sql": "DELETE FROM " + table + " WHERE id <= $1", "params": []any{2}}

	e := toolError(t, callTool(t, cs, "query", args), "55000")
	if e.ApprovalID == "" || !strings.Contains(e.Message, e.ApprovalID) {
		t.Fatalf("no approval ID in %+v", e)
	}
	if n := countRows(t, table); n != 5 {
		t.Fatalf("the held DELETE ran before approval: %d rows left", n)
	}
	// The requester cannot approve their own statement; a second person can.
	if code, _ := postDecision(t, w, w.Issuer.token(t, "ivan@example.com", "dba"), e.ApprovalID); code != http.StatusForbidden {
		t.Fatalf("self-approval: %d", code)
	}
	if code, msg := postDecision(t, w, w.Issuer.token(t, "bob@example.com", "dba"), e.ApprovalID); code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, msg)
	}
	r := okResult(t, callTool(t, cs, "query", args))
	if r.CommandTag != "DELETE 2" {
		t.Fatalf("the approved retry: %+v", r)
	}
	if n := countRows(t, table); n != 3 {
		t.Fatalf("after the approved DELETE: %d rows, want 3", n)
	}
	// Once: the same call again is a new request for approval, and runs nothing.
	e2 := toolError(t, callTool(t, cs, "query", args), "55000")
	if e2.ApprovalID == e.ApprovalID || countRows(t, table) != 3 {
		t.Fatalf("the approval was used twice: %+v", e2)
	}
	if a := getApproval(t, w, e.ApprovalID); a.State != "executed" {
		t.Fatalf("approval %s is %s, want executed", e.ApprovalID, a.State)
	}
}

// In wait mode the call waits for the decision; a client that asked for
// progress hears of the hold (with its ID) while it waits.
func TestMCPApprovalWait(t *testing.T) {
	table := "mcp_wait_docs"
	approvalTable(t, table, 4)
	w := startMCPGateway(t, func(c *config.Config) {
		c.Policy.Approval.Mode = "wait"
		c.Policy.Approval.Actions = []string{"delete"}
	})
	held := make(chan string, 1)
	cs, _ := mcpHTTPWith(t, w, "wait-test", w.Issuer.token(t, "ivan@example.com", "ingest"), &sdk.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *sdk.ProgressNotificationClientRequest) {
			if m := regexp.MustCompile(`held for approval ([a-z2-7]{16})`).FindStringSubmatch(req.Params.Message); m != nil {
				select {
				case held <- m[1]:
				default:
				}
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan *sdk.CallToolResult, 1)
	go func() {
		params := &sdk.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "DELETE FROM " + table + " WHERE id = 1"}}
		params.SetProgressToken("delete-1")
		res, err := cs.CallTool(ctx, params)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	var id string
	select {
	case id = <-held:
	case res := <-done:
		t.Fatalf("the call returned before approval: %+v", res)
	case <-ctx.Done():
		t.Fatal("no progress notification of the hold")
	}
	if countRows(t, table) != 4 {
		t.Fatal("the held DELETE ran before approval")
	}
	if code, msg := postDecision(t, w, w.Issuer.token(t, "bob@example.com", "dba"), id); code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, msg)
	}
	select {
	case res := <-done:
		if r := okResult(t, res); r.CommandTag != "DELETE 1" {
			t.Fatalf("%+v", r)
		}
	case <-ctx.Done():
		t.Fatal("the approved call did not return")
	}
	if countRows(t, table) != 3 {
		t.Fatal("the approved DELETE did not run")
	}
}

func TestMCPRecord(t *testing.T) {
	w := startMCPGateway(t, nil)
	// the agent's own addresses: the record names one of them, not the
	// gateway's loopback connection to itself
	var (
		mu     sync.Mutex
		agents []string
	)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dial := (&net.Dialer{}).DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			mu.Lock()
			agents = append(agents, c.LocalAddr().String())
			mu.Unlock()
		}
		return c, err
	}
	cs, _ := mcpHTTPVia(t, w, "record-test", w.Issuer.token(t, "rita@example.com", "analyst"), nil, tr)
	okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT title FROM documents WHERE id = $1", "params": []any{7}}))
	toolError(t, callTool(t, cs, "query", map[string]any{"sql": "DROP TABLE documents"}), "42501")
	cs.Close()

	var list struct {
		Sessions []sessions.Summary `json:"sessions"`
	}
	var sum *sessions.Summary
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		must0(t, json.Unmarshal([]byte(adminGet(t, w, "/api/v1/sessions?user=rita@example.com")), &list))
		if len(list.Sessions) == 1 && !list.Sessions[0].Active {
			sum = &list.Sessions[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the MCP session's record did not end: %+v", list)
		}
	}
	if sum.ApplicationName != "mcp:record-test" || sum.Database != "vectors" || !slices.Contains(sum.Groups, "analyst") {
		t.Fatalf("session summary: %+v", sum)
	}
	mu.Lock()
	if !slices.Contains(agents, sum.ClientAddr) {
		t.Errorf("client_addr %q is not one of the agent's addresses %v", sum.ClientAddr, agents)
	}
	mu.Unlock()
	var rec struct {
		Events []sessions.Event `json:"events"`
	}
	must0(t, json.Unmarshal([]byte(adminGet(t, w, "/api/v1/sessions/"+sum.ID)), &rec))
	var allowed, denied bool
	for _, ev := range rec.Events {
		if ev.Type != sessions.TypeStatement {
			continue
		}
		switch {
		case ev.SQL == "SELECT title FROM documents WHERE id = $1" && ev.Decision == "allow":
			allowed = len(ev.Params) == 1 && ev.Params[0] != nil && *ev.Params[0] == "7"
		case strings.HasPrefix(ev.SQL, "DROP TABLE documents") && ev.Decision == "deny":
			denied = true
		}
	}
	if !allowed || !denied {
		t.Fatalf("the record lacks the allowed SELECT (with its parameter) or the denied DROP: %+v", rec.Events)
	}
}

func TestMCPAuthentication(t *testing.T) {
	w := startMCPGateway(t, nil)
	post := func(auth string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodPost, w.AdminURL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		must0(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	good := w.Issuer.token(t, "alice@example.com", "analyst")
	for name, auth := range map[string]string{
		"no token":      "",
		"not bearer":    "Basic YWxpY2U6cHc=",
		"bad signature": "Bearer " + tamper(t, good, map[string]any{"groups": []string{"dba"}}),
		"garbage":       "Bearer not-a-jwt",
	} {
		code, h, body := post(auth)
		var e struct{ Error string }
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") ||
			json.Unmarshal([]byte(body), &e) != nil || !strings.HasPrefix(e.Error, "pgwarden: ") {
			t.Errorf("%s: %d %q %s", name, code, h.Get("WWW-Authenticate"), body)
		}
	}
	if code, _, body := post("Bearer " + good); code != http.StatusOK {
		t.Fatalf("a good token: %d %s", code, body)
	}
	// The SDK client fails to connect without a token.
	c := sdk.NewClient(&sdk.Implementation{Name: "anon", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: w.AdminURL + "/mcp"}, nil); err == nil {
		cs.Close()
		t.Fatal("connected without a token")
	}
	// A session's later requests must come from the same identity.
	cs, b := mcpHTTP(t, w, "hijack-test", good)
	okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT 1 AS one"}))
	other := w.Issuer.token(t, "mallory@example.com", "dba")
	b.token.Store(&other)
	if res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT 1"}}); err == nil && !res.IsError {
		t.Fatal("another identity's token was accepted in alice's session")
	}
}

func TestMCPLimitsAndBounds(t *testing.T) {
	t.Run("calls per minute", func(t *testing.T) {
		w := startMCPGateway(t, func(c *config.Config) { c.MCP.Limits.CallsPerMinute = 3 })
		cs, _ := mcpHTTP(t, w, "limit-test", w.Issuer.token(t, "alice@example.com", "analyst"))
		for i := 0; i < 3; i++ {
			okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT 1 AS one"}))
		}
		e := toolError(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT 1 AS one"}), "53400")
		if !strings.Contains(e.Message, "3 calls per minute") {
			t.Fatalf("%+v", e)
		}
		// Per identity: another user is not limited by alice's calls.
		other, _ := mcpHTTP(t, w, "limit-test", w.Issuer.token(t, "bob@example.com", "analyst"))
		okResult(t, callTool(t, other, "query", map[string]any{"sql": "SELECT 1 AS one"}))
	})
	t.Run("rows per hour", func(t *testing.T) {
		w := startMCPGateway(t, func(c *config.Config) { c.MCP.Limits.RowsPerHour = 5 })
		cs, _ := mcpHTTP(t, w, "limit-test", w.Issuer.token(t, "alice@example.com", "analyst"))
		r := okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT id FROM documents ORDER BY id LIMIT 3"}))
		if r.RowCount != 3 {
			t.Fatalf("%+v", r)
		}
		r = okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT id FROM documents ORDER BY id LIMIT 10"}))
		if r.RowCount != 2 || !r.Truncated || r.TruncatedBy != "rows_per_hour" || r.CommandTag != "SELECT 10" {
			t.Fatalf("the budget's last rows: %+v", r)
		}
		e := toolError(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT 1 AS one"}), "53400")
		if !strings.Contains(e.Message, "5 rows per hour") {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("max_rows and max_bytes", func(t *testing.T) {
		w := startMCPGateway(t, func(c *config.Config) { c.MCP.MaxBytes = 1024 })
		cs, _ := mcpHTTP(t, w, "bounds-test", w.Issuer.token(t, "alice@example.com", "analyst"))
		r := okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT id FROM documents ORDER BY id LIMIT 5", "max_rows": 2}))
		if r.RowCount != 2 || !r.Truncated || r.TruncatedBy != "max_rows" || r.CommandTag != "SELECT 5" {
			t.Fatalf("max_rows: %+v", r)
		}
		r = okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT id, body FROM documents ORDER BY id LIMIT 50"}))
		size := 0
		for _, row := range r.Rows {
			b, _ := json.Marshal(row)
			size += len(b)
		}
		if !r.Truncated || r.TruncatedBy != "max_bytes" || r.RowCount == 0 || r.RowCount >= 50 || size > 1024+64 {
			t.Fatalf("max_bytes: %d rows, %d bytes, %+v", r.RowCount, size, r.TruncatedBy)
		}
		okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT 1 AS one"})) // the connection is still in sync
		toolError(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT 1", "max_rows": 100000}), "22023")
	})
}

func TestMCPStdio(t *testing.T) {
	w := startMCPGateway(t, nil)
	bin := pgwardenBinary(t)
	cmd := exec.Command(bin, "mcp", "--gateway", w.Addr, "--database", "vectors", "--config", os.DevNull)
	cmd.Env = append(os.Environ(), "PGWARDEN_TOKEN="+w.Issuer.token(t, "stella@example.com", "analyst"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: "stdio-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to pgwarden mcp: %v\n%s", err, stderr.String())
	}
	tools, err := cs.ListTools(ctx, nil)
	must0(t, err)
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
		if tl.Description == "" || tl.InputSchema == nil {
			t.Fatalf("tool %s has no description or schema", tl.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"describe_table", "list_tables", "query", "similarity_search"}) {
		t.Fatalf("tools: %v", names)
	}
	r := okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT email FROM customers WHERE id = 1"}))
	if !slices.Equal(r.MaskedColumns, []string{"email"}) {
		t.Fatalf("stdio result: %+v", r)
	}
	toolError(t, callTool(t, cs, "query", map[string]any{"sql": "DELETE FROM customers"}), "42501")
	must0(t, cs.Close())

	var list struct {
		Sessions []sessions.Summary `json:"sessions"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		must0(t, json.Unmarshal([]byte(adminGet(t, w, "/api/v1/sessions?user=stella@example.com")), &list))
		if len(list.Sessions) == 1 && list.Sessions[0].ApplicationName == "mcp:stdio-test" && !list.Sessions[0].Active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stdio session's record: %+v\n%s", list, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "eyJ") {
		t.Fatal("the token reached the log")
	}
}

// The masking notice goes to MCP sessions only: a psql or pgx session sees
// the gateway exactly as before.
func TestMCPMaskNoticeOnlyForMCPSessions(t *testing.T) {
	w := startGateway(t, nil)
	for _, app := range []string{"psql", "mcp:notice-test"} {
		cc := w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst"))
		cc.RuntimeParams["application_name"] = app
		var notices []string
		cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message+" | "+n.Detail) }
		conn := w.connectWith(t, cc)
		var id int64
		var email string
		must0(t, conn.QueryRow(context.Background(), "SELECT id, email FROM customers WHERE id = 1").Scan(&id, &email))
		must0(t, conn.QueryRow(context.Background(), "SELECT id FROM customers WHERE id = 1").Scan(&id))
		switch app {
		case "psql":
			if len(notices) != 0 {
				t.Fatalf("a psql session got %q", notices)
			}
		default:
			want := "pgwarden: masked columns in this result: email | pgwarden-masked-columns: masked=1 scanned="
			if len(notices) != 1 || notices[0] != want {
				t.Fatalf("an MCP session got %q, want one %q (and none for the unmasked result)", notices, want)
			}
		}
	}
}

// An agent's own delegated token (RFC 8693 act) over /mcp: the record
// names the person and the agent, and the agent gets only the groups both
// hold — here analyst, not the person's dba.
func TestMCPDelegatedToken(t *testing.T) {
	w := startMCPGateway(t, nil)
	tok := w.Issuer.delegated(t, "paula@example.com", []string{"analyst", "dba"}, "agent-42", []string{"analyst"})
	cs, _ := mcpHTTP(t, w, "delegated-test", tok)
	okResult(t, callTool(t, cs, "query", map[string]any{"sql": "SELECT title FROM documents WHERE id = $1", "params": []any{3}}))
	// dba could drop; the intersection cannot.
	toolError(t, callTool(t, cs, "query", map[string]any{"sql": "DROP TABLE documents"}), "42501")
	cs.Close()

	var list struct {
		Sessions []sessions.Summary `json:"sessions"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		must0(t, json.Unmarshal([]byte(adminGet(t, w, "/api/v1/sessions?user=paula@example.com")), &list))
		if len(list.Sessions) == 1 && !list.Sessions[0].Active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delegated MCP session's record did not end: %+v", list)
		}
	}
	s := list.Sessions[0]
	if s.Actor != "agent-42" || s.ApplicationName != "mcp:delegated-test" || !slices.Equal(s.Groups, []string{"analyst"}) {
		t.Fatalf("session summary: %+v", s)
	}
	var rec struct {
		Events []sessions.Event `json:"events"`
	}
	must0(t, json.Unmarshal([]byte(adminGet(t, w, "/api/v1/sessions/"+s.ID)), &rec))
	for _, ev := range rec.Events {
		if ev.User != "paula@example.com" || ev.Actor != "agent-42" {
			t.Fatalf("event without the user and actor: %+v", ev)
		}
	}
}

package integration

// The MCP endpoint driven by the official TypeScript SDK's client
// (@modelcontextprotocol/sdk, npm, locked in testdata/mcp/node), the client
// most agents embed: over streamable HTTP at /mcp on the admin listener, and
// over stdio with the real `pgwarden mcp` binary. drive.mjs runs a JSON plan
// of tool calls and prints every result; the tests compare what the agent
// got with what PostgreSQL and a pgx session through the gateway give:
//
//   - tools/list: the four tools, their descriptions and input schemas;
//   - masked rows equal to pgx's through the gateway, masked_columns as the
//     rules say, no raw PII anywhere in the output (dba's unmasked read is
//     the control);
//   - a refused write (42501) as a tool error, the row still there;
//   - max_rows and the server's bound, similarity_search (k, default k,
//     like_id, filter, distances);
//   - 401 with a Bearer challenge without a token and with a bad one;
//   - the record: application_name mcp:<client name>, the statements;
//   - a retry-mode hold (55000 with the approval ID) approved by a second
//     person mid-session, then run once; calls_per_minute, rows_per_hour.
//
// Without node or the installed SDK the tests skip, unless CI is set, when
// they fail (scripts/setup-clients.sh installs them).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/devstack"
	"github.com/pgwarden/pgwarden/sessions"
)

// ---- the driver ---------------------------------------------------------------

// tsPlan is drive.mjs's input.
type tsPlan struct {
	Client    tsClientInfo `json:"client"`
	Transport tsTransport  `json:"transport"`
	Calls     []tsCall     `json:"calls,omitempty"`
	TimeoutMS int          `json:"timeout_ms,omitempty"`
}

type tsClientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// tsTransport is {"http": url, "token": t} (no token: no Authorization
// header) or {"stdio": {...}}.
type tsTransport struct {
	HTTP  string   `json:"http,omitempty"`
	Token *string  `json:"token,omitempty"`
	Stdio *tsStdio `json:"stdio,omitempty"`
}

type tsStdio struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
}

// tsCall is one tool call, or a pause until a file exists.
type tsCall struct {
	Tool        string         `json:"tool,omitempty"`
	Arguments   map[string]any `json:"arguments,omitempty"`
	WaitForFile string         `json:"wait_for_file,omitempty"`
}

// tsOutput is what drive.mjs prints.
type tsOutput struct {
	Server *tsClientInfo `json:"server"`
	Tools  []struct {
		Name         string         `json:"name"`
		Description  string         `json:"description"`
		InputSchema  map[string]any `json:"input_schema"`
		OutputSchema map[string]any `json:"output_schema"`
	} `json:"tools"`
	Results         []tsResult `json:"results"`
	TransportError  *tsError   `json:"transport_error"`
	TransportEvents []string   `json:"transport_events"`
	HTTP            []struct {
		Method          string  `json:"method"`
		Status          int     `json:"status"`
		WWWAuthenticate *string `json:"www_authenticate"`
	} `json:"http"`
	Stderr string `json:"stderr"`
}

type tsError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Code    *int   `json:"code"` // an HTTP status or a JSON-RPC error code
}

func (e *tsError) String() string {
	if e == nil {
		return "<none>"
	}
	if e.Code != nil {
		return fmt.Sprintf("%s %d: %s", e.Name, *e.Code, e.Message)
	}
	return e.Name + ": " + e.Message
}

// tsResult is one tool call's result as the SDK's Client.callTool returned
// it (Error: the call itself failed, e.g. a JSON-RPC error, or
// structuredContent that does not match an outputSchema the tool declares).
type tsResult struct {
	Tool       string          `json:"tool"`
	IsError    bool            `json:"is_error"`
	Structured json.RawMessage `json:"structured"`
	Text       string          `json:"text"`
	Error      *tsError        `json:"error"`
}

// mcpRows is the structured result of query and similarity_search. Values
// keep JSON numbers as written (json.Number).
type mcpRows struct {
	Columns     []string `json:"columns"`
	Rows        [][]any  `json:"rows"`
	RowCount    int      `json:"row_count"`
	Truncated   bool     `json:"truncated"`
	TruncatedBy string   `json:"truncated_by"`
	CommandTag  string   `json:"command_tag"`
}

// mcpToolError is the structured content of a refused call.
type mcpToolError struct {
	SQLState   string `json:"sqlstate"`
	Message    string `json:"message"`
	ApprovalID string `json:"approval_id"`
}

type mcpTable struct {
	Schema        string   `json:"schema"`
	Name          string   `json:"name"`
	MaskedColumns []string `json:"masked_columns"`
}

type mcpDescribe struct {
	Schema  string `json:"schema"`
	Name    string `json:"name"`
	Columns []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Nullable bool   `json:"nullable"`
		Masked   bool   `json:"masked"`
	} `json:"columns"`
}

// tsDriver is node and drive.mjs, or a skip (a failure under CI).
func tsDriver(t *testing.T) (node, script string) {
	t.Helper()
	node = needTool(t, "node", "apt-get install nodejs")
	dir := filepath.Join(filepath.Dir(compatDir(t)), "mcp", "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		missing(t, "the MCP TypeScript SDK is not installed (run scripts/setup-clients.sh)")
	}
	return node, filepath.Join(dir, "drive.mjs")
}

// drive runs plan through drive.mjs and returns its output and the raw
// stdout+stderr (for the raw-PII checks).
func drive(t *testing.T, plan tsPlan) (*tsOutput, string) {
	t.Helper()
	node, script := tsDriver(t)
	out, raw, err := runDrive(context.Background(), node, script, plan)
	if err != nil {
		t.Fatal(err)
	}
	return out, raw
}

// runDrive is drive without t, for a plan that runs in its own goroutine;
// cancelling ctx kills node.
func runDrive(ctx context.Context, node, script string, plan tsPlan) (*tsOutput, string, error) {
	if plan.Client.Name == "" {
		plan.Client = tsClientInfo{Name: "pgwarden-ts-test", Version: "1.0.0"}
	}
	if plan.TimeoutMS == 0 {
		plan.TimeoutMS = 30000
	}
	in, err := json.Marshal(plan)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = filepath.Dir(script)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("drive.mjs: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	var out tsOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, "", fmt.Errorf("drive.mjs output is not JSON: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return &out, stdout.String() + stderr.String(), nil
}

// httpPlan is a plan over streamable HTTP to w's /mcp with token.
func (w *gw) httpPlan(client, token string, calls ...tsCall) tsPlan {
	return tsPlan{
		Client:    tsClientInfo{Name: client, Version: "1.0.0"},
		Transport: tsTransport{HTTP: w.AdminURL + "/mcp", Token: &token},
		Calls:     calls,
	}
}

// connected fails unless the session was established and every call got
// an answer.
func (o *tsOutput) connected(t *testing.T, calls int) {
	t.Helper()
	if o.TransportError != nil {
		t.Fatalf("the TypeScript client could not use the session: %v (events %q, http %+v, stderr %s)", o.TransportError, o.TransportEvents, o.HTTP, o.Stderr)
	}
	if o.Server == nil || o.Server.Name == "" {
		t.Fatalf("initialize returned no serverInfo: %+v", o.Server)
	}
	if len(o.Results) != calls {
		t.Fatalf("%d results for %d calls (events %q)", len(o.Results), calls, o.TransportEvents)
	}
}

// ok decodes a successful result's structured content into v and checks
// that the text content is the same JSON.
func (r tsResult) ok(t *testing.T, v any) {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("%s: the SDK client refused the result: %v", r.Tool, r.Error)
	}
	if r.IsError {
		t.Fatalf("%s: tool error: %s (%s)", r.Tool, r.Text, r.Structured)
	}
	if len(r.Structured) == 0 || string(r.Structured) == "null" {
		t.Fatalf("%s: no structured content (text %q)", r.Tool, r.Text)
	}
	var a, b any
	if err := json.Unmarshal(r.Structured, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(r.Text), &b); err != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: the text content is not the structured content's JSON (%v):\ntext %s\nstructured %s", r.Tool, err, r.Text, r.Structured)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Structured))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: structured content %s: %v", r.Tool, r.Structured, err)
	}
}

// refused checks a tool error carrying sqlstate and returns its structured content.
func (r tsResult) refused(t *testing.T, sqlstate string) mcpToolError {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("%s: the call failed instead of returning a tool error: %v", r.Tool, r.Error)
	}
	if !r.IsError {
		t.Fatalf("%s: not a tool error, want SQLSTATE %s: %s", r.Tool, sqlstate, r.Structured)
	}
	var e mcpToolError
	if err := json.Unmarshal(r.Structured, &e); err != nil {
		t.Fatalf("%s: structured content of the error %s: %v", r.Tool, r.Structured, err)
	}
	if e.SQLState != sqlstate || !strings.HasPrefix(e.Message, "pgwarden: ") {
		t.Fatalf("%s: error %+v, want SQLSTATE %s with a pgwarden: message", r.Tool, e, sqlstate)
	}
	// The first line is what psql prints; DETAIL, HINT and what to do next follow.
	if first, _, _ := strings.Cut(r.Text, "\n"); first != e.Message+" (SQLSTATE "+sqlstate+")" {
		t.Fatalf("%s: error text %q, want its first line \"%s (SQLSTATE %s)\"", r.Tool, r.Text, e.Message, sqlstate)
	}
	return e
}

// cells renders rows as text the way textRows renders pgx values.
func cells(rows [][]any) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = make([]string, len(r))
		for j, v := range r {
			out[i][j] = fmt.Sprint(v)
		}
	}
	return out
}

// maskedColumnsOf is what the masking rules mask in schema.table, from the
// configuration (a rule without a table applies to every table).
func maskedColumnsOf(cfg *config.Config, table string, columns []string) []string {
	var out []string
	for _, c := range columns {
		for _, r := range cfg.Masking.Rules {
			if r.Column == c && (r.Table == "" || r.Table == table) {
				out = append(out, c)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// columnsOf lists a table's columns upstream, in order.
func columnsOf(t *testing.T, table string) []string {
	t.Helper()
	rows := must(direct(t).Query(context.Background(),
		"SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", table))
	var out []string
	for rows.Next() {
		var n string
		must0(t, rows.Scan(&n))
		out = append(out, n)
	}
	must0(t, rows.Err())
	return out
}

// ---- the tests ----------------------------------------------------------------

var mcpToolNames = []string{"describe_table", "list_tables", "query", "similarity_search"}

// TestMCPTypeScriptHTTP drives /mcp over streamable HTTP.
func TestMCPTypeScriptHTTP(t *testing.T) {
	tsDriver(t)
	w := startGateway(t, func(c *config.Config) { c.MCP.Enabled = true })
	cw := computeWant(t, w)
	ctx := context.Background()
	d := direct(t)

	t.Run("tools/list", func(t *testing.T) {
		out, _ := drive(t, w.httpPlan("ts-lister", w.Issuer.token(t, "mcp-lister@example.com", "analyst")))
		out.connected(t, 0)
		var names []string
		schemas := map[string]map[string]any{}
		for _, tool := range out.Tools {
			names = append(names, tool.Name)
			schemas[tool.Name] = tool.InputSchema
			if strings.TrimSpace(tool.Description) == "" {
				t.Errorf("tool %s has no description", tool.Name)
			}
			if tool.InputSchema["type"] != "object" {
				t.Errorf("tool %s: input schema %v is not an object schema", tool.Name, tool.InputSchema)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, mcpToolNames) {
			t.Fatalf("tools %v, want %v", names, mcpToolNames)
		}
		for tool, want := range map[string]struct{ props, required []string }{
			"list_tables":       {nil, nil},
			"describe_table":    {[]string{"table"}, []string{"table"}},
			"query":             {[]string{"sql", "params", "max_rows"}, []string{"sql"}},
			"similarity_search": {[]string{"table", "column", "vector", "like_id", "k", "filter"}, []string{"table", "column"}},
		} {
			s := schemas[tool]
			props, _ := s["properties"].(map[string]any)
			for _, p := range want.props {
				if _, ok := props[p]; !ok {
					t.Errorf("%s: input schema has no property %q: %v", tool, p, s)
				}
			}
			var req []string
			if r, ok := s["required"].([]any); ok {
				for _, x := range r {
					req = append(req, fmt.Sprint(x))
				}
			}
			slices.Sort(req)
			slices.Sort(want.required)
			if !slices.Equal(req, want.required) {
				t.Errorf("%s: required %v, want %v", tool, req, want.required)
			}
		}
	})

	t.Run("masked", func(t *testing.T) {
		out, raw := drive(t, w.httpPlan("ts-analyst", w.Issuer.token(t, "mcp-analyst@example.com", "analyst"),
			tsCall{Tool: "list_tables"},
			tsCall{Tool: "describe_table", Arguments: map[string]any{"table": "customers"}},
			tsCall{Tool: "query", Arguments: map[string]any{"sql": maskedSQL}},
		))
		out.connected(t, 3)
		cw.noRawPII(t, "the TypeScript client's output", raw)

		var lt struct {
			Tables []mcpTable `json:"tables"`
		}
		out.Results[0].ok(t, &lt)
		found := map[string]mcpTable{}
		for _, tb := range lt.Tables {
			found[tb.Schema+"."+tb.Name] = tb
		}
		for _, table := range []string{"public.customers", "public.documents"} {
			tb, ok := found[table]
			if !ok {
				t.Fatalf("list_tables has no %s: %+v", table, lt.Tables)
			}
			got := slices.Clone(tb.MaskedColumns)
			slices.Sort(got)
			if want := maskedColumnsOf(w.Cfg, table, columnsOf(t, table)); !slices.Equal(got, want) {
				t.Errorf("list_tables: %s masked_columns %v, want %v (the masking rules)", table, got, want)
			}
		}

		var dt mcpDescribe
		out.Results[1].ok(t, &dt)
		if dt.Schema != "public" || dt.Name != "customers" {
			t.Fatalf("describe_table customers named %s.%s", dt.Schema, dt.Name)
		}
		wantCols := columnsOf(t, "public.customers")
		masked := maskedColumnsOf(w.Cfg, "public.customers", wantCols)
		var gotCols []string
		for _, c := range dt.Columns {
			gotCols = append(gotCols, c.Name)
			if c.Masked != slices.Contains(masked, c.Name) {
				t.Errorf("describe_table customers: column %s masked=%v, the rules say %v", c.Name, c.Masked, !c.Masked)
			}
			switch c.Name {
			case "id":
				if c.Type != "bigint" || c.Nullable {
					t.Errorf("describe_table customers.id: %+v, want bigint NOT NULL", c)
				}
			case "email":
				if c.Type != "text" || !c.Nullable {
					t.Errorf("describe_table customers.email: %+v, want nullable text", c)
				}
			}
		}
		if !slices.Equal(gotCols, wantCols) {
			t.Fatalf("describe_table customers columns %v, want %v", gotCols, wantCols)
		}

		var q mcpRows
		out.Results[2].ok(t, &q)
		if !slices.Equal(q.Columns, []string{"id", "email", "ssn"}) || q.RowCount != 10 || q.Truncated || q.CommandTag != "SELECT 10" {
			t.Fatalf("query: columns %v, row_count %d, truncated %v, tag %q", q.Columns, q.RowCount, q.Truncated, q.CommandTag)
		}
		if got := cells(q.Rows); !slices.EqualFunc(got, cw.masked, slices.Equal) {
			t.Fatalf("masked rows over MCP\n%v\nwant (pgx through pgwarden as analyst)\n%v", got, cw.masked)
		}
	})

	// dba has unmask: the same read returns raw values, so the checks above
	// look at real column data.
	t.Run("unmasked control", func(t *testing.T) {
		out, raw := drive(t, w.httpPlan("ts-dba", w.Issuer.token(t, "mcp-dba@example.com", "dba"),
			tsCall{Tool: "query", Arguments: map[string]any{"sql": maskedSQL}}))
		out.connected(t, 1)
		var q mcpRows
		out.Results[0].ok(t, &q)
		if len(q.Rows) != 10 || slices.EqualFunc(cells(q.Rows), cw.masked, slices.Equal) {
			t.Fatalf("as dba: rows %v are the masked ones", q.Rows)
		}
		if !slices.ContainsFunc(cw.raw, func(v string) bool { return strings.Contains(raw, v) }) {
			t.Fatal("as dba (unmask): no raw value in the output, so the raw-PII check proves nothing")
		}
	})

	t.Run("refused write", func(t *testing.T) {
		out, _ := drive(t, w.httpPlan("ts-writer", w.Issuer.token(t, "mcp-writer@example.com", "analyst"),
			tsCall{Tool: "query", Arguments: map[string]any{"sql": deniedSQL}},
			tsCall{Tool: "query", Arguments: map[string]any{"sql": "SELECT 1 AS one"}},
		))
		out.connected(t, 2)
		out.Results[0].refused(t, "42501")
		var q mcpRows
		out.Results[1].ok(t, &q)
		if got := cells(q.Rows); !slices.EqualFunc(got, [][]string{{"1"}}, slices.Equal) {
			t.Fatalf("SELECT 1 after the refusal: %v", got)
		}
		var n int
		must0(t, d.QueryRow(ctx, "SELECT count(*) FROM documents WHERE id = 1").Scan(&n))
		if n != 1 {
			t.Fatal("document 1 is gone upstream after a refused DELETE over MCP")
		}
	})

	t.Run("max_rows", func(t *testing.T) {
		var total int
		must0(t, d.QueryRow(ctx, "SELECT count(*) FROM documents").Scan(&total))
		out, _ := drive(t, w.httpPlan("ts-pager", w.Issuer.token(t, "mcp-pager@example.com", "analyst"),
			tsCall{Tool: "query", Arguments: map[string]any{"sql": "SELECT id FROM documents WHERE id > $1 ORDER BY id", "params": []any{10}, "max_rows": 3}},
			tsCall{Tool: "query", Arguments: map[string]any{"sql": "SELECT id FROM documents ORDER BY id", "max_rows": 1000000}},
		))
		out.connected(t, 2)
		var q mcpRows
		out.Results[0].ok(t, &q)
		if got := cells(q.Rows); !slices.EqualFunc(got, [][]string{{"11"}, {"12"}, {"13"}}, slices.Equal) {
			t.Fatalf("max_rows 3 with $1 = 10: rows %v", got)
		}
		if q.RowCount != 3 || !q.Truncated || q.TruncatedBy != "max_rows" || q.CommandTag != fmt.Sprintf("SELECT %d", total-10) {
			t.Fatalf("max_rows 3: row_count %d, truncated %v by %q, tag %q (table has %d rows)", q.RowCount, q.Truncated, q.TruncatedBy, q.CommandTag, total)
		}
		// Above the server's mcp.max_rows (200 by default): refused, not silently cut.
		out.Results[1].refused(t, "22023")
	})

	t.Run("similarity_search", func(t *testing.T) {
		vec := devstack.Embed(compatKNNText)
		out, _ := drive(t, w.httpPlan("ts-searcher", w.Issuer.token(t, "mcp-searcher@example.com", "analyst"),
			tsCall{Tool: "similarity_search", Arguments: map[string]any{"table": "documents", "column": "embedding", "vector": vec, "k": 5}},
			tsCall{Tool: "similarity_search", Arguments: map[string]any{"table": "documents", "column": "embedding", "vector": vec}},
			tsCall{Tool: "similarity_search", Arguments: map[string]any{"table": "documents", "column": "embedding", "like_id": cw.knn[0], "k": 3}},
		))
		out.connected(t, 3)
		var s, def, like mcpRows
		out.Results[0].ok(t, &s)
		out.Results[1].ok(t, &def)
		out.Results[2].ok(t, &like)
		if s.RowCount != 5 || len(s.Rows) != 5 {
			t.Fatalf("k=5 returned row_count %d, %d rows", s.RowCount, len(s.Rows))
		}
		if def.RowCount != 5 {
			t.Fatalf("the default k returned %d rows, want 5", def.RowCount)
		}
		idCol, distCol := slices.Index(s.Columns, "id"), slices.Index(s.Columns, "distance")
		if idCol < 0 || distCol < 0 {
			t.Fatalf("similarity_search columns %v have no id and distance", s.Columns)
		}
		var gotIDs []int64
		var dists []float64
		for _, r := range s.Rows {
			id, err := r[idCol].(json.Number).Int64()
			must0(t, err)
			dist, err := r[distCol].(json.Number).Float64()
			must0(t, err)
			gotIDs, dists = append(gotIDs, id), append(dists, dist)
		}
		if !slices.IsSorted(dists) {
			t.Fatalf("distances %v are not ascending", dists)
		}
		if slices.Contains(s.Columns, "embedding") {
			t.Errorf("similarity_search returns the vector column: %v", s.Columns)
		}
		if !slices.Equal(gotIDs, cw.knn) {
			t.Fatalf("similarity_search ids %v, direct kNN (<->) %v", gotIDs, cw.knn)
		}
		// The distances are the L2 distances PostgreSQL computes.
		for i, id := range gotIDs {
			var want float64
			must0(t, d.QueryRow(ctx, "SELECT embedding <-> $2::vector FROM documents WHERE id = $1", id, cw.vec).Scan(&want))
			if math.Abs(want-dists[i]) > 1e-4 {
				t.Fatalf("id %d: distance %v, PostgreSQL says %v", id, dists[i], want)
			}
		}
		// like_id: the nearest neighbours of that row's vector, the row itself excluded.
		wantLike := ids(t, must(d.Query(ctx, "SELECT id FROM documents WHERE id <> $1 ORDER BY embedding <-> (SELECT embedding FROM documents WHERE id = $1) LIMIT 3", cw.knn[0])))
		if got := searchIDs(t, like); !slices.Equal(got, wantLike) {
			t.Fatalf("like_id %d: ids %v, direct %v", cw.knn[0], got, wantLike)
		}
	})

	// filter and exact distances on a table whose answer is known: row i
	// has category a (even i) or b and the vector [i, 0, 0].
	t.Run("similarity_search filter", func(t *testing.T) {
		const table = "mcp_ts_vec"
		for _, sql := range []string{
			"DROP TABLE IF EXISTS " + table,
			"CREATE TABLE " + table + " (id int PRIMARY KEY, category text, embedding vector(3))",
			"INSERT INTO " + table + " SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, ARRAY[g, 0, 0]::vector FROM generate_series(1, 20) g",
			"GRANT SELECT ON " + table + " TO vector_reader",
		} {
			must(d.Exec(ctx, sql))
		}
		t.Cleanup(func() { d.Exec(context.Background(), "DROP TABLE IF EXISTS "+table) })
		out, _ := drive(t, w.httpPlan("ts-filter", w.Issuer.token(t, "mcp-filter@example.com", "analyst"),
			tsCall{Tool: "similarity_search", Arguments: map[string]any{"table": table, "column": "embedding", "vector": []float64{0, 0, 0}, "k": 3, "filter": map[string]any{"category": "a"}}},
			tsCall{Tool: "similarity_search", Arguments: map[string]any{"table": "public." + table, "column": "embedding", "vector": []float64{10.2, 0, 0}, "k": 2, "filter": map[string]any{"category": "b"}}},
		))
		out.connected(t, 2)
		for i, want := range []struct {
			ids   []int64
			dists []float64
		}{
			{[]int64{2, 4, 6}, []float64{2, 4, 6}},
			{[]int64{11, 9}, []float64{0.8, 1.2}},
		} {
			var r mcpRows
			out.Results[i].ok(t, &r)
			if !slices.Equal(r.Columns, []string{"id", "category", "distance"}) {
				t.Fatalf("columns %v, want id, category, distance", r.Columns)
			}
			if got := searchIDs(t, r); !slices.Equal(got, want.ids) {
				t.Fatalf("search %d: ids %v, want %v", i, got, want.ids)
			}
			for j, row := range r.Rows {
				dist := must(row[2].(json.Number).Float64())
				if math.Abs(dist-want.dists[j]) > 1e-5 {
					t.Fatalf("search %d: row %v: distance %v, want %v", i, row, dist, want.dists[j])
				}
			}
		}
	})

	t.Run("no token", func(t *testing.T) {
		out, _ := drive(t, tsPlan{Transport: tsTransport{HTTP: w.AdminURL + "/mcp"}})
		unauthorized(t, out)
	})

	t.Run("bad token", func(t *testing.T) {
		forged := w.Issuer.sign(t, w.Issuer.claims("mcp-forger@example.com", "dba"), w.Issuer.other, "test-key-1")
		out, _ := drive(t, w.httpPlan("ts-forger", forged, tsCall{Tool: "list_tables"}))
		unauthorized(t, out)
		if h := *out.HTTP[len(out.HTTP)-1].WWWAuthenticate; !strings.Contains(h, `error="invalid_token"`) {
			t.Errorf("a forged token's challenge %q does not say invalid_token", h)
		}
		expired := w.Issuer.claims("mcp-late@example.com", "analyst")
		expired["exp"] = time.Now().Add(-time.Hour).Unix()
		out, _ = drive(t, w.httpPlan("ts-late", w.Issuer.sign(t, expired, nil, ""), tsCall{Tool: "list_tables"}))
		unauthorized(t, out)
	})

	t.Run("record", func(t *testing.T) {
		const user, client = "mcp-recorded@example.com", "ts-recorded-agent"
		sql := "SELECT id, title FROM documents WHERE id = 7"
		out, _ := drive(t, w.httpPlan(client, w.Issuer.token(t, user, "analyst"),
			tsCall{Tool: "query", Arguments: map[string]any{"sql": sql}},
			tsCall{Tool: "query", Arguments: map[string]any{"sql": deniedSQL}},
		))
		out.connected(t, 2)
		var q mcpRows
		out.Results[0].ok(t, &q)
		out.Results[1].refused(t, "42501")
		_, evs := sessionOf(t, w.Cfg.Store.Dir, user)
		assertMCPRecord(t, evs, "mcp:"+client, []recordedStmt{{sql, "allow"}, {deniedSQL, "deny"}})
	})
}

// searchIDs is the id column of a similarity_search result.
func searchIDs(t *testing.T, r mcpRows) []int64 {
	t.Helper()
	i := slices.Index(r.Columns, "id")
	if i < 0 {
		t.Fatalf("no id column in %v", r.Columns)
	}
	var out []int64
	for _, row := range r.Rows {
		n, ok := row[i].(json.Number)
		if !ok {
			t.Fatalf("id %v (%T) is not a JSON number", row[i], row[i])
		}
		out = append(out, must(n.Int64()))
	}
	return out
}

// unauthorized checks that the client was turned away with HTTP 401 and a
// Bearer challenge before any session existed.
func unauthorized(t *testing.T, out *tsOutput) {
	t.Helper()
	if out.TransportError == nil || out.TransportError.Code == nil || *out.TransportError.Code != 401 {
		t.Fatalf("want the SDK's HTTP 401 error, got %v (server %+v, results %+v)", out.TransportError, out.Server, out.Results)
	}
	if out.Server != nil || len(out.Results) != 0 {
		t.Fatalf("a session was established: server %+v, results %+v", out.Server, out.Results)
	}
	if len(out.HTTP) == 0 {
		t.Fatal("no HTTP response recorded")
	}
	last := out.HTTP[len(out.HTTP)-1]
	if last.Status != 401 || last.WWWAuthenticate == nil || !strings.HasPrefix(*last.WWWAuthenticate, "Bearer") {
		t.Fatalf("response %+v, want 401 with WWW-Authenticate: Bearer", last)
	}
}

type recordedStmt struct{ sql, decision string }

// assertMCPRecord checks a recorded session's application_name and that
// its statements include want, in order.
func assertMCPRecord(t *testing.T, evs []sessions.Event, app string, want []recordedStmt) {
	t.Helper()
	if len(evs) == 0 || evs[0].Type != "session_start" {
		t.Fatalf("the record does not start with session_start: %+v", evs)
	}
	if evs[0].ApplicationName != app {
		t.Fatalf("recorded application_name %q, want %q", evs[0].ApplicationName, app)
	}
	var got []recordedStmt
	for _, e := range stmtEvents(evs) {
		got = append(got, recordedStmt{e.SQL, e.Decision})
	}
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("recorded statements %+v, want %+v among them in order", got, want)
	}
}

// TestMCPTypeScriptApproval: in retry mode a held DELETE over MCP is a tool
// error naming the approval; once a second person approves it, the
// agent's identical call runs it, once.
func TestMCPTypeScriptApproval(t *testing.T) {
	tsDriver(t)
	w := startGateway(t, func(c *config.Config) {
		c.MCP.Enabled = true
		c.Policy.Approval.Mode = "retry"
	})
	const table, n = "mcp_ts_held", 12
	approvalTable(t, table, n)
	sql := "DELETE FROM " + table
	gate := filepath.Join(t.TempDir(), "approved")
	type done struct {
		out *tsOutput
		err error
	}
	res := make(chan done, 1)
	node, script := tsDriver(t)
	plan := w.httpPlan("ts-dba-agent", w.Issuer.token(t, requester, "dba"),
		tsCall{Tool: "query", Arguments: map[string]any{"sql": sql}},
		tsCall{WaitForFile: gate},
		tsCall{Tool: "query", Arguments: map[string]any{"sql": sql}},
		tsCall{Tool: "query", Arguments: map[string]any{"sql": sql}},
	)
	runCtx, stop := context.WithCancel(context.Background())
	go func() {
		out, _, err := runDrive(runCtx, node, script, plan)
		res <- done{out, err}
	}()
	// A test that fails before the agent finishes does not leave it running.
	t.Cleanup(func() {
		stop()
		<-res
	})

	// The first call is held: a pending approval by the requester appears.
	ctx := context.Background()
	ac := &approvals.Client{BaseURL: w.AdminURL, Token: w.Issuer.token(t, approver, "dba")}
	var held approvals.Approval
	deadline := time.Now().Add(30 * time.Second)
	for held.ID == "" {
		list, err := ac.List(ctx, "pending")
		must0(t, err)
		for _, a := range list {
			if a.Requester == requester && a.SQL == sql {
				held = a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending approval for %q (list %+v)", sql, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := countRows(t, table); c != n {
		t.Fatalf("rows changed before approval: %d of %d", c, n)
	}
	must(ac.Approve(ctx, held.ID, "ok for the agent"))
	must0(t, os.WriteFile(gate, nil, 0o600))

	var r done
	select {
	case r = <-res:
		res <- r // for the cleanup
	case <-time.After(90 * time.Second):
		t.Fatal("drive.mjs did not finish")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.out.connected(t, 3)
	e := r.out.Results[0].refused(t, "55000")
	if e.ApprovalID != held.ID || !strings.Contains(r.out.Results[0].Text, held.ID) {
		t.Fatalf("held call: approval_id %q, text %q, want %s", e.ApprovalID, r.out.Results[0].Text, held.ID)
	}
	var q mcpRows
	r.out.Results[1].ok(t, &q)
	if q.CommandTag != fmt.Sprintf("DELETE %d", n) {
		t.Fatalf("the approved re-run: command tag %q, want DELETE %d", q.CommandTag, n)
	}
	if c := countRows(t, table); c != 0 {
		t.Fatalf("%d rows left after the approved re-run", c)
	}
	// The approval was used: the third identical call is held again.
	if e3 := r.out.Results[2].refused(t, "55000"); e3.ApprovalID == "" || e3.ApprovalID == held.ID {
		t.Fatalf("the third call reused approval %s: %+v", held.ID, e3)
	}
	if a := getApproval(t, w, held.ID); a.State != approvals.Executed {
		t.Fatalf("approval after the re-run: %+v", a)
	}
}

// TestMCPTypeScriptStdio runs the real `pgwarden mcp` as the TypeScript
// SDK's StdioClientTransport spawns a local agent's server.
func TestMCPTypeScriptStdio(t *testing.T) {
	tsDriver(t)
	bin := pgwardenBinary(t)
	w := startGateway(t, func(c *config.Config) { c.MCP.Enabled = true })
	cw := computeWant(t, w)
	const user, client = "mcp-stdio@example.com", "ts-stdio-agent"
	token := w.Issuer.token(t, user, "analyst")
	out, raw := drive(t, tsPlan{
		Client: tsClientInfo{Name: client, Version: "1.0.0"},
		Transport: tsTransport{Stdio: &tsStdio{
			Command: bin,
			Args:    []string{"mcp", "--gateway", w.Addr, "--database", "vectors", "--config", os.DevNull},
			Env:     map[string]string{"PGWARDEN_TOKEN": token, "HOME": t.TempDir()},
		}},
		Calls: []tsCall{
			{Tool: "list_tables"},
			{Tool: "query", Arguments: map[string]any{"sql": maskedSQL}},
		},
	})
	out.connected(t, 2)
	if len(out.TransportEvents) != 0 {
		t.Fatalf("the stdio transport reported %q (anything but JSON-RPC on stdout breaks it; stderr %s)", out.TransportEvents, out.Stderr)
	}
	cw.noRawPII(t, "the stdio session's output (stdout and the server's stderr)", raw)
	if strings.Contains(raw, token) {
		t.Fatal("the token reached the output or the server's log")
	}
	var lt struct {
		Tables []mcpTable `json:"tables"`
	}
	out.Results[0].ok(t, &lt)
	i := slices.IndexFunc(lt.Tables, func(tb mcpTable) bool { return tb.Schema == "public" && tb.Name == "customers" })
	if i < 0 {
		t.Fatalf("list_tables has no public.customers: %+v", lt.Tables)
	}
	got := slices.Clone(lt.Tables[i].MaskedColumns)
	slices.Sort(got)
	if want := maskedColumnsOf(w.Cfg, "public.customers", columnsOf(t, "public.customers")); !slices.Equal(got, want) {
		t.Errorf("list_tables: customers masked_columns %v, want %v", got, want)
	}
	var q mcpRows
	out.Results[1].ok(t, &q)
	if got := cells(q.Rows); !slices.EqualFunc(got, cw.masked, slices.Equal) {
		t.Fatalf("masked rows over stdio\n%v\nwant (pgx through pgwarden as analyst)\n%v", got, cw.masked)
	}
	_, evs := sessionOf(t, w.Cfg.Store.Dir, user)
	assertMCPRecord(t, evs, "mcp:"+client, []recordedStmt{{maskedSQL, "allow"}})
}

// TestMCPTypeScriptLimits: mcp.limits.calls_per_minute refuses the call
// past the limit with a tool error (53400); another identity is not affected.
func TestMCPTypeScriptLimits(t *testing.T) {
	tsDriver(t)
	w := startGateway(t, func(c *config.Config) {
		c.MCP.Enabled = true
		c.MCP.Limits.CallsPerMinute = 3
	})
	call := tsCall{Tool: "query", Arguments: map[string]any{"sql": "SELECT 1 AS one"}}
	out, _ := drive(t, w.httpPlan("ts-busy", w.Issuer.token(t, "mcp-busy@example.com", "analyst"), call, call, call, call))
	out.connected(t, 4)
	for i := range 3 {
		var q mcpRows
		out.Results[i].ok(t, &q)
	}
	out.Results[3].refused(t, "53400")
	other, _ := drive(t, w.httpPlan("ts-calm", w.Issuer.token(t, "mcp-calm@example.com", "analyst"), call))
	other.connected(t, 1)
	var q mcpRows
	other.Results[0].ok(t, &q)

	// rows_per_hour: the rows still allowed cut a result, then calls are refused.
	w = startGateway(t, func(c *config.Config) {
		c.MCP.Enabled = true
		c.MCP.Limits.RowsPerHour = 15
	})
	ten := tsCall{Tool: "query", Arguments: map[string]any{"sql": "SELECT id FROM documents ORDER BY id LIMIT 10"}}
	out, _ = drive(t, w.httpPlan("ts-reader", w.Issuer.token(t, "mcp-reader@example.com", "analyst"), ten, ten, ten))
	out.connected(t, 3)
	var first, second mcpRows
	out.Results[0].ok(t, &first)
	out.Results[1].ok(t, &second)
	if first.RowCount != 10 || first.Truncated {
		t.Fatalf("first 10 rows of 15 allowed: row_count %d, truncated %v", first.RowCount, first.Truncated)
	}
	if second.RowCount != 5 || !second.Truncated || second.TruncatedBy != "rows_per_hour" || second.CommandTag != "SELECT 10" {
		t.Fatalf("the next 10 rows with 5 left: row_count %d, truncated %v by %q, tag %q", second.RowCount, second.Truncated, second.TruncatedBy, second.CommandTag)
	}
	out.Results[2].refused(t, "53400")
}

package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// The tools. Their descriptions are what an agent reads to decide what to
// call: they say what comes back and what pgwarden does on the way.
func (s *Server) addTools() {
	one, zero := 1, 0
	maxK := float64(s.opts.MaxRows)
	for _, t := range []struct {
		tool *sdk.Tool
		run  toolFunc
	}{
		{tool: &sdk.Tool{
			Name:  "list_tables",
			Title: "List tables",
			Description: "Lists the tables and views you may read (SELECT) in this database, with the columns " +
				"pgwarden masks for you (their values come back masked: emails as a…@example.com, " +
				"identifiers with only their last digits, free text redacted). Call it first to see what is there.",
			InputSchema: object(nil, map[string]*jsonschema.Schema{}),
			Annotations: closedWorld(true),
		}, run: s.listTables},
		{tool: &sdk.Tool{
			Name:  "describe_table",
			Title: "Describe a table",
			Description: "Describes one table or view: its columns with their PostgreSQL types, whether they " +
				"may be NULL, which one is the primary key, and which ones pgwarden masks for you. Use it " +
				"before writing SQL against a table or choosing the vector column for similarity_search.",
			InputSchema: object([]string{"table"}, map[string]*jsonschema.Schema{
				"table": {Type: "string", MinLength: &one, Description: `Table or view name, optionally schema-qualified: "documents" or "public.documents". Unquoted names are case-insensitive; quote others: "My Table".`},
			}),
			Annotations: closedWorld(true),
		}, run: s.describeTable},
		{tool: &sdk.Tool{
			Name:  "query",
			Title: "Run SQL",
			Description: "Runs one SQL statement (PostgreSQL dialect) as you, through pgwarden: your groups' " +
				"policy decides whether it may run (a refusal is an error with SQLSTATE 42501 naming the action), " +
				"statements such as bulk deletes wait for a second person's approval (SQLSTATE 55000 with an " +
				"approval_id: call again with the same arguments once it is approved), personal data in the rows " +
				"is masked (masked_columns), and the session is recorded. Pass values as params ($1, $2, ...) " +
				"instead of writing them into the SQL. Returns {columns, rows (arrays in column order), row_count, " +
				"truncated, truncated_by, command_tag}; a result is cut at max_rows rows and the server's byte bound, " +
				"and truncated says so (command_tag still counts every row).",
			InputSchema: object([]string{"sql"}, map[string]*jsonschema.Schema{
				"sql":      {Type: "string", MinLength: &one, Description: "Exactly one SQL statement; use $1, $2, ... for values."},
				"params":   {Type: "array", Description: "Values for $1, $2, ... in order: strings, numbers, booleans or null (objects and arrays are sent as JSON text). PostgreSQL converts each to the type the statement needs."},
				"max_rows": {Type: "integer", Minimum: ptr(1), Maximum: &maxK, Description: fmt.Sprintf("Return at most this many rows (default and upper bound %d).", s.opts.MaxRows)},
			}),
			Annotations: closedWorld(false),
		}, run: s.query},
		{tool: &sdk.Tool{
			Name:  "similarity_search",
			Title: "Vector similarity search",
			Description: "Finds the k rows of a table whose pgvector column is nearest to a query vector, or to the " +
				"vector of another row (like_id: 'more like this', the row itself excluded), optionally only among " +
				"rows whose columns equal given values (filter). Returns the same shape as query, with the table's " +
				"columns except vector columns, plus a distance column (smaller is nearer), nearest first. Masking, " +
				"policy and recording apply as for query.",
			InputSchema: object([]string{"table", "column"}, map[string]*jsonschema.Schema{
				"table":   {Type: "string", MinLength: &one, Description: `Table name, optionally schema-qualified ("documents", "public.documents").`},
				"column":  {Type: "string", MinLength: &one, Description: "The vector (or halfvec) column to compare, e.g. embedding (describe_table shows the types)."},
				"vector":  {Type: "array", Items: &jsonschema.Schema{Type: "number"}, MinItems: &one, MaxItems: &[]int{maxDimensions}[0], Description: "The query vector, as many numbers as the column has dimensions. Give this or like_id."},
				"like_id": {Types: []string{"string", "integer"}, Description: "Primary key value of a row whose vector is the query (the table needs a single-column primary key). Give this or vector."},
				"k":       {Type: "integer", Minimum: ptr(1), Maximum: &maxK, Default: json.RawMessage("5"), Description: "How many rows to return (default 5)."},
				"filter":  {Type: "object", MinProperties: &zero, Description: `Only rows whose columns equal these values, e.g. {"category": "runbook"}; null matches NULL.`, AdditionalProperties: &jsonschema.Schema{Types: []string{"string", "number", "boolean", "null"}}},
				"metric":  {Type: "string", Enum: []any{"l2", "cosine", "inner_product"}, Default: json.RawMessage(`"l2"`), Description: "Distance: l2 (<->, default), cosine (<=>) or inner_product (<#>, negative inner product). Use the one the column's index was built for."},
			}),
			Annotations: closedWorld(true),
		}, run: s.similaritySearch},
	} {
		s.sdk.AddTool(t.tool, s.tool(t.tool.Name, t.run))
	}
}

// object is the input schema of a tool: an object with props, of which
// required must be given, and no others.
func object(required []string, props map[string]*jsonschema.Schema) *jsonschema.Schema {
	return &jsonschema.Schema{Type: "object", Required: required, Properties: props,
		AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}}}
}

// closedWorld: every tool acts on this database only; readOnly tools never
// write, the others may (query: subject to policy and approvals).
func closedWorld(readOnly bool) *sdk.ToolAnnotations {
	a := &sdk.ToolAnnotations{ReadOnlyHint: readOnly, OpenWorldHint: new(bool)}
	if !readOnly {
		destructive := true
		a.DestructiveHint = &destructive
	}
	return a
}

func ptr(f float64) *float64 { return &f }

// call is one tool call in its session, with the session's turn held.
type call struct {
	se   *session
	conn *pgx.Conn // once db was called
	name string
	// rowBudget is how many rows the caller's rows_per_hour still allows
	// (-1: no limit).
	rowBudget int
	returned  int // rows this call returned
}

// db is the session's connection through the gateway, opened (or
// reopened) on the first statement of a call: a call whose arguments are
// refused never connects.
func (c *call) db(ctx context.Context) (*pgx.Conn, error) {
	if c.conn == nil {
		conn, err := c.se.connect(ctx)
		if err != nil {
			return nil, err
		}
		c.conn = conn
	}
	return c.conn, nil
}

// toolFunc runs a tool with its raw arguments.
type toolFunc func(ctx context.Context, c *call, args json.RawMessage) (any, error)

// tool wraps a toolFunc: caller, limits, session, turn, connection,
// and turning errors into tool errors.
func (s *Server) tool(name string, run toolFunc) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.base, cancel)()
		fail := func(err error) (*sdk.CallToolResult, error) {
			te := asToolError(err)
			s.calls.WithLabelValues(name, te.SQLState).Inc()
			return errorResult(te), nil
		}
		caller, err := s.callerOf(req)
		if err != nil {
			return fail(err)
		}
		budget, perr := s.limiter.admit(caller.key(), caller.User)
		if perr != nil {
			s.log.Info().Str("user", caller.User).Str("tool", name).Str("sqlstate", string(perr.Code)).Msg("mcp call refused by a limit")
			return fail(perr)
		}
		se, err := s.sessionFor(req, caller)
		if err != nil {
			return fail(err)
		}
		if err := se.acquire(ctx); err != nil {
			return fail(err)
		}
		if tok := req.Params.GetProgressToken(); tok != nil {
			n := 0.0
			se.progress = func(msg string) {
				n++
				_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: tok, Message: msg, Progress: n})
			}
		}
		c := &call{se: se, name: name, rowBudget: budget}
		out, err := func() (any, error) {
			defer se.release()
			out, err := run(ctx, c, req.Params.Arguments)
			if err != nil {
				err = c.classify(err)
			}
			return out, err
		}()
		s.limiter.returned(caller.key(), c.returned)
		if err != nil {
			// The SQLSTATE only: a message may quote a value.
			s.log.Debug().Str("user", caller.User).Str("tool", name).Str("sqlstate", asToolError(err).SQLState).Msg("mcp call failed")
			return fail(err)
		}
		s.calls.WithLabelValues(name, "00000").Inc()
		return jsonResult(out)
	}
}

// classify tells a client-side usage error (pgx refusing arguments while
// the connection is fine) from a lost connection.
func (c *call) classify(err error) error {
	var pe *pgconn.PgError
	var own *pgerr.Error
	if errors.As(err, &pe) || errors.As(err, &own) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if c.conn != nil && !c.conn.IsClosed() {
		return pgerr.New(pgerr.InvalidParameterValue, "pgwarden: %s: %s", c.name, safeText(err.Error()))
	}
	return err
}

// decodeArgs decodes a call's arguments strictly: unknown keys are errors,
// numbers keep their text (json.Number).
func decodeArgs(tool string, raw json.RawMessage, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		raw = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return pgerr.New(pgerr.InvalidParameterValue, "pgwarden: %s: arguments: %s", tool, safeText(err.Error()))
	}
	if dec.More() {
		return pgerr.New(pgerr.InvalidParameterValue, "pgwarden: %s: arguments: trailing data", tool)
	}
	return nil
}

// run executes one statement whose rows the agent gets: within max_rows
// (the call's or the server's), the byte bound and the caller's remaining
// rows per hour, which it counts against.
func (c *call) run(ctx context.Context, sql string, params []any, maxRows int) (*Result, error) {
	b := bounds{rows: maxRows, bytes: c.se.srv.opts.MaxBytes, rowsBy: "max_rows"}
	if c.rowBudget >= 0 && c.rowBudget < b.rows {
		b.rows, b.rowsBy = c.rowBudget, "rows_per_hour"
	}
	res, err := c.exec(ctx, sql, params, b)
	if err != nil {
		return nil, err
	}
	c.returned += res.RowCount
	return res, nil
}

// catalogBounds bound the server's own catalog reads (list_tables,
// describe_table), which neither max_rows nor the row limit cut.
var catalogBounds = bounds{rows: maxColumns, bytes: 16 << 20, rowsBy: "max_rows"}

// exec executes one statement (extended protocol, parameters as text,
// results in text) and reads its rows within b.
func (c *call) exec(ctx context.Context, sql string, params []any, b bounds) (*Result, error) {
	conn, err := c.db(ctx)
	if err != nil {
		return nil, err
	}
	args := append([]any{pgx.QueryExecModeDescribeExec, pgx.QueryResultFormats{pgx.TextFormatCode}}, params...)
	rows, err := conn.Query(ctx, sql, args...)
	var res *Result
	if err == nil {
		res, err = readRows(rows, b)
	}
	notices, mi, _ := c.se.takeNotices()
	if err != nil {
		return nil, err
	}
	res.Notices = notices
	for i, col := range res.Columns {
		switch {
		case mi.masked[i]:
			res.MaskedColumns = append(res.MaskedColumns, col)
		case mi.scanned[i]:
			res.ScannedColumns = append(res.ScannedColumns, col)
		}
	}
	return res, nil
}

// textParam is a JSON value as the text PostgreSQL parses for a parameter
// (nil: NULL).
func textParam(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		if x {
			return "true", nil
		}
		return "false", nil
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("unsupported value %T", v)
}

// ---- query --------------------------------------------------------------

type queryArgs struct {
	SQL     string       `json:"sql"`
	Params  []any        `json:"params"`
	MaxRows *json.Number `json:"max_rows"`
}

// maxSQLBytes bounds a statement's text (the gateway's message limit is
// larger; an agent writing more than this is not writing one statement).
const maxSQLBytes = 1 << 20

func (s *Server) query(ctx context.Context, c *call, raw json.RawMessage) (any, error) {
	var a queryArgs
	if err := decodeArgs(c.name, raw, &a); err != nil {
		return nil, err
	}
	if strings.TrimSpace(a.SQL) == "" {
		return nil, argError(c.name, "sql", "is empty: give one SQL statement")
	}
	if len(a.SQL) > maxSQLBytes {
		return nil, argError(c.name, "sql", "is longer than %d bytes", maxSQLBytes)
	}
	if len(a.Params) > 65535 {
		return nil, argError(c.name, "params", "has more than 65535 values")
	}
	maxRows, err := s.rowsArg(c.name, "max_rows", a.MaxRows, s.opts.MaxRows)
	if err != nil {
		return nil, err
	}
	params := make([]any, len(a.Params))
	for i, p := range a.Params {
		if params[i], err = textParam(p); err != nil {
			return nil, argError(c.name, fmt.Sprintf("params[%d]", i), "%v", err)
		}
	}
	return c.run(ctx, a.SQL, params, maxRows)
}

// rowsArg reads an optional row count: def when absent, at most the
// server's max_rows.
func (s *Server) rowsArg(tool, name string, n *json.Number, def int) (int, error) {
	if n == nil {
		return def, nil
	}
	v, err := n.Int64()
	if err != nil || v < 1 {
		return 0, argError(tool, name, "must be a whole number of at least 1")
	}
	if v > int64(s.opts.MaxRows) {
		return 0, argError(tool, name, "must be at most %d (mcp.max_rows)", s.opts.MaxRows)
	}
	return int(v), nil
}

// ---- list_tables and describe_table -----------------------------------

// TableInfo is one entry of list_tables.
type TableInfo struct {
	Schema        string   `json:"schema"`
	Name          string   `json:"name"`
	Kind          string   `json:"kind"`
	MaskedColumns []string `json:"masked_columns"`
	// ScannedColumns are read by the PII detectors (values pass unless
	// a detector finds an email, phone, card or SSN number in them).
	ScannedColumns []string `json:"scanned_columns,omitempty"`
	// Error is set when the table could not be described (its masked
	// columns are then unknown).
	Error string `json:"error,omitempty"`
}

// TableList is list_tables's result.
type TableList struct {
	Tables    []TableInfo `json:"tables"`
	Truncated bool        `json:"truncated"`
}

// maxTables bounds list_tables.
const maxTables = 500

const listSQL = `SELECT n.nspname, c.relname, c.relkind::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND NOT c.relispartition
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
  AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
ORDER BY 1, 2 LIMIT 501`

var relKinds = map[string]string{"r": "table", "v": "view", "m": "materialized view", "p": "partitioned table", "f": "foreign table"}

func (s *Server) listTables(ctx context.Context, c *call, raw json.RawMessage) (any, error) {
	var a struct{}
	if err := decodeArgs(c.name, raw, &a); err != nil {
		return nil, err
	}
	res, err := c.exec(ctx, listSQL, nil, catalogBounds)
	if err != nil {
		return nil, err
	}
	out := TableList{Tables: []TableInfo{}}
	for _, row := range res.Rows {
		var v []string
		if err := json.Unmarshal(row, &v); err != nil || len(v) != 3 {
			return nil, fmt.Errorf("list_tables: unexpected catalog row")
		}
		if len(out.Tables) == maxTables {
			out.Truncated = true
			break
		}
		t := TableInfo{Schema: v[0], Name: v[1], Kind: relKinds[v[2]], MaskedColumns: []string{}}
		cols, err := c.probe(ctx, tableName{schema: v[0], name: v[1]})
		if err != nil {
			t.Error = asToolError(err).Message
		}
		for _, col := range cols {
			switch {
			case col.Masked:
				t.MaskedColumns = append(t.MaskedColumns, col.Name)
			case col.Scanned:
				t.ScannedColumns = append(t.ScannedColumns, col.Name)
			}
		}
		out.Tables = append(out.Tables, t)
	}
	return out, nil
}

// probedColumn is a column as `SELECT * FROM t` describes it to this
// session: its name and whether pgwarden masks it.
type probedColumn struct {
	Name            string
	Masked, Scanned bool
}

// probe describes SELECT * FROM t without running it (Parse and Describe
// only): the gateway checks it like any statement and, for an MCP session,
// says which of its columns it masks.
func (c *call) probe(ctx context.Context, t tableName) ([]probedColumn, error) {
	conn, err := c.db(ctx)
	if err != nil {
		return nil, err
	}
	sd, err := conn.PgConn().Prepare(ctx, "", "SELECT * FROM "+t.quoted(), nil)
	_, mi, _ := c.se.takeNotices()
	if err != nil {
		return nil, err
	}
	cols := make([]probedColumn, len(sd.Fields))
	for i, f := range sd.Fields {
		cols[i] = probedColumn{Name: f.Name, Masked: mi.masked[i], Scanned: mi.scanned[i]}
	}
	return cols, nil
}

// Column is one column of describe_table.
type Column struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Nullable   bool   `json:"nullable"`
	Masked     bool   `json:"masked"`
	Scanned    bool   `json:"scanned,omitempty"`
	PrimaryKey bool   `json:"primary_key,omitempty"`

	typSchema, typName string // for similarity_search's cast
}

// TableDescription is describe_table's result.
type TableDescription struct {
	Schema  string   `json:"schema"`
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Columns []Column `json:"columns"`
}

const describeSQL = `SELECT n.nspname, c.relname, c.relkind::text, a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, tn.nspname, t.typname,
  EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1 AND i.indkey[0] = a.attnum)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
ORDER BY a.attnum`

type tableArgs struct {
	Table string `json:"table"`
}

func (s *Server) describeTable(ctx context.Context, c *call, raw json.RawMessage) (any, error) {
	var a tableArgs
	if err := decodeArgs(c.name, raw, &a); err != nil {
		return nil, err
	}
	t, err := parseTableName(a.Table)
	if err != nil {
		return nil, argError(c.name, "table", "%v", err)
	}
	d, err := c.describe(ctx, t)
	if err != nil {
		return nil, err
	}
	probed, err := c.probe(ctx, tableName{schema: d.Schema, name: d.Name})
	if err != nil {
		return nil, err
	}
	for i := range d.Columns {
		for _, p := range probed {
			if p.Name == d.Columns[i].Name {
				d.Columns[i].Masked, d.Columns[i].Scanned = p.Masked, p.Scanned
			}
		}
	}
	return d, nil
}

// describe reads t's columns from the catalog (through the gateway, as
// the caller).
func (c *call) describe(ctx context.Context, t tableName) (*TableDescription, error) {
	res, err := c.exec(ctx, describeSQL, []any{t.quoted()}, catalogBounds)
	if err != nil {
		return nil, err
	}
	if len(res.Rows) == 0 {
		return nil, pgerr.New(pgerr.UndefinedTable, "pgwarden: %s: table %s does not exist (or is not on your search_path); list_tables shows the tables you may read", c.name, t)
	}
	d := &TableDescription{Columns: []Column{}}
	for _, row := range res.Rows {
		var v []any
		if err := json.Unmarshal(row, &v); err != nil || len(v) != 9 {
			return nil, fmt.Errorf("%s: unexpected catalog row", c.name)
		}
		str := func(i int) string { s, _ := v[i].(string); return s }
		flag := func(i int) bool { b, _ := v[i].(bool); return b }
		d.Schema, d.Name, d.Kind = str(0), str(1), relKinds[str(2)]
		d.Columns = append(d.Columns, Column{Name: str(3), Type: str(4), Nullable: flag(5), typSchema: str(6), typName: str(7), PrimaryKey: flag(8)})
	}
	return d, nil
}

// maxColumns is PostgreSQL's limit of columns in a table.
const maxColumns = 1600

// ---- similarity_search --------------------------------------------------

type searchArgs struct {
	Table  string         `json:"table"`
	Column string         `json:"column"`
	Vector []float64      `json:"vector"`
	LikeID any            `json:"like_id"`
	K      *json.Number   `json:"k"`
	Filter map[string]any `json:"filter"`
	Metric string         `json:"metric"`
}

var metrics = map[string]string{"": "<->", "l2": "<->", "cosine": "<=>", "inner_product": "<#>"}

// vectorTypes are the pgvector types similarity_search compares (their
// text input is the [1,2,3] literal).
var vectorTypes = []string{"vector", "halfvec"}

func (s *Server) similaritySearch(ctx context.Context, c *call, raw json.RawMessage) (any, error) {
	var a searchArgs
	if err := decodeArgs(c.name, raw, &a); err != nil {
		return nil, err
	}
	q, err := a.check(c.name, s.opts.MaxRows)
	if err != nil {
		return nil, err
	}
	d, err := c.describe(ctx, q.table)
	if err != nil {
		return nil, err
	}
	sql, params, err := q.build(c.name, d)
	if err != nil {
		return nil, err
	}
	res, err := c.run(ctx, sql, params, q.k)
	if err != nil {
		return nil, err
	}
	if q.likeID != nil && len(res.Rows) > 0 && lastIsNull(res.Rows[0]) {
		return nil, argError(c.name, "like_id", "names no row of %s.%s with a vector in %s", d.Schema, d.Name, q.column)
	}
	return res, nil
}

// lastIsNull reports whether a row's last value (similarity_search's
// distance) is NULL: the like_id row does not exist or has no vector.
func lastIsNull(row json.RawMessage) bool {
	var v []json.RawMessage
	return json.Unmarshal(row, &v) == nil && len(v) > 0 && string(v[len(v)-1]) == "null"
}

// search is a checked similarity_search request.
type search struct {
	table  tableName
	column string
	vector string // pgvector literal, or "" with likeID
	likeID any    // text of the key value, or nil
	k      int
	filter []filterTerm // sorted by column, so equal calls are equal statements
	op     string
}

type filterTerm struct {
	column string
	value  any // text, or nil for IS NULL
}

// check validates the arguments without a database.
func (a *searchArgs) check(tool string, maxRows int) (*search, error) {
	q := &search{k: 5}
	var err error
	if q.table, err = parseTableName(a.Table); err != nil {
		return nil, argError(tool, "table", "%v", err)
	}
	if q.column, err = parseColumnName(a.Column); err != nil {
		return nil, argError(tool, "column", "%v", err)
	}
	switch {
	case a.Vector != nil && a.LikeID != nil:
		return nil, argError(tool, "vector", "and like_id are exclusive: give one")
	case a.Vector != nil:
		if q.vector, err = vectorLiteral(a.Vector); err != nil {
			return nil, argError(tool, "vector", "%v", err)
		}
	case a.LikeID != nil:
		switch v := a.LikeID.(type) {
		case string, json.Number:
			q.likeID, _ = textParam(v)
		default:
			return nil, argError(tool, "like_id", "must be a string or a number")
		}
	default:
		return nil, argError(tool, "vector", "is missing: give vector (the query vector) or like_id (a row whose vector to use)")
	}
	if a.K != nil {
		k, err := a.K.Int64()
		if err != nil || k < 1 || k > int64(maxRows) {
			return nil, argError(tool, "k", "must be a whole number from 1 to %d", maxRows)
		}
		q.k = int(k)
	}
	var ok bool
	if q.op, ok = metrics[a.Metric]; !ok {
		return nil, argError(tool, "metric", "%q is not one of l2, cosine, inner_product", a.Metric)
	}
	keys := make([]string, 0, len(a.Filter))
	for k := range a.Filter {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		col, err := parseColumnName(k)
		if err != nil {
			return nil, argError(tool, "filter", "key %v", err)
		}
		v := a.Filter[k]
		switch v.(type) {
		case nil, string, json.Number, bool:
		default:
			return nil, argError(tool, "filter", "value of %s must be a string, number, boolean or null (equality only)", k)
		}
		tv, _ := textParam(v)
		q.filter = append(q.filter, filterTerm{column: col, value: tv})
	}
	return q, nil
}

// build is the statement for q over table d: identifiers quoted, every
// value a parameter.
func (q *search) build(tool string, d *TableDescription) (string, []any, error) {
	byName := map[string]*Column{}
	var pk *Column
	for i := range d.Columns {
		col := &d.Columns[i]
		byName[col.Name] = col
		if col.PrimaryKey {
			pk = col
		}
	}
	tbl := pgx.Identifier{d.Schema, d.Name}.Sanitize()
	vc := byName[q.column]
	if vc == nil {
		return "", nil, argError(tool, "column", "%s is not a column of %s.%s", q.column, d.Schema, d.Name)
	}
	if !slices.Contains(vectorTypes, vc.typName) {
		return "", nil, argError(tool, "column", "%s is of type %s, not a pgvector vector or halfvec", q.column, vc.Type)
	}
	vcol := pgx.Identifier{vc.Name}.Sanitize()
	var params []any
	param := func(v any) string {
		params = append(params, v)
		return fmt.Sprintf("$%d", len(params))
	}
	var qv string
	var where []string
	if q.likeID != nil {
		if pk == nil {
			return "", nil, argError(tool, "like_id", "needs a single-column primary key, which %s.%s does not have: give vector instead", d.Schema, d.Name)
		}
		pkc := pgx.Identifier{pk.Name}.Sanitize()
		id := param(q.likeID)
		qv = fmt.Sprintf("(SELECT %s FROM %s WHERE %s = %s)", vcol, tbl, pkc, id)
		where = append(where, fmt.Sprintf("%s <> %s", pkc, id))
	} else {
		qv = param(q.vector) + "::" + pgx.Identifier{vc.typSchema, vc.typName}.Sanitize()
	}
	for _, f := range q.filter {
		fc := byName[f.column]
		if fc == nil {
			return "", nil, argError(tool, "filter", "%s is not a column of %s.%s", f.column, d.Schema, d.Name)
		}
		if f.value == nil {
			where = append(where, pgx.Identifier{fc.Name}.Sanitize()+" IS NULL")
			continue
		}
		where = append(where, pgx.Identifier{fc.Name}.Sanitize()+" = "+param(f.value))
	}
	var cols []string
	for _, col := range d.Columns {
		if !slices.Contains(vectorTypes, col.typName) && col.typName != "sparsevec" {
			cols = append(cols, pgx.Identifier{col.Name}.Sanitize())
		}
	}
	dist := fmt.Sprintf("%s %s %s", vcol, q.op, qv)
	var b strings.Builder
	b.WriteString("SELECT ")
	for _, col := range cols {
		b.WriteString(col + ", ")
	}
	fmt.Fprintf(&b, "%s AS distance FROM %s", dist, tbl)
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	fmt.Fprintf(&b, " ORDER BY %s LIMIT %d", dist, q.k)
	return b.String(), params, nil
}

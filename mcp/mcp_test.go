package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

func TestParseTableName(t *testing.T) {
	for _, tc := range []struct {
		in, schema, name, err string
	}{
		{in: "documents", name: "documents"},
		{in: "  Documents ", name: "documents"},
		{in: "public.documents", schema: "public", name: "documents"},
		{in: `"My Table"`, name: "My Table"},
		{in: `public."My ""quoted"" Table"`, schema: "public", name: `My "quoted" Table`},
		{in: `"a.b"`, name: "a.b"},
		{in: "t$1", name: "t$1"},
		{in: "_x9", name: "_x9"},
		{in: "", err: "is empty"},
		{in: "a.b.c", err: "at most schema.table"},
		{in: "a.", err: "a name is missing"},
		{in: ".a", err: "cannot start a name"},
		{in: "1abc", err: "cannot start a name"},
		{in: "docs; DROP TABLE x", err: "unexpected"},
		{in: "docs--", err: "unexpected"},
		{in: `"open`, err: "unterminated"},
		{in: `""`, err: "empty quoted name"},
		{in: "\"a\x00b\"", err: "NUL"},
		{in: strings.Repeat("a", 64), err: "longer than 63"},
		{in: "público", err: "unexpected"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTableName(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got.schema != tc.schema || got.name != tc.name {
				t.Fatalf("got %+v, %v; want %s.%s", got, err, tc.schema, tc.name)
			}
			// quoted() reads back as the same name
			back, err := parseTableName(got.quoted())
			if err != nil || back != got {
				t.Fatalf("%s reparsed as %+v, %v", got.quoted(), back, err)
			}
		})
	}
}

func FuzzParseTableName(f *testing.F) {
	for _, s := range []string{"documents", "public.documents", `"a""b".c`, "a.b.c", `"x`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tn, err := parseTableName(s)
		if err != nil {
			return
		}
		if tn.name == "" || len(tn.name) > maxIdentBytes || len(tn.schema) > maxIdentBytes {
			t.Fatalf("%q parsed to %+v", s, tn)
		}
		// The quoted form is a plain SQL identifier chain that parses back.
		back, err := parseTableName(tn.quoted())
		if err != nil || back != tn {
			t.Fatalf("%q: %s reparsed as %+v, %v", s, tn.quoted(), back, err)
		}
	})
}

func TestVectorLiteral(t *testing.T) {
	if s, err := vectorLiteral([]float64{1, -2.5, 0.125, 3e-7}); err != nil || s != "[1,-2.5,0.125,3e-07]" {
		t.Fatalf("%q %v", s, err)
	}
	for _, v := range [][]float64{nil, {1, 1e39}, make([]float64, maxDimensions+1)} {
		if _, err := vectorLiteral(v); err == nil {
			t.Fatalf("%d dims accepted", len(v))
		}
	}
}

func TestSearchArgs(t *testing.T) {
	num := func(s string) *json.Number { n := json.Number(s); return &n }
	desc := &TableDescription{Schema: "public", Name: "documents", Columns: []Column{
		{Name: "id", Type: "bigint", PrimaryKey: true, typName: "int8", typSchema: "pg_catalog"},
		{Name: "category", Type: "text", typName: "text", typSchema: "pg_catalog"},
		{Name: "embedding", Type: "vector(3)", typName: "vector", typSchema: "public"},
	}}
	for _, tc := range []struct {
		name string
		args searchArgs
		err  string // "" : valid
		sql  string
	}{
		{name: "vector", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1, 2, 3}},
			sql: `SELECT "id", "category", "embedding" <-> $1::"public"."vector" AS distance FROM "public"."documents" ORDER BY "embedding" <-> $1::"public"."vector" LIMIT 5`},
		{name: "like_id and filter", args: searchArgs{Table: "documents", Column: "embedding", LikeID: json.Number("7"), K: num("2"), Metric: "cosine", Filter: map[string]any{"category": "runbook", "id": nil}},
			sql: `SELECT "id", "category", "embedding" <=> (SELECT "embedding" FROM "public"."documents" WHERE "id" = $1) AS distance FROM "public"."documents" WHERE "id" <> $1 AND "category" = $2 AND "id" IS NULL ORDER BY "embedding" <=> (SELECT "embedding" FROM "public"."documents" WHERE "id" = $1) LIMIT 2`},
		{name: "no vector", args: searchArgs{Table: "documents", Column: "embedding"}, err: "vector is missing"},
		{name: "both", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1}, LikeID: "1"}, err: "exclusive"},
		{name: "k zero", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1}, K: num("0")}, err: "k must be"},
		{name: "k too big", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1}, K: num("201")}, err: "k must be"},
		{name: "k fraction", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1}, K: num("1.5")}, err: "k must be"},
		{name: "bad metric", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1}, Metric: "hamming"}, err: "metric"},
		{name: "bad table", args: searchArgs{Table: "x;y", Column: "embedding", Vector: []float64{1}}, err: "table"},
		{name: "bad column", args: searchArgs{Table: "documents", Column: "a.b", Vector: []float64{1}}, err: "single column"},
		{name: "like_id object", args: searchArgs{Table: "documents", Column: "embedding", LikeID: map[string]any{}}, err: "like_id must be"},
		{name: "filter object", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1}, Filter: map[string]any{"category": []any{1}}}, err: "equality only"},
		{name: "unknown filter column", args: searchArgs{Table: "documents", Column: "embedding", Vector: []float64{1}, Filter: map[string]any{"nope": json.Number("1")}}, err: "nope is not a column"},
		{name: "unknown column", args: searchArgs{Table: "documents", Column: "vec", Vector: []float64{1}}, err: "vec is not a column"},
		{name: "not a vector", args: searchArgs{Table: "documents", Column: "category", Vector: []float64{1}}, err: "not a pgvector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := tc.args.check("similarity_search", 200)
			var sql string
			if err == nil {
				sql, _, err = q.build("similarity_search", desc)
			}
			if tc.err != "" {
				var pe *pgerr.Error
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &pe) || pe.Code != pgerr.InvalidParameterValue {
					t.Fatalf("want a 22023 error with %q, got %v (sql %s)", tc.err, err, sql)
				}
				return
			}
			if err != nil || sql != tc.sql {
				t.Fatalf("got %v\n%s\nwant\n%s", err, sql, tc.sql)
			}
		})
	}
}

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	l := newLimiter(Limits{CallsPerMinute: 2, RowsPerHour: 10}, func() time.Time { return now })
	admit := func(id string) (int, *pgerr.Error) { return l.admit(id, id+"@example.com") }
	for i := 0; i < 2; i++ {
		if n, err := admit("alice"); err != nil || n != 10 {
			t.Fatalf("call %d: %d %v", i, n, err)
		}
	}
	if _, err := admit("alice"); err == nil || err.Code != pgerr.ConfigurationLimitExceeded || !strings.Contains(err.Message, "2 calls per minute for alice@example.com; retry in 30s") {
		t.Fatalf("third call: %v", err)
	}
	if _, err := admit("bob"); err != nil {
		t.Fatalf("another identity is limited by alice: %v", err)
	}
	now = now.Add(30 * time.Second) // a call's worth refilled
	if _, err := admit("alice"); err != nil {
		t.Fatalf("after 30s: %v", err)
	}
	// rows: 10 per rolling hour
	l.returned("alice", 7)
	now = now.Add(40 * time.Minute)
	if n, err := admit("alice"); err != nil || n != 3 {
		t.Fatalf("budget after 7 rows: %d %v", n, err)
	}
	l.returned("alice", 3)
	now = now.Add(time.Minute)
	if _, err := admit("alice"); err == nil || !strings.Contains(err.Message, "10 rows per hour returned to alice@example.com") {
		t.Fatalf("past the row budget: %v", err)
	}
	now = now.Add(20 * time.Minute) // the 7 rows are now more than an hour old
	if n, err := admit("alice"); err != nil || n != 7 {
		t.Fatalf("an hour after the 7 rows: %d %v", n, err)
	}
	// idle identities are forgotten
	now = now.Add(2 * time.Hour)
	admit("carol")
	if _, ok := l.ids["alice"]; ok {
		t.Fatal("an identity idle for 2h is still kept")
	}
	// no limits: nothing kept
	u := newLimiter(Limits{}, nil)
	if n, err := u.admit("x", "x"); err != nil || n != -1 || len(u.ids) != 0 {
		t.Fatalf("unlimited: %d %v %d", n, err, len(u.ids))
	}
}

func TestMaskNotice(t *testing.T) {
	n := MaskNotice([]string{"id", "email", "ssn", "notes"}, []int{1, 2}, []int{3})
	if n.Code != "00000" || n.Message != "pgwarden: masked columns in this result: email, ssn; scanned by PII detectors: notes" {
		t.Fatalf("%+v", n)
	}
	mi, ok := parseMaskNotice(&pgconn.Notice{Code: n.Code, Message: n.Message, Detail: n.Detail})
	if !ok || !mi.masked[1] || !mi.masked[2] || mi.masked[0] || !mi.scanned[3] || len(mi.masked) != 2 || len(mi.scanned) != 1 {
		t.Fatalf("%v %+v", ok, mi)
	}
	if MaskNotice([]string{"a"}, nil, nil) != nil {
		t.Fatal("a notice about nothing")
	}
	for _, detail := range []string{"", "masked=1", "pgwarden-masked-columns: masked=x", "pgwarden-masked-columns: other=1", "pgwarden-masked-columns: masked=-1"} {
		if _, ok := parseMaskNotice(&pgconn.Notice{Code: "00000", Detail: detail}); ok {
			t.Fatalf("%q read as a masking notice", detail)
		}
	}
}

func TestEncodeRow(t *testing.T) {
	fds := []pgconn.FieldDescription{{DataTypeOID: oidInt4}, {DataTypeOID: oidBool}, {DataTypeOID: oidFloat8}, {DataTypeOID: oidFloat8},
		{DataTypeOID: oidNumeric}, {DataTypeOID: oidJSONB}, {DataTypeOID: 25}, {DataTypeOID: oidInt4}, {DataTypeOID: 25}, {DataTypeOID: oidJSON}}
	vals := [][]byte{[]byte("42"), []byte("t"), []byte("NaN"), []byte("-1.5e-3"), []byte("12345678901234567890.5"),
		[]byte(`{"a": [1, 2]}`), []byte("<b>&\"x\"</b>\n"), []byte("[REDACTED]"), nil, []byte("{not json")}
	var buf bytes.Buffer
	got := string(encodeRow(&buf, fds, vals))
	want := `[42,true,"NaN",-1.5e-3,12345678901234567890.5,{"a":[1,2]},"<b>&\"x\"</b>\n","[REDACTED]",null,"{not json"]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Fatal("not JSON")
	}
	for _, s := range []string{"0", "-0", "1.0", "1e5", "1E+5", "-12.34e-5"} {
		if !isJSONNumber([]byte(s)) {
			t.Errorf("%s is a number", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "+1", "Infinity", "1_0", "0x1"} {
		if isJSONNumber([]byte(s)) {
			t.Errorf("%s is not a JSON number", s)
		}
	}
}

func TestToolErrors(t *testing.T) {
	held := &pgconn.PgError{Code: "55000", Message: "pgwarden: statement held for approval abcdefghijklmnop; an approver runs: pgwarden approvals approve abcdefghijklmnop; then run the identical statement again (valid 10m0s after approval)"}
	te := asToolError(held)
	if te.SQLState != "55000" || te.ApprovalID != "abcdefghijklmnop" {
		t.Fatalf("%+v", te)
	}
	res := errorResult(te)
	text := res.Content[0].(*sdk.TextContent).Text
	if !res.IsError || !strings.Contains(text, "(SQLSTATE 55000)") || !strings.Contains(text, "call this tool again with exactly the same arguments") || res.StructuredContent.(ToolError) != te {
		t.Fatalf("%s", text)
	}
	if te := asToolError(&pgconn.PgError{Code: "42501", Message: "pgwarden: action delete not allowed"}); te.ApprovalID != "" || te.SQLState != "42501" {
		t.Fatalf("%+v", te)
	}
	if te := asToolError(errors.New("read tcp: connection reset")); te.SQLState != "08006" || !strings.HasPrefix(te.Message, "pgwarden: ") {
		t.Fatalf("%+v", te)
	}
	if te := asToolError(argError("query", "sql", "is empty")); te.SQLState != "22023" || te.Message != "pgwarden: query: sql is empty" {
		t.Fatalf("%+v", te)
	}
}

func TestDecodeArgs(t *testing.T) {
	var a queryArgs
	if err := decodeArgs("query", json.RawMessage(`{"sql":"SELECT $1","params":[12345678901234567890,"x",true,null,{"k":1}]}`), &a); err != nil {
		t.Fatal(err)
	}
	var got []any
	for _, p := range a.Params {
		v, err := textParam(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if want := []any{"12345678901234567890", "x", "true", nil, `{"k":1}`}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != nil || got[4] != want[4] {
		t.Fatalf("params as text: %#v", got)
	}
	for _, raw := range []string{`{"sql":"x","nope":1}`, `{"sql":1}`, `[1]`, `{"sql":"x"} {}`} {
		if err := decodeArgs("query", json.RawMessage(raw), &queryArgs{}); err == nil {
			t.Fatalf("%s accepted", raw)
		}
	}
	if err := decodeArgs("list_tables", nil, &struct{}{}); err != nil {
		t.Fatalf("no arguments: %v", err)
	}
}

func TestApplicationName(t *testing.T) {
	if got := applicationName("Claude Desktop\n"); got != "mcp:Claude Desktop?" {
		t.Fatal(got)
	}
	if got := applicationName(strings.Repeat("é", 50)); len(got) != maxIdentBytes || !strings.HasPrefix(got, "mcp:??") {
		t.Fatal(got)
	}
}

// A delegated principal's caller is keyed by user and actor: the agent's
// limits and its MCP session are not the person's own.
func TestCallerOfDelegated(t *testing.T) {
	own := callerOf(identity.Principal{User: "ann"}, "vectors", "t1", "")
	viaAgent := callerOf(identity.Principal{User: "ann", Actor: "agent-7"}, "vectors", "t2", "")
	otherAgent := callerOf(identity.Principal{User: "ann", Actor: "agent-8"}, "vectors", "t3", "")
	if viaAgent.Actor != "agent-7" {
		t.Fatalf("callerOf dropped the actor: %+v", viaAgent)
	}
	if own.key() == viaAgent.key() || viaAgent.key() == otherAgent.key() {
		t.Fatalf("keys not distinct: %q %q %q", own.key(), viaAgent.key(), otherAgent.key())
	}
}

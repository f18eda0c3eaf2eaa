package masking

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// Seed PII: none of these strings may appear in a masked result.
var piiTokens = []string{
	"Zelda", "Quartermaine", "Yorick", "Pemberton", "Xavier", "Oduya",
	"zelda.q@example.com", "zelda.q", "yorick.p@example.org", "yorick.p", "xav1er@example.net", "xav1er",
	"123-45-6789", "987-65-4321", "555-44-3333",
	"+1 555 010 1234", "555 010 1234", "(555) 010-9999", "010-9999", "+44 20 7946 0958", "7946 0958",
	"4111 1111 1111 1111", "4111111111111111",
	"Wilhelmina", "Fairweather", "wil.f@corp.example", "wil.f", "Bartholomew", "bart.k@corp.example", "bart.k",
	"+1 202 555 0147", "555 0147", "quincy.e",
}

var seedSQL = []string{
	`CREATE TABLE customers (id int PRIMARY KEY, name text, email text, ssn text, phone varchar(40), card text, notes text)`,
	`INSERT INTO customers VALUES
	 (1, 'Zelda Quartermaine', 'zelda.q@example.com', '123-45-6789', '+1 555 010 1234', '4111 1111 1111 1111', 'prefers email zelda.q@example.com'),
	 (2, 'Yorick Pemberton', 'yorick.p@example.org', '987-65-4321', '(555) 010-9999', '4111111111111111', 'call (555) 010-9999 after 5'),
	 (3, 'Xavier Oduya', 'xav1er@example.net', '555-44-3333', '+44 20 7946 0958', NULL, 'ssn on file 555-44-3333')`,
	`CREATE TABLE documents (id int PRIMARY KEY, title text, metadata jsonb, embedding vector(3))`,
	`INSERT INTO documents VALUES
	 (1, 'Q3 report', '{"title": "Q3 report", "author": {"name": "Wilhelmina Fairweather", "email": "wil.f@corp.example"}, "contacts": [{"phone": "+1 202 555 0147"}], "tags": ["finance"]}', '[1,0,0]'),
	 (2, 'Roadmap', '{"title": "Roadmap", "author": {"name": "Bartholomew K", "em\u0061il": "bart.k@corp.example"}, "tags": []}', '[0,1,0]'),
	 (3, 'Empty', '{}', '[0,0,1]')`,
	`CREATE TABLE orders (id serial PRIMARY KEY, cid int, note text)`,
	`INSERT INTO orders (cid, note) VALUES (1, 'first order'), (2, 'second order')`,
	`ANALYZE customers`,
	`CREATE VIEW v_customers AS SELECT id, email AS contact, ssn FROM customers`,
	`CREATE VIEW v_shout AS SELECT id, upper(name) AS loud FROM customers`,
	`CREATE VIEW v_nested AS SELECT id, contact FROM v_customers`,
	`CREATE MATERIALIZED VIEW mv_customers AS SELECT id, name, email FROM customers`,
	`CREATE TABLE events (id int, email text, at date) PARTITION BY RANGE (at)`,
	`CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`,
	`INSERT INTO events VALUES (1, 'quincy.e@example.com', '2024-05-01'), (2, 'quincy.e@example.com', '2024-06-01')`,
}

// integrationConfig is testConfig's rules plus a rule on the partitioned
// events table, with detectors on.
func integrationConfig() config.Masking {
	c := testConfig()
	c.HMACKey = "integration-key"
	c.Rules = append(c.Rules, config.MaskRule{Table: "public.events", Column: "email", Method: "redact"})
	c.Detectors = []string{"email", "phone", "credit_card", "ssn"}
	return c
}

type pgEnv struct {
	c    *pgtest.Cluster
	pool *pgxpool.Pool
	cat  *PGCatalog
}

// superConn is a superuser connection to the seeded database, closed with
// the test.
func (env *pgEnv) superConn(t *testing.T) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(context.Background(), env.c.SuperDSN("vectors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func startPG(t *testing.T) *pgEnv {
	t.Helper()
	c := pgtest.StartT(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CreateDB(ctx, "vectors"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "vectors", seedSQL...); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, c.SuperDSN("vectors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &pgEnv{c: c, pool: pool, cat: NewPGCatalog(pool)}
}

func containsPII(b []byte) string {
	for _, tok := range piiTokens {
		if bytes.Contains(b, []byte(tok)) {
			return tok
		}
	}
	return ""
}

func loadCorpus(t *testing.T) []string {
	f, err := os.Open("../testdata/masking/queries.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var qs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			qs = append(qs, l)
		}
	}
	if len(qs) < 60 {
		t.Fatalf("corpus has %d queries, want >= 60", len(qs))
	}
	return qs
}

// keepFields are never PII in the corpus: they must come back byte-identical.
var keepFields = map[string]bool{"id": true, "dist": true, "title": true, "cid": true, "count": true}

func TestIntegrationCorpus(t *testing.T) {
	env := startPG(t)
	for _, mode := range []string{"mask", "deny"} {
		t.Run(mode, func(t *testing.T) {
			cfg := integrationConfig()
			cfg.Derived = mode
			cfg.DenyPredicates = mode == "deny"
			e, err := New(cfg, env.cat)
			if err != nil {
				t.Fatal(err)
			}
			runCorpus(t, env, e, mode)
		})
	}
}

func runCorpus(t *testing.T, env *pgEnv, e *Engine, mode string) {
	ctx := context.Background()
	var err error
	conn := env.superConn(t)
	// sanity: the seed really is in the raw data (so the test can fail)
	raw := conn.ExecParams(ctx, "SELECT row_to_json(c)::text FROM customers c", nil, nil, nil, nil).Read()
	if raw.Err != nil || containsPII(raw.Rows[0][0]) == "" {
		t.Fatalf("seed PII not visible directly: %v", raw.Err)
	}
	var refused, masked, rowsSeen int
	for _, q := range loadCorpus(t) {
		for _, format := range []int16{0, 1} {
			if perr := e.CheckQueryContext(ctx, q, false); perr != nil {
				if perr.Code != pgerr.InsufficientPrivilege || containsPII([]byte(perr.Message)) != "" {
					t.Errorf("%s: bad refusal %v", q, perr)
				}
				refused++
				continue
			}
			_, _ = conn.Exec(ctx, "BEGIN").ReadAll()
			rr := conn.ExecParams(ctx, q, nil, nil, nil, []int16{format})
			rd := &pgproto3.RowDescription{}
			for _, f := range rr.FieldDescriptions() {
				rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(f.Name), TableOID: f.TableOID,
					TableAttributeNumber: f.TableAttributeNumber, DataTypeOID: f.DataTypeOID, DataTypeSize: f.DataTypeSize,
					TypeModifier: f.TypeModifier, Format: f.Format})
			}
			plan, perr := e.Plan(ctx, rd, &Query{SQL: q})
			if perr != nil {
				if pe, ok := pgerr.As(perr); !ok || pe.Code != pgerr.InsufficientPrivilege {
					t.Errorf("%s: plan: %v", q, perr)
				}
				rr.Close()
				_, _ = conn.Exec(ctx, "ROLLBACK").ReadAll()
				refused++
				continue
			}
			for rr.NextRow() {
				rowsSeen++
				in := &pgproto3.DataRow{Values: rr.Values()}
				orig := make([][]byte, len(in.Values))
				for i, v := range in.Values {
					orig[i] = append([]byte(nil), v...)
				}
				out := in
				if plan != nil {
					out, err = plan.Apply(in, nil)
					if err != nil {
						t.Fatalf("%s (format %d): apply: %v", q, format, err)
					}
					out = roundTrip(t, out)
				}
				for i, v := range out.Values {
					if tok := containsPII(v); tok != "" {
						t.Errorf("LEAK %q in %s (format %d) field %s: %q", tok, q, format, rd.Fields[i].Name, v)
					}
					if keepFields[string(rd.Fields[i].Name)] && !strings.Contains(q, "-- fail-closed") && !bytes.Equal(v, orig[i]) {
						t.Errorf("%s (format %d): non-PII field %s changed: %q -> %q", q, format, rd.Fields[i].Name, orig[i], v)
					}
					if !bytes.Equal(v, orig[i]) {
						masked++
					}
				}
			}
			_, rerr := rr.Close()
			var pge *pgconn.PgError
			if errors.As(rerr, &pge) {
				for _, s := range []string{e.MaskText(pge.Message), e.MaskDetail(pge.Detail), e.MaskDetail(pge.Where)} {
					if tok := containsPII([]byte(s)); tok != "" {
						t.Errorf("LEAK %q in error of %s: %q", tok, q, s)
					}
				}
			} else if rerr != nil {
				t.Fatalf("%s: %v", q, rerr)
			}
			_, _ = conn.Exec(ctx, "ROLLBACK").ReadAll()
		}
	}
	t.Logf("corpus (%s): %d refusals, %d rows, %d masked values", mode, refused, rowsSeen, masked)
	minRefused := 2
	if mode == "deny" {
		minRefused = 60
	}
	if rowsSeen < 100 || masked < 100 || refused < minRefused {
		t.Fatalf("corpus exercised too little: rows %d masked %d refused %d", rowsSeen, masked, refused)
	}
}

func TestIntegrationKNNUnchanged(t *testing.T) {
	env := startPG(t)
	ctx := context.Background()
	e, _ := New(integrationConfig(), env.cat)
	conn := env.superConn(t)
	q := "SELECT id, embedding <-> '[0.9,0.1,0]' AS dist, embedding, metadata FROM documents ORDER BY embedding <-> '[0.9,0.1,0]' LIMIT 3"
	for _, format := range []int16{0, 1} {
		rr := conn.ExecParams(ctx, q, nil, nil, nil, []int16{format})
		res := rr.Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		rd := &pgproto3.RowDescription{}
		for _, f := range res.FieldDescriptions {
			rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(f.Name), TableOID: f.TableOID, TableAttributeNumber: f.TableAttributeNumber, DataTypeOID: f.DataTypeOID, Format: f.Format})
		}
		p, err := e.Plan(ctx, rd, &Query{SQL: q})
		if err != nil || p == nil {
			t.Fatal(p, err)
		}
		if len(res.Rows) != 3 {
			t.Fatalf("%d rows", len(res.Rows))
		}
		for _, r := range res.Rows {
			out, err := p.Apply(&pgproto3.DataRow{Values: r}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Values[0], r[0]) || !bytes.Equal(out.Values[1], r[1]) || out.Values[2] != nil {
				t.Fatalf("format %d: id/dist changed or embedding not nulled: %q", format, out.Values)
			}
			if tok := containsPII(out.Values[3]); tok != "" {
				t.Fatalf("leak %q", tok)
			}
		}
	}
}

func TestIntegrationCatalog(t *testing.T) {
	env := startPG(t)
	ctx := context.Background()
	var custOID, viewOID uint32
	if err := env.pool.QueryRow(ctx, "SELECT 'customers'::regclass::oid, 'v_customers'::regclass::oid").Scan(&custOID, &viewOID); err != nil {
		t.Fatal(err)
	}
	ref, ok, err := env.cat.Column(ctx, custOID, 3)
	if err != nil || !ok || ref.Schema != "public" || ref.Table != "customers" || ref.Column != "email" || ref.TypeOID != oidText || ref.ViewDef != "" {
		t.Fatalf("%+v %v %v", ref, ok, err)
	}
	ref, ok, err = env.cat.Column(ctx, viewOID, 2)
	if err != nil || !ok || ref.Column != "contact" || !strings.Contains(ref.ViewDef, "email") {
		t.Fatalf("view: %+v %v %v", ref, ok, err)
	}
	var partOID uint32
	_ = env.pool.QueryRow(ctx, "SELECT 'events_2024'::regclass::oid").Scan(&partOID)
	ref, ok, err = env.cat.Column(ctx, partOID, 2)
	if err != nil || !ok || ref.Column != "email" || len(ref.Ancestors) != 1 || ref.Ancestors[0] != "public.events" {
		t.Fatalf("partition: %+v %v %v", ref, ok, err)
	}
	if _, ok, err := env.cat.Column(ctx, 999999, 1); ok || err != nil {
		t.Fatalf("unknown oid: %v %v", ok, err)
	}
	e, _ := New(integrationConfig(), env.cat)
	// a view column resolves to the base column's rule
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{fd("contact", viewOID, 2, oidText, 0)}}
	p, err := e.Plan(ctx, rd, &Query{SQL: "SELECT contact FROM v_customers"})
	if err != nil || p == nil {
		t.Fatal(p, err)
	}
	out, _ := p.Apply(row("zelda.q@example.com"), nil)
	if string(out.Values[0]) != "****@example.com" {
		t.Fatalf("view column: %q", out.Values[0])
	}
	// DDL: rename a masked column; the cache still has the old name until Invalidate
	if err := env.c.Exec(ctx, "vectors", "ALTER TABLE customers RENAME COLUMN email TO mail"); err != nil {
		t.Fatal(err)
	}
	ref, _, _ = env.cat.Column(ctx, custOID, 3)
	if ref.Column != "email" {
		t.Fatalf("cache not used: %q", ref.Column)
	}
	env.cat.Invalidate()
	ref, _, _ = env.cat.Column(ctx, custOID, 3)
	if ref.Column != "mail" {
		t.Fatalf("after invalidate: %q", ref.Column)
	}
	// a view redefined to read a masked column: after the catalog is
	// invalidated (the glue does it on DDL), the engine's cached trace goes too
	q := "SELECT upper(x) FROM v_flip"
	if err := env.c.Exec(ctx, "vectors", "CREATE VIEW v_flip AS SELECT 'plain'::text AS x"); err != nil {
		t.Fatal(err)
	}
	expr := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{fd("upper", 0, 0, oidText, 0)}}
	if p, _ := e.Plan(ctx, expr, &Query{SQL: q}); p == nil || p.String() != "#0:detectors" {
		t.Fatalf("clean view: %v", p)
	}
	if err := env.c.Exec(ctx, "vectors", "CREATE OR REPLACE VIEW v_flip AS SELECT ssn AS x FROM customers"); err != nil {
		t.Fatal(err)
	}
	env.cat.Invalidate()
	if p, _ := e.Plan(ctx, expr, &Query{SQL: q}); p == nil || p.String() != "#0:redact(derived)" {
		t.Fatalf("stale trace: view over a masked column not masked after Invalidate: %v", p)
	}
	// a new table is found without invalidation (unknown OID refetch)
	if err := env.c.Exec(ctx, "vectors", "CREATE TABLE late (a int, phone text)"); err != nil {
		t.Fatal(err)
	}
	var lateOID uint32
	_ = env.pool.QueryRow(ctx, "SELECT 'late'::regclass::oid").Scan(&lateOID)
	ref, ok, _ = env.cat.Column(ctx, lateOID, 2)
	if !ok || ref.Column != "phone" {
		t.Fatalf("late table: %+v", ref)
	}
	cols, err := env.cat.TableColumns(ctx, "", "late")
	if err != nil || strings.Join(cols, ",") != "a,phone" {
		t.Fatalf("columns %v %v", cols, err)
	}
}

func TestIntegrationCopy(t *testing.T) {
	env := startPG(t)
	ctx := context.Background()
	e, _ := New(integrationConfig(), env.cat)
	conn := env.superConn(t)
	for _, q := range []string{
		"COPY customers TO STDOUT",
		"COPY customers (id, email, notes) TO STDOUT",
		"COPY customers TO STDOUT WITH (FORMAT csv, HEADER true)",
		"COPY (SELECT c.id, lower(email), metadata FROM customers c, documents) TO STDOUT (FORMAT csv)",
		"COPY documents TO STDOUT",
		"COPY (SELECT * FROM v_customers) TO STDOUT",
	} {
		cp, err := e.PlanCopy(ctx, q)
		if err != nil || cp == nil {
			t.Fatalf("%s: %v %v", q, cp, err)
		}
		var buf bytes.Buffer
		if _, err := conn.CopyTo(ctx, &buf, q); err != nil {
			t.Fatal(err)
		}
		if containsPII(buf.Bytes()) == "" {
			t.Fatalf("%s: raw copy has no PII (test cannot fail)", q)
		}
		n := 0
		for _, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			out, err := cp.Apply(line)
			if err != nil {
				t.Fatalf("%s: %q: %v", q, line, err)
			}
			n++
			if tok := containsPII(out); tok != "" {
				t.Errorf("%s: leak %q in %q", q, tok, out)
			}
		}
		if n < 3 {
			t.Fatalf("%s: %d rows", q, n)
		}
	}
	if _, err := e.PlanCopy(ctx, "COPY customers TO STDOUT (FORMAT binary)"); err == nil {
		t.Fatal("binary COPY allowed")
	}
}

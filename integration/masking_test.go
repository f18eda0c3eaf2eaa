package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/config"
)

// Masking end to end: a real pgwarden in front of the seeded PostgreSQL,
// real pgx clients, results compared with what PostgreSQL returns directly.

// maskingCorpusConfig is baseConfig plus what the corpus needs: the
// analyst may COPY TO STDOUT (export), and the two free-text columns of the
// seed that carry people's names (customers.notes, documents.body: names
// are not something a detector can recognise) get a rule, so `SELECT *`
// and `c.*` are in scope.
func maskingCorpusConfig(cfg *config.Config) {
	r := cfg.Policy.Roles["analyst"]
	r.Actions = append(slices.Clone(r.Actions), "export")
	cfg.Policy.Roles["analyst"] = r
	cfg.Masking.Rules = append(cfg.Masking.Rules,
		config.MaskRule{Table: "public.customers", Column: "notes", Method: "redact"},
		config.MaskRule{Table: "public.documents", Column: "body", Method: "redact"},
	)
}

// seedPII is every raw PII value of the seed, read directly from
// PostgreSQL: none of them may reach an analyst.
type seedPII struct{ values [][]byte }

var (
	piiOnce sync.Once
	piiSeed seedPII
	piiErr  error
)

func loadSeedPII(t *testing.T) seedPII {
	t.Helper()
	piiOnce.Do(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, upstream.pg.SuperDSN("vectors"))
		if err != nil {
			piiErr = err
			return
		}
		defer conn.Close(ctx)
		seen := map[string]bool{}
		add := func(sql string) {
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				piiErr = err
				return
			}
			defer rows.Close()
			for rows.Next() {
				for _, v := range rows.RawValues() {
					if len(v) >= 6 && !seen[string(v)] { // every seed value is longer
						seen[string(v)] = true
						piiSeed.values = append(piiSeed.values, bytes.Clone(v))
					}
				}
			}
			if err := rows.Err(); err != nil {
				piiErr = err
			}
		}
		add("SELECT name, email, phone, ssn, credit_card, address FROM customers")
		add("SELECT metadata->>'email', metadata->>'phone', metadata->>'name', metadata->>'author' FROM documents")
	})
	if piiErr != nil {
		t.Fatal(piiErr)
	}
	if len(piiSeed.values) < 400 {
		t.Fatalf("only %d distinct raw PII values in the seed", len(piiSeed.values))
	}
	return piiSeed
}

// find returns the first raw PII value contained in b ("" if none).
func (s seedPII) find(b []byte) string {
	for _, v := range s.values {
		if bytes.Contains(b, v) {
			return string(v)
		}
	}
	return ""
}

// maskingObjects creates the view the corpus reads and the function whose
// notices carry PII (idempotent; the seeded tables are not touched).
func maskingObjects(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	d := direct(t)
	for _, sql := range []string{
		`CREATE OR REPLACE VIEW public.mask_e2e_customers AS SELECT id, name AS who, email AS contact, ssn, phone FROM public.customers`,
		`ALTER VIEW public.mask_e2e_customers OWNER TO vector_admin`,
		`GRANT SELECT ON public.mask_e2e_customers TO vector_reader`,
		`CREATE SCHEMA IF NOT EXISTS mask_e2e AUTHORIZATION vector_admin`,
		`GRANT USAGE ON SCHEMA mask_e2e TO vector_reader`,
		`CREATE OR REPLACE FUNCTION mask_e2e.chatty(cid bigint) RETURNS int LANGUAGE plpgsql STABLE AS $$
		 DECLARE e text; p text; s text;
		 BEGIN
		   SELECT email, phone, ssn INTO e, p, s FROM public.customers WHERE id = cid;
		   RAISE NOTICE 'customer % can be reached at % or %', cid, e, p;
		   RAISE WARNING 'ssn on file: %', s;
		   RETURN 1;
		 END $$`,
		`ALTER FUNCTION mask_e2e.chatty(bigint) OWNER TO vector_admin`,
		`GRANT EXECUTE ON FUNCTION mask_e2e.chatty(bigint) TO vector_reader`,
	} {
		must(d.Exec(ctx, sql))
	}
}

// ---- running statements in every client mode --------------------------------

var clientModes = []string{"simple", "exec-text", "cache-text", "cache-binary", "params-binary"}

// result is what one statement returned: field names, raw values (copied),
// the error and the notices it raised.
type result struct {
	fields  []string
	rows    [][][]byte
	code    string
	err     string // message as the client sees it
	errAll  string // every field of the error (for the PII check)
	notices []string
}

func (r *result) setErr(err error) {
	if err == nil {
		return
	}
	r.code = sqlstate(err)
	r.err = err.Error()
	r.errAll = err.Error()
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		r.err = pe.Severity + " " + pe.Code + ": " + pe.Message
		r.errAll = strings.Join([]string{pe.Message, pe.Detail, pe.Hint, pe.Where, pe.SchemaName, pe.TableName, pe.ColumnName, pe.ConstraintName, pe.InternalQuery}, "\x00")
	}
}

func (r *result) blob() []byte {
	var b bytes.Buffer
	for _, row := range r.rows {
		for _, v := range row {
			b.Write(v)
			b.WriteByte(0)
		}
	}
	b.WriteString(r.errAll)
	for _, n := range r.notices {
		b.WriteString(n)
	}
	return b.Bytes()
}

func (r *result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fields=%v err=%q rows=%d", r.fields, r.err, len(r.rows))
	for i, row := range r.rows {
		if i == 3 {
			b.WriteString(" ...")
			break
		}
		fmt.Fprintf(&b, " %q", row)
	}
	return b.String()
}

// client is one connection in one mode, collecting its notices.
type client struct {
	conn    *pgx.Conn
	mode    string
	mu      sync.Mutex
	notices []string
}

func (c *client) takeNotices() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.notices
	c.notices = nil
	return n
}

func noticeText(n *pgconn.Notice) string {
	return n.Severity + " " + n.Code + ": " + n.Message + "|" + n.Detail + "|" + n.Hint + "|" + n.Where
}

func newClient(t *testing.T, cc *pgx.ConnConfig, mode string, through func(*pgx.ConnConfig) *pgx.Conn) *client {
	t.Helper()
	c := &client{mode: mode}
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		c.mu.Lock()
		c.notices = append(c.notices, noticeText(n))
		c.mu.Unlock()
	}
	c.conn = through(cc)
	return c
}

func copyRow(vals [][]byte) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if v != nil {
			out[i] = bytes.Clone(v)
		}
	}
	return out
}

// run executes one statement in the client's mode.
func (c *client) run(ctx context.Context, sql string) result {
	var r result
	switch c.mode {
	case "simple": // the real simple Query message (no client-side interpolation)
		mrr := c.conn.PgConn().Exec(ctx, sql)
		for mrr.NextResult() {
			rr := mrr.ResultReader()
			for _, f := range rr.FieldDescriptions() {
				r.fields = append(r.fields, f.Name)
			}
			for rr.NextRow() {
				r.rows = append(r.rows, copyRow(rr.Values()))
			}
			if _, err := rr.Close(); err != nil {
				r.setErr(err)
			}
		}
		if err := mrr.Close(); err != nil && r.code == "" {
			r.setErr(err)
		}
	case "params-binary": // every result column in binary (format 1)
		rr := c.conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, []int16{1})
		for rr.NextRow() {
			r.rows = append(r.rows, copyRow(rr.Values()))
		}
		for _, f := range rr.FieldDescriptions() {
			r.fields = append(r.fields, f.Name)
		}
		_, err := rr.Close()
		r.setErr(err)
	default:
		var args []any
		switch c.mode {
		case "exec-text": // unnamed statement, Describe portal, text results
			args = []any{pgx.QueryExecModeExec}
		case "cache-text":
			args = []any{pgx.QueryExecModeCacheStatement, pgx.QueryResultFormats{pgx.TextFormatCode}}
		case "cache-binary": // pgx's default: binary for the types it knows
			args = []any{pgx.QueryExecModeCacheStatement}
		}
		rows, err := c.conn.Query(ctx, sql, args...)
		if err == nil {
			for _, f := range rows.FieldDescriptions() {
				r.fields = append(r.fields, f.Name)
			}
			for rows.Next() {
				r.rows = append(r.rows, copyRow(rows.RawValues()))
			}
			rows.Close()
			err = rows.Err()
		}
		r.setErr(err)
	}
	r.notices = c.takeNotices()
	return r
}

// copyOut runs a COPY ... TO STDOUT and returns its data as one row.
func (c *client) copyOut(ctx context.Context, sql string) result {
	var r result
	var buf bytes.Buffer
	tag, err := c.conn.PgConn().CopyTo(ctx, &buf, sql)
	r.setErr(err)
	if err == nil {
		r.fields = []string{tag.String()}
		r.rows = [][][]byte{{buf.Bytes()}}
	}
	r.notices = c.takeNotices()
	return r
}

// corpusEntry is one line of the corpus: a statement or a script.
type corpusEntry struct {
	line   string
	stmts  []string
	copy   bool
	simple bool // simple Query protocol only
}

func loadE2ECorpus(t *testing.T) []corpusEntry {
	t.Helper()
	f, err := os.Open("testdata/masking-e2e/queries.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vec := queryVector("customer contact details and phone numbers")
	var out []corpusEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		e := corpusEntry{line: l}
		if rest, ok := strings.CutPrefix(l, "@simple "); ok {
			l, e.simple = rest, true
		}
		e.copy = strings.HasPrefix(l, "COPY ")
		for _, s := range strings.Split(strings.ReplaceAll(l, "$VEC", vec), " ;; ") {
			e.stmts = append(e.stmts, strings.TrimSpace(s))
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 60 {
		t.Fatalf("corpus has %d entries, want >= 60", len(out))
	}
	return out
}

func (c *client) runEntry(ctx context.Context, e corpusEntry) []result {
	var out []result
	for _, s := range e.stmts {
		if e.copy {
			out = append(out, c.copyOut(ctx, s))
		} else {
			out = append(out, c.run(ctx, s))
		}
	}
	// a script that failed half-way leaves no transaction or statement behind
	if len(e.stmts) > 1 {
		_, _ = c.conn.PgConn().Exec(ctx, "ROLLBACK; DEALLOCATE ALL").ReadAll()
		c.takeNotices()
	}
	return out
}

// nonPII are output columns that never carry PII in the corpus: they must
// reach the analyst byte for byte as PostgreSQL sent them.
var nonPII = map[string]bool{"id": true, "title": true, "dist": true, "embedding": true, "count": true, "rn": true, "source": true, "tags": true, "attname": true}

// TestMaskingCorpus runs the corpus with derived: mask (the default) and
// again with derived: deny + deny_predicates (more refusals, same rules).
func TestMaskingCorpus(t *testing.T) {
	maskingObjects(t)
	for _, deny := range []bool{false, true} {
		t.Run(map[bool]string{false: "derived=mask", true: "derived=deny"}[deny], func(t *testing.T) {
			runMaskingCorpus(t, deny)
		})
	}
}

func runMaskingCorpus(t *testing.T, deny bool) {
	pii := loadSeedPII(t)
	w := startGateway(t, func(c *config.Config) {
		maskingCorpusConfig(c)
		if deny {
			c.Masking.Derived, c.Masking.DenyPredicates = "deny", true
		}
	})
	corpus := loadE2ECorpus(t)
	ctx := context.Background()

	// The test can fail: the raw values are really there directly.
	var probe string
	must0(t, direct(t).QueryRow(ctx, "SELECT string_agg(c::text, ',') FROM customers c").Scan(&probe))
	if pii.find([]byte(probe)) == "" {
		t.Fatal("no seed PII visible directly: the corpus could not fail")
	}

	var refused, maskedRows, checked int
	for _, mode := range clientModes {
		t.Run(mode, func(t *testing.T) {
			dc, err := pgx.ParseConfig(upstream.pg.SuperDSN("vectors"))
			if err != nil {
				t.Fatal(err)
			}
			dir := newClient(t, dc, mode, func(cc *pgx.ConnConfig) *pgx.Conn { return w.connectWith(t, cc) })
			ana := newClient(t, w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst")), mode,
				func(cc *pgx.ConnConfig) *pgx.Conn { return w.connectWith(t, cc) })
			dba := newClient(t, w.connConfig(t, "dba-1@example.com", w.Issuer.token(t, "dba-1@example.com", "dba")), mode,
				func(cc *pgx.ConnConfig) *pgx.Conn { return w.connectWith(t, cc) })
			for _, e := range corpus {
				if (e.copy || e.simple) && mode != "simple" {
					continue // COPY has one protocol; run it once
				}
				qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				want := dir.runEntry(qctx, e)
				gotA := ana.runEntry(qctx, e)
				gotD := dba.runEntry(qctx, e)
				cancel()
				scriptRefused := false // later statements of a script may fail differently then
				for i := range want {
					label := fmt.Sprintf("[%s] %s", mode, e.stmts[i])
					dr, a, d := &want[i], &gotA[i], &gotD[i]
					checked++
					// dba (unmask): exactly what PostgreSQL returns directly
					if !slices.Equal(d.fields, dr.fields) || d.err != dr.err || !rowsEqual(d.rows, dr.rows) || !slices.Equal(d.notices, dr.notices) {
						t.Errorf("%s: dba differs from direct\n dba:    %s\n direct: %s", label, d, dr)
					}
					// analyst: no raw PII anywhere
					if found := pii.find(a.blob()); found != "" {
						t.Errorf("%s: raw PII %q reached the analyst: %s", label, found, a)
					}
					if a.code == "42501" {
						if !strings.Contains(a.err, "pgwarden: ") && dr.code != "42501" {
							t.Errorf("%s: 42501 not from pgwarden: %s", label, a.err)
						}
						if strings.HasPrefix(a.err, "FATAL") {
							t.Errorf("%s: refused by ending the session: %s", label, a.err)
						}
						refused++
						scriptRefused = true
						continue
					}
					if scriptRefused {
						continue
					}
					if a.code != dr.code {
						t.Errorf("%s: analyst error %q, direct %q", label, a.err, dr.err)
						continue
					}
					if a.code != "" {
						continue // the same error as PostgreSQL's, masked
					}
					if len(a.rows) != len(dr.rows) || !slices.Equal(a.fields, dr.fields) {
						t.Errorf("%s: analyst got %d rows %v (%s), direct %d rows %v", label, len(a.rows), a.fields, a.err, len(dr.rows), dr.fields)
						continue
					}
					for ri := range dr.rows {
						for ci, f := range dr.fields {
							if ci < len(dr.rows[ri]) && !bytes.Equal(a.rows[ri][ci], dr.rows[ri][ci]) {
								if nonPII[f] {
									t.Errorf("%s: non-PII column %s row %d changed: %q, direct %q", label, f, ri, a.rows[ri][ci], dr.rows[ri][ci])
								} else {
									maskedRows++
								}
							}
						}
					}
				}
			}
		})
	}
	t.Logf("%d statement results checked, %d refused with 42501, %d values rewritten", checked, refused, maskedRows)
	if maskedRows < 1000 {
		t.Fatalf("only %d values were rewritten: the corpus does not exercise masking", maskedRows)
	}
	if deny && refused < 150 {
		t.Fatalf("derived: deny refused only %d statement results", refused)
	}
}

func rowsEqual(a, b [][][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y [][]byte) bool { return slices.EqualFunc(x, y, bytes.Equal) })
}

// kNN through the gateway with masking on: the same ids and distances as
// PostgreSQL directly, in text and binary; with a `null` rule on the
// embedding the distances still come back while the embedding is NULL.
func TestMaskingKNNParity(t *testing.T) {
	ctx := context.Background()
	vec := queryVector("nearest neighbour search over embeddings")
	const sql = "SELECT id, metadata, embedding, embedding <-> $1::vector AS dist FROM documents ORDER BY embedding <-> $1::vector LIMIT 10"
	type row struct{ id, meta, emb, dist []byte }
	collect := func(t *testing.T, conn *pgx.Conn, format int16) []row {
		t.Helper()
		rr := conn.PgConn().ExecParams(ctx, sql, [][]byte{[]byte(vec)}, nil, nil, []int16{format})
		var out []row
		for rr.NextRow() {
			v := copyRow(rr.Values())
			out = append(out, row{v[0], v[1], v[2], v[3]})
		}
		if _, err := rr.Close(); err != nil {
			t.Fatal(err)
		}
		if len(out) != 10 {
			t.Fatalf("%d rows", len(out))
		}
		return out
	}
	pii := loadSeedPII(t)
	for _, nullEmbedding := range []bool{false, true} {
		t.Run(fmt.Sprintf("null_embedding=%v", nullEmbedding), func(t *testing.T) {
			w := startGateway(t, func(c *config.Config) {
				if nullEmbedding {
					c.Masking.Rules = append(c.Masking.Rules, config.MaskRule{Table: "public.documents", Column: "embedding", Method: "null"})
				}
			})
			ana := w.connect(t, "alice@example.com", "analyst")
			for _, format := range []int16{0, 1} {
				want := collect(t, direct(t), format)
				got := collect(t, ana, format)
				for i := range want {
					if !bytes.Equal(got[i].id, want[i].id) || !bytes.Equal(got[i].dist, want[i].dist) {
						t.Fatalf("format %d row %d: id/dist %q/%q, direct %q/%q", format, i, got[i].id, got[i].dist, want[i].id, want[i].dist)
					}
					if nullEmbedding {
						if got[i].emb != nil {
							t.Fatalf("format %d row %d: embedding not NULL under a null rule (%d bytes)", format, i, len(got[i].emb))
						}
					} else if !bytes.Equal(got[i].emb, want[i].emb) {
						t.Fatalf("format %d row %d: embedding changed", format, i)
					}
					if found := pii.find(got[i].meta); found != "" {
						t.Fatalf("format %d row %d: metadata carries raw %q", format, i, found)
					}
					if pii.find(want[i].meta) == "" || bytes.Equal(got[i].meta, want[i].meta) {
						t.Fatalf("format %d row %d: metadata was not masked", format, i)
					}
				}
			}
		})
	}
}

// Prepared statements: the driver Parses and Describes once, then only
// Binds and Executes (no fresh RowDescription). Every execution is masked,
// in text and binary result formats, via pgx's statement cache and via
// pgconn's ExecStatement directly.
func TestMaskingDescribeOnce(t *testing.T) {
	w := startGateway(t, nil)
	pii := loadSeedPII(t)
	ctx := context.Background()
	const sql = "SELECT id, name, email, ssn, phone, credit_card, address FROM customers WHERE id <= $1 ORDER BY id"
	check := func(t *testing.T, label string, rows [][][]byte) {
		t.Helper()
		if len(rows) != 20 {
			t.Fatalf("%s: %d rows, want 20", label, len(rows))
		}
		for _, r := range rows {
			for _, v := range r[1:] {
				if found := pii.find(v); found != "" {
					t.Fatalf("%s: raw %q", label, found)
				}
			}
			if len(r[2]) == 0 || !bytes.Contains(r[2], []byte("****@")) {
				t.Fatalf("%s: email not masked by its rule: %q", label, r[2])
			}
		}
	}
	t.Run("pgx cache statement", func(t *testing.T) {
		conn := w.connectMode(t, pgx.QueryExecModeCacheStatement, "alice@example.com", "analyst")
		for i := 0; i < 5; i++ {
			for _, f := range []int16{pgx.TextFormatCode, pgx.BinaryFormatCode} {
				rows, err := conn.Query(ctx, sql, pgx.QueryResultFormats{f}, 20)
				if err != nil {
					t.Fatal(err)
				}
				var got [][][]byte
				for rows.Next() {
					got = append(got, copyRow(rows.RawValues()))
				}
				rows.Close()
				if rows.Err() != nil {
					t.Fatal(rows.Err())
				}
				check(t, fmt.Sprintf("run %d format %d", i, f), got)
			}
		}
		var n int
		must0(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", sql).Scan(&n))
		if n != 1 {
			t.Fatalf("%d server-side prepared statements for the query, want 1 (prepared once)", n)
		}
	})
	t.Run("pgconn ExecStatement", func(t *testing.T) {
		conn := w.connect(t, "alice@example.com", "analyst").PgConn()
		sd, err := conn.Prepare(ctx, "masked_once", sql, nil) // Parse + Describe S
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			for _, f := range []int16{0, 1} {
				// Bind + Execute + Sync only: no Describe
				rr := conn.ExecStatement(ctx, sd, [][]byte{[]byte("20")}, nil, []int16{f})
				var got [][][]byte
				for rr.NextRow() {
					got = append(got, copyRow(rr.Values()))
				}
				if _, err := rr.Close(); err != nil {
					t.Fatal(err)
				}
				check(t, fmt.Sprintf("run %d format %d", i, f), got)
			}
		}
	})
}

// Errors, notices and notifications carry PII in free text.
func TestMaskingErrorsNoticesNotifications(t *testing.T) {
	maskingObjects(t)
	// chatty is user-defined: opaque unless vouched for (closed world)
	w := startGateway(t, func(c *config.Config) { c.Policy.Functions.Allow = []string{"mask_e2e.chatty"} })
	pii := loadSeedPII(t)
	ctx := context.Background()
	d := direct(t)
	var ssn, email, phone string
	must0(t, d.QueryRow(ctx, "SELECT ssn, email, phone FROM customers WHERE id = 1").Scan(&ssn, &email, &phone))

	var notices []*pgconn.Notice
	var mu sync.Mutex
	cc := w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst"))
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { mu.Lock(); notices = append(notices, n); mu.Unlock() }
	ana := w.connectWith(t, cc)

	t.Run("error", func(t *testing.T) {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
			_, err := ana.Exec(ctx, "SELECT ssn::int FROM customers ORDER BY id", mode)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "22P02" {
				t.Fatalf("%v: want 22P02, got %v", mode, err)
			}
			if strings.Contains(pe.Message, ssn) || pii.find([]byte(pe.Message+pe.Detail+pe.Where)) != "" {
				t.Fatalf("%v: the error echoes the ssn: %q", mode, pe.Message)
			}
			// the statement reads a masked column: its error text is
			// withheld (issue 14), the SQLSTATE stays
			if !strings.HasPrefix(pe.Message, "pgwarden: error text withheld") || pe.Detail != "" || pe.Where != "" {
				t.Fatalf("%v: error text not withheld: %q %q %q", mode, pe.Message, pe.Detail, pe.Where)
			}
		}
		// control: the dba (unmask) sees PostgreSQL's own text, with the value
		dba := w.connect(t, "dba-1@example.com", "dba")
		_, err := dba.Exec(ctx, "SELECT ssn::int FROM customers ORDER BY id")
		if err == nil || !strings.Contains(err.Error(), ssn) {
			t.Fatalf("dba error should echo the value like PostgreSQL does: %v", err)
		}
	})
	t.Run("notice", func(t *testing.T) {
		mu.Lock()
		notices = nil
		mu.Unlock()
		var one int
		must0(t, ana.QueryRow(ctx, "SELECT mask_e2e.chatty(1)").Scan(&one))
		mu.Lock()
		got := notices
		mu.Unlock()
		if len(got) != 2 {
			t.Fatalf("%d notices, want 2 (NOTICE + WARNING)", len(got))
		}
		for _, n := range got {
			all := n.Message + "|" + n.Detail + "|" + n.Where
			if found := pii.find([]byte(all)); found != "" {
				t.Fatalf("notice carries raw %q: %q", found, all)
			}
		}
		if !strings.HasPrefix(got[0].Message, "customer 1 can be reached at ") {
			t.Fatalf("notice text lost: %q", got[0].Message)
		}
	})
	t.Run("notification", func(t *testing.T) {
		must(ana.Exec(ctx, "LISTEN mask_e2e_chan"))
		payload := fmt.Sprintf("new lead %s, phone %s, ssn %s", email, phone, ssn)
		must(d.Exec(ctx, "SELECT pg_notify('mask_e2e_chan', $1)", payload))
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := ana.WaitForNotification(wctx)
		if err != nil {
			t.Fatal(err)
		}
		if n.Channel != "mask_e2e_chan" || !strings.HasPrefix(n.Payload, "new lead ") {
			t.Fatalf("notification %q %q", n.Channel, n.Payload)
		}
		for _, raw := range []string{email, phone, ssn} {
			if strings.Contains(n.Payload, raw) {
				t.Fatalf("payload carries raw %q: %q", raw, n.Payload)
			}
		}
	})
}

// derived: deny refuses an expression over a masked column before it runs;
// plain masked columns still come back masked. deny_predicates refuses a
// filter on a masked column.
func TestMaskingDerivedDenyAndPredicates(t *testing.T) {
	w := startGateway(t, func(c *config.Config) {
		c.Masking.Derived = "deny"
		c.Masking.DenyPredicates = true
	})
	pii := loadSeedPII(t)
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			conn := w.connectMode(t, mode, "alice@example.com", "analyst")
			for _, sql := range []string{
				"SELECT upper(email) FROM customers",
				"SELECT row_to_json(c) FROM customers c",
				"SELECT c::text FROM customers c",
				"SELECT name || ssn FROM customers",
				"WITH x AS (SELECT email FROM customers) SELECT lower(email) FROM x",
				"SELECT jsonb_path_query(metadata, '$.email') FROM documents",
				"SELECT id FROM customers WHERE email LIKE 'a%'",
				"SELECT id FROM customers WHERE ssn = '123-45-6789'",
			} {
				_, err := conn.Exec(ctx, sql)
				if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "pgwarden: ") {
					t.Errorf("%s: want pgwarden 42501, got %v", sql, err)
				}
			}
			// the session is usable and plain masked columns are masked
			rows, err := conn.Query(ctx, "SELECT id, email, ssn, phone FROM customers ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
				for _, v := range rows.RawValues()[1:] {
					if found := pii.find(v); found != "" {
						t.Fatalf("raw %q", found)
					}
				}
			}
			rows.Close()
			if rows.Err() != nil || n != 200 {
				t.Fatalf("%d rows, %v", n, rows.Err())
			}
		})
	}
}

// COPY TO STDOUT: text and CSV are masked row by row; binary COPY of masked
// columns is refused with 42501 before it runs and the session goes on.
func TestMaskingCopy(t *testing.T) {
	w := startGateway(t, maskingCorpusConfig)
	pii := loadSeedPII(t)
	ctx := context.Background()
	conn := w.connect(t, "alice@example.com", "analyst")
	for _, sql := range []string{
		"COPY (SELECT id, name, email, ssn, phone, credit_card, address FROM customers ORDER BY id) TO STDOUT",
		"COPY (SELECT id, name, email, ssn FROM customers ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
		"COPY customers (id, email, phone, credit_card) TO STDOUT (FORMAT csv, DELIMITER ';', FORCE_QUOTE *)",
		"COPY documents (id, metadata) TO STDOUT",
	} {
		var got, want bytes.Buffer
		if _, err := direct(t).PgConn().CopyTo(ctx, &want, sql); err != nil {
			t.Fatal(err)
		}
		tag, err := conn.PgConn().CopyTo(ctx, &got, sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if found := pii.find(got.Bytes()); found != "" {
			t.Fatalf("%s: raw %q", sql, found)
		}
		gl, wl := bytes.Split(got.Bytes(), []byte("\n")), bytes.Split(want.Bytes(), []byte("\n"))
		if len(gl) != len(wl) || tag.RowsAffected() != int64(len(wl)-1-boolInt(strings.Contains(sql, "HEADER"))) {
			t.Fatalf("%s: %d lines (%s), direct %d", sql, len(gl), tag, len(wl))
		}
		for i := range wl { // ids (first field) unchanged
			sep := []byte("\t")
			if strings.Contains(sql, "csv") {
				sep = []byte(",")
				if strings.Contains(sql, "';'") {
					sep = []byte(";")
				}
			}
			if g, w := bytes.SplitN(gl[i], sep, 2)[0], bytes.SplitN(wl[i], sep, 2)[0]; !bytes.Equal(g, w) {
				t.Fatalf("%s line %d: first field %q, direct %q", sql, i, g, w)
			}
		}
	}
	for _, sql := range []string{
		"COPY (SELECT id, email FROM customers) TO STDOUT (FORMAT binary)",
		"COPY customers TO STDOUT WITH (FORMAT binary)",
		"COPY documents (id, metadata) TO STDOUT (FORMAT binary)",
	} {
		var buf bytes.Buffer
		_, err := conn.PgConn().CopyTo(ctx, &buf, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || pe.Severity != "ERROR" || !strings.Contains(pe.Message, "binary COPY") || buf.Len() != 0 {
			t.Fatalf("%s: want ERROR 42501 about binary COPY and no data, got %v (%d bytes)", sql, err, buf.Len())
		}
	}
	// the session survived, and binary COPY of unmasked columns still works
	var buf, want bytes.Buffer
	sql := "COPY (SELECT id, title, embedding FROM documents ORDER BY id LIMIT 20) TO STDOUT (FORMAT binary)"
	if _, err := conn.PgConn().CopyTo(ctx, &buf, sql); err != nil {
		t.Fatal(err)
	}
	must(direct(t).PgConn().CopyTo(ctx, &want, sql))
	if !bytes.Equal(buf.Bytes(), want.Bytes()) {
		t.Fatal("binary COPY of unmasked columns differs from direct")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

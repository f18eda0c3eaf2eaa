package integration

import (
	"bufio"
	"bytes"
	"context"
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
		`CREATE OR REPLACE FUNCTION mask_e2e.chatty(cid bigint) RETURNS int LANGUAGE plpgsql AS $$
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
	if errorsAs(err, &pe) {
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

func TestMaskingCorpus(t *testing.T) {
	maskingObjects(t)
	pii := loadSeedPII(t)
	w := startGateway(t, maskingCorpusConfig)
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
						refused++
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
						t.Errorf("%s: analyst got %d rows %v, direct %d rows %v", label, len(a.rows), a.fields, len(dr.rows), dr.fields)
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
}

func rowsEqual(a, b [][][]byte) bool {
	return slices.EqualFunc(a, b, func(x, y [][]byte) bool { return slices.EqualFunc(x, y, bytes.Equal) })
}

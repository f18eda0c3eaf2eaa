package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/sqlpolicy"
)

// policyTable makes a private table the tests may try to damage.
func policyTable(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	d := direct(t)
	must(d.Exec(ctx, "DROP TABLE IF EXISTS "+name))
	must(d.Exec(ctx, "CREATE TABLE "+name+" (id int PRIMARY KEY, note text, embedding vector(3))"))
	must(d.Exec(ctx, "INSERT INTO "+name+" SELECT g, 'n'||g, ARRAY[g,g,g]::vector FROM generate_series(1,20) g"))
	must(d.Exec(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON "+name+" TO vector_reader, vector_writer, vector_admin"))
}

func tableCount(t *testing.T, name string) int {
	t.Helper()
	var n int
	must0(t, direct(t).QueryRow(context.Background(), "SELECT count(*) FROM "+name).Scan(&n))
	return n
}

func TestPolicyAnalystCannotWrite(t *testing.T) {
	w := startGateway(t, nil)
	policyTable(t, "pol_a")
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			conn := w.connectMode(t, mode, "alice@example.com", "analyst")
			// allowed: search and read
			var id int
			must0(t, conn.QueryRow(ctx, "SELECT id FROM pol_a ORDER BY embedding <-> '[3,3,3]' LIMIT 1").Scan(&id))
			if id != 3 {
				t.Fatalf("search returned %d", id)
			}
			denied := []string{
				"INSERT INTO pol_a VALUES (100, 'x', '[1,1,1]')",
				"UPDATE pol_a SET note = 'x' WHERE id = 1",
				"DELETE FROM pol_a WHERE id = 1",
				"WITH d AS (DELETE FROM pol_a RETURNING id) SELECT count(*) FROM d",
				"EXPLAIN ANALYZE DELETE FROM pol_a",
				"TRUNCATE pol_a",
				"DROP TABLE pol_a",
				"CREATE INDEX ON pol_a USING hnsw (embedding vector_l2_ops)",
				"ALTER TABLE pol_a ADD COLUMN x int",
				"CREATE TABLE pol_evil (id int)",
				"GRANT ALL ON pol_a TO PUBLIC",
				"SET ROLE vector_admin",
				"SELECT set_config('role', 'vector_admin', false)",
				"DO $$BEGIN DELETE FROM pol_a; END$$",
				"SELECT pg_read_file('/etc/passwd')",
				"SELECT lo_import('/etc/passwd')",
				"COPY pol_a TO STDOUT",
				"VACUUM pol_a",
			}
			for _, sql := range denied {
				_, err := conn.Exec(ctx, sql)
				if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "pgwarden: ") {
					t.Errorf("%s: want pgwarden 42501, got %v", sql, err)
				}
			}
			if n := tableCount(t, "pol_a"); n != 20 {
				t.Fatalf("pol_a has %d rows upstream after denied writes, want 20", n)
			}
			// still usable
			must0(t, conn.QueryRow(ctx, "SELECT count(*) FROM pol_a").Scan(&id))
		})
	}
	var n int
	must0(t, direct(t).QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname = 'pol_evil'").Scan(&n))
	if n != 0 {
		t.Fatal("a denied CREATE TABLE reached PostgreSQL")
	}
}

func TestPolicyPreparedStatementEvasion(t *testing.T) {
	w := startGateway(t, nil)
	policyTable(t, "pol_p")
	ctx := context.Background()
	conn := w.connectMode(t, pgx.QueryExecModeSimpleProtocol, "alice@example.com", "analyst")
	_, err := conn.Exec(ctx, "PREPARE p AS DELETE FROM pol_p")
	if sqlstate(err) != "42501" {
		t.Fatalf("PREPARE of a delete: want 42501, got %v", err)
	}
	_, err = conn.Exec(ctx, "EXECUTE p")
	if err == nil {
		t.Fatal("EXECUTE of a refused PREPARE succeeded")
	}
	// extended protocol Parse of a write
	_, err = conn.Prepare(ctx, "evil", "DELETE FROM pol_p WHERE id = $1")
	if sqlstate(err) != "42501" {
		t.Fatalf("Parse of a delete: want 42501, got %v", err)
	}
	if n := tableCount(t, "pol_p"); n != 20 {
		t.Fatalf("rows changed: %d", n)
	}
}

func TestPolicyMultiStatementAllOrNothing(t *testing.T) {
	w := startGateway(t, nil)
	policyTable(t, "pol_m")
	ctx := context.Background()
	conn := w.connect(t, "ingest-bot@example.com", "ingest")
	// ingest may insert but not truncate: nothing of the string runs.
	_, err := conn.PgConn().Exec(ctx, "INSERT INTO pol_m VALUES (200, 'a', '[1,1,1]'); TRUNCATE pol_m").ReadAll()
	if sqlstate(err) != "42501" {
		t.Fatalf("want 42501, got %v", err)
	}
	var n int
	must0(t, direct(t).QueryRow(ctx, "SELECT count(*) FROM pol_m WHERE id = 200").Scan(&n))
	if n != 0 {
		t.Fatal("the allowed INSERT of a denied multi-statement string reached PostgreSQL")
	}
}

func TestPolicyDeniedInsideTransaction(t *testing.T) {
	w := startGateway(t, nil)
	policyTable(t, "pol_t")
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			conn := w.connectMode(t, mode, "ingest-bot@example.com", "ingest")
			tx, err := conn.Begin(ctx)
			must0(t, err)
			must(tx.Exec(ctx, "INSERT INTO pol_t VALUES (300, 'in tx', '[1,2,3]')"))
			_, err = tx.Exec(ctx, "DROP TABLE pol_t")
			if sqlstate(err) != "42501" {
				t.Fatalf("DROP inside tx: want 42501, got %v", err)
			}
			_, err = tx.Exec(ctx, "SELECT 1")
			if sqlstate(err) != "25P02" {
				t.Fatalf("after a denied statement the transaction must be aborted (25P02), got %v", err)
			}
			must0(t, tx.Rollback(ctx))
			var n int
			must0(t, conn.QueryRow(ctx, "SELECT count(*) FROM pol_t WHERE id = 300").Scan(&n))
			if n != 0 {
				t.Fatal("the INSERT of the aborted transaction was committed")
			}
		})
	}
	if n := tableCount(t, "pol_t"); n != 20 {
		t.Fatalf("pol_t rows upstream %d", n)
	}
}

func TestPolicyIngestCanInsert(t *testing.T) {
	w := startGateway(t, nil)
	policyTable(t, "pol_i")
	ctx := context.Background()
	c1 := w.connectMode(t, pgx.QueryExecModeSimpleProtocol, "ingest-bot@example.com", "ingest")
	must(c1.Exec(ctx, "INSERT INTO pol_i VALUES (101, 'simple', '[1,0,0]')"))
	c2 := w.connect(t, "ingest-bot@example.com", "ingest")
	must(c2.Exec(ctx, "INSERT INTO pol_i VALUES ($1, $2, $3::vector)", 102, "extended", "[0,1,0]"))
	tag, err := c2.PgConn().CopyFrom(ctx, strings.NewReader("103\tcopy\t[0,0,1]\n"), "COPY pol_i FROM STDIN")
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("COPY FROM STDIN: %v %v", tag, err)
	}
	if n := tableCount(t, "pol_i"); n != 23 {
		t.Fatalf("pol_i has %d rows, want 23", n)
	}
	for _, sql := range []string{"TRUNCATE pol_i", "DROP TABLE pol_i"} {
		if _, err := c2.Exec(ctx, sql); sqlstate(err) != "42501" {
			t.Fatalf("%s as ingest: want 42501, got %v", sql, err)
		}
	}
	if n := tableCount(t, "pol_i"); n != 23 {
		t.Fatalf("pol_i has %d rows after denied TRUNCATE", n)
	}
}

// Some drivers send every statement through Parse; a SQL-level EXECUTE is
// then classified by what its prepared statement does.
func TestPolicyExecuteThroughParse(t *testing.T) {
	w := startGateway(t, nil)
	policyTable(t, "pol_x")
	ctx := context.Background()
	conn := w.connectMode(t, pgx.QueryExecModeSimpleProtocol, "alice@example.com", "analyst")
	must(conn.Exec(ctx, "PREPARE q AS SELECT count(*) FROM pol_x"))
	var n int
	// extended protocol (Parse/Bind/Execute) of "EXECUTE q"
	must0(t, conn.QueryRow(ctx, "EXECUTE q", pgx.QueryExecModeExec).Scan(&n))
	if n != 20 {
		t.Fatalf("EXECUTE q through Parse returned %d", n)
	}
	// With bulk_rows 5 the planner's estimate (20 rows) makes the DELETE bulk.
	w2 := startGateway(t, func(c *pgwardenConfig) { c.Policy.Approval.BulkRows = 5 })
	c2 := w2.connectMode(t, pgx.QueryExecModeSimpleProtocol, "ingest-bot@example.com", "ingest")
	must(c2.Exec(ctx, "PREPARE small AS DELETE FROM pol_x WHERE id = $1"))
	must(c2.Exec(ctx, "PREPARE wipe AS DELETE FROM pol_x WHERE id > 0"))
	if _, err := c2.Exec(ctx, "EXECUTE small(1)", pgx.QueryExecModeExec); err != nil {
		t.Fatalf("EXECUTE of a one-row DELETE through Parse: %v", err)
	}
	_, err := c2.Exec(ctx, "EXECUTE wipe", pgx.QueryExecModeExec)
	if sqlstate(err) != "42501" {
		t.Fatal("EXECUTE of a bulk DELETE through Parse ran for ingest")
	}
	if n := tableCount(t, "pol_x"); n != 19 {
		t.Fatalf("pol_x has %d rows, want 19", n)
	}
}

// bypassDoors is the scaffolding shared by the parse-safety tests: a text
// that is one harmless SELECT to pgwarden's parser but a SELECT and a
// DELETE to a server lexing under an unsafe setting, a private table (fresh
// rows per door, that vector_reader may delete from, so only pgwarden stands
// in the way), and the checks that the DELETE never ran.
type bypassDoors struct {
	w       *gw
	table   string // deleted from by sql
	sql     string // the bypass text
	want    string // what its SELECT returns where both sides agree
	setting string // named in the gateway's refusal
}

const bypassRows = 20

func (b bypassDoors) intact(t *testing.T, what string) {
	t.Helper()
	if n := tableCount(t, b.table); n != bypassRows {
		t.Fatalf("%s: %s has %d rows upstream, want %d: the DELETE ran", what, b.table, n, bypassRows)
	}
}

// refused: err is pgwarden's 42501 (reported, not fatal: the test goes on
// to show what the door leads to).
func (b bypassDoors) refused(t *testing.T, err error, what string) {
	t.Helper()
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "pgwarden: ") {
		t.Errorf("%s: want pgwarden 42501, got %v", what, err)
	}
}

// refusedAll runs each statement on conn and wants every one refused.
func (b bypassDoors) refusedAll(t *testing.T, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		_, err := conn.Exec(context.Background(), sql)
		b.refused(t, err, sql)
	}
}

func (b bypassDoors) analyst(t *testing.T) *pgx.Conn {
	return b.w.connectMode(t, pgx.QueryExecModeSimpleProtocol, "alice@example.com", "analyst")
}

// raw sends text as an attacker's client would: no client-side guard (pgx
// refuses simple-protocol queries when standard_conforming_strings is off
// or client_encoding is not UTF8; an attacker's client does not).
func raw(conn *pgx.Conn, sql string) error {
	_, err := conn.PgConn().Exec(context.Background(), sql).ReadAll()
	return err
}

// runBypass: in the session the gateway keeps safe, the text is the one
// SELECT pgwarden saw, and the table is untouched.
func (b bypassDoors) runBypass(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	res, err := conn.PgConn().Exec(context.Background(), b.sql).ReadAll()
	b.intact(t, "after the bypass text")
	if err != nil {
		t.Fatalf("bypass text as one SELECT: %v", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != b.want {
		t.Fatalf("bypass text: %d results, want the one SELECT", len(res))
	}
}

// startupRefused: a session asking for setting=value in its startup
// packet is refused with FATAL 42501 (and if it were not, the bypass text
// must still leave the table intact).
func (b bypassDoors) startupRefused(t *testing.T, value string) {
	t.Helper()
	cc := b.w.connConfig(t, "alice@example.com", b.w.Issuer.token(t, "alice@example.com", "analyst"))
	cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cc.RuntimeParams[b.setting] = value
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err == nil {
		_ = raw(conn, b.sql)
		conn.Close(ctx)
		b.intact(t, "connected with "+b.setting+"="+value)
		t.Fatalf("connected with %s=%s", b.setting, value)
	}
	b.refused(t, err, "startup parameter "+b.setting+"="+value)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Severity != "FATAL" {
		t.Fatalf("%s=%s: severity %s, want FATAL", b.setting, value, pe.Severity)
	}
}

// serverReports: a function (created by an administrator; creating one
// needs ddl) whose body the classifier cannot see — calling it is a read —
// runs set_config(setting, value); when the server reports the change the
// gateway ends the session before another statement runs.
func (b bypassDoors) serverReports(t *testing.T, fn, value string) {
	t.Helper()
	// STABLE and vouched for by policy.functions.allow (startGateway
	// below): the classifier then traces its call like a pure function's
	// and cannot see the set_config inside.
	must(direct(t).Exec(context.Background(), `CREATE OR REPLACE FUNCTION `+fn+`() RETURNS text LANGUAGE sql STABLE
		AS $$ SELECT set_config('`+b.setting+`', '`+value+`', false) $$`))
	t.Cleanup(func() { _, _ = direct(t).Exec(context.Background(), "DROP FUNCTION IF EXISTS "+fn+"()") })
	conn := b.analyst(t)
	err := raw(conn, "SELECT "+fn+"()")
	if err == nil {
		// The FATAL may arrive after the row; then the next statement sees the closed session.
		err = raw(conn, b.sql)
	} else if err2 := raw(conn, b.sql); err2 == nil {
		t.Logf("the function's call failed: %v", err)
		b.intact(t, "bypass after the function")
		t.Fatalf("the session still runs statements after the server reported %s %s", b.setting, value)
	}
	b.intact(t, "after the function set "+b.setting+" to "+value)
	b.refused(t, err, "statement after "+b.setting+" became "+value)
	if !strings.Contains(err.Error(), b.setting) {
		t.Fatalf("error does not say why: %v", err)
	}
	if !conn.IsClosed() {
		t.Fatal("session still open")
	}
}

// scsBypassSQL is the text that splits differently on each side when
// standard_conforming_strings is off: pgwarden's parser (always on) sees one
// SELECT of a string literal; a server with it off reads the backslash as
// escaping the quote after it, so the first literal is x' and the DELETE
// runs, with --' a comment. It is the text of the report with the table
// replaced by a private one that vector_reader may delete from, so that
// only pgwarden stands between the analyst and the DELETE.
const scsBypassSQL = `SELECT 'x\''; DELETE FROM pol_scs; --'`

// TestPolicyStandardConformingStrings: a read-only group must not be able to
// turn standard_conforming_strings off by any door (SET, set_config, a
// startup parameter, UPDATE pg_settings) and so smuggle a DELETE past the
// parser; and if the server reports it off anyway (here: a function the
// classifier cannot see into), the session ends before another statement.
func TestPolicyStandardConformingStrings(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Policy.Functions.Allow = []string{"pol_scs_flip"} })
	ctx := context.Background()
	b := bypassDoors{w: w, table: "pol_scs", sql: scsBypassSQL, want: `x\'; DELETE FROM pol_scs; --`, setting: "standard_conforming_strings"}
	refused, analyst, runBypass := b.refused, b.analyst, b.runBypass
	t.Run("SET", func(t *testing.T) {
		policyTable(t, "pol_scs") // fresh rows for each door
		conn := analyst(t)
		b.refusedAll(t, conn,
			"SET standard_conforming_strings = off",
			"SET LOCAL standard_conforming_strings TO false",
			"SET standard_conforming_strings = 0")
		runBypass(t, conn)
	})
	t.Run("startup parameter", func(t *testing.T) {
		policyTable(t, "pol_scs") // fresh rows for each door
		b.startupRefused(t, "off")
	})
	t.Run("set_config", func(t *testing.T) {
		policyTable(t, "pol_scs") // fresh rows for each door
		conn := analyst(t)
		b.refusedAll(t, conn,
			"SELECT set_config('standard_conforming_strings', 'off', false)",
			"SELECT set_config('standard_conforming_strings', 'off', true)")
		runBypass(t, conn)
		// ingest may UPDATE, but pg_settings' rule is set_config.
		ing := w.connectMode(t, pgx.QueryExecModeSimpleProtocol, "ivan@example.com", "ingest")
		_, err := ing.Exec(ctx, "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'")
		refused(t, err, "UPDATE pg_settings")
	})
	t.Run("on stays allowed", func(t *testing.T) {
		policyTable(t, "pol_scs") // fresh rows for each door
		conn := analyst(t)
		for _, sql := range []string{
			"SET standard_conforming_strings = on",
			"SELECT set_config('standard_conforming_strings', 'on', false)",
			"SET standard_conforming_strings TO DEFAULT",
			"RESET standard_conforming_strings",
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		var v string
		must0(t, conn.QueryRow(ctx, "SHOW standard_conforming_strings").Scan(&v))
		if v != "on" {
			t.Fatalf("standard_conforming_strings = %q", v)
		}
		runBypass(t, conn)
	})
	t.Run("server reports it off", func(t *testing.T) {
		policyTable(t, "pol_scs") // fresh rows for each door
		b.serverReports(t, "pol_scs_flip", "off")
	})
}

// encBypassSQL splits differently on each side when the session's
// client_encoding is SJIS. PostgreSQL converts the query to UTF8 before it
// lexes it: 0xC3 is one SJIS character (half-width katakana) and 0x81 0x5C
// another (a horizontal bar), so the server sees SELECT E'<two characters>'
// followed by a DELETE and a comment. pgwarden's parser reads the bytes as
// they are: 0xC3 0x81 is the UTF-8 letter Á and 0x5C a backslash that
// escapes the quote after it in E'...' (standard_conforming_strings does
// not matter there), so the rest is one string literal of a harmless
// SELECT. (A lone SJIS lead byte such as 0x95 before the 0x5C makes the
// literal invalid UTF-8, which pg_query_go refuses to decode: fail closed.
// A lead byte that ends a valid UTF-8 character does not.)
const encBypassSQL = "SELECT E'\xc3\x81\x5c'; DELETE FROM pol_enc; --'"

// encBypassValue is what a UTF8 session (where both sides agree) returns.
const encBypassValue = "\xc3\x81'; DELETE FROM pol_enc; --"

// TestPolicyClientEncoding: a read-only group must not be able to move the
// session to a client encoding whose multibyte characters may contain
// ASCII bytes (SJIS, BIG5, GBK, UHC, GB18030, JOHAB) by any door — SET,
// SET NAMES, set_config, a startup parameter, a database default, a
// function — and so smuggle a DELETE past the parser; encodings where every
// byte below 0x80 is ASCII keep working.
func TestPolicyClientEncoding(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Policy.Functions.Allow = []string{"pol_enc_flip"} })
	ctx := context.Background()
	b := bypassDoors{w: w, table: "pol_enc", sql: encBypassSQL, want: encBypassValue, setting: "client_encoding"}
	intact, refused, analyst, runBypass := b.intact, b.refused, b.analyst, b.runBypass

	// Each door is refused with 42501: by the policy (ERROR, the statement
	// never reaches the server) or, for a statement the policy let through,
	// by the gateway when the server reports the new client_encoding
	// (FATAL, the session ends before its next statement). LOCAL ones run
	// in a transaction, where they take effect.
	for _, sql := range []string{
		"SET client_encoding = 'SJIS'",
		"SET client_encoding TO 'Shift_JIS'",
		"SET SESSION client_encoding = 'mskanji'",
		"BEGIN; SET LOCAL client_encoding = 'sjis'",
		"SET NAMES 'SJIS'",
		"SET client_encoding = 'BIG5'",
		"SET client_encoding = 'GBK'",
		"SET client_encoding = 'WIN949'",
		"SET client_encoding = 'GB18030'",
		"SET client_encoding = 'JOHAB'",
		"SET client_encoding = 'SHIFT_JIS_2004'",
		"SELECT set_config('client_encoding', 'SJIS', false)",
		"BEGIN; SELECT set_config('client_encoding', 'WIN932', true)",
	} {
		t.Run(sql, func(t *testing.T) {
			policyTable(t, "pol_enc") // fresh rows for each door
			conn := analyst(t)
			err := raw(conn, sql)
			if err == nil {
				// a FATAL may come after the statement's own result
				err = raw(conn, encBypassSQL)
			}
			refused(t, err, sql)
			if !conn.IsClosed() {
				_ = raw(conn, "ROLLBACK")
				runBypass(t, conn)
			}
			intact(t, "after "+sql)
		})
	}
	// A client that does not wait for the SET's ReadyForQuery: the
	// ParameterStatus comes too late to stop the next query, so only the
	// policy can refuse the SET.
	t.Run("pipelined", func(t *testing.T) {
		if a, _ := sqlpolicy.Classify("SET client_encoding = 'SJIS'"); a.Statements[0].Action != sqlpolicy.ActionAdmin {
			t.Fatal("the policy must refuse SET client_encoding = 'SJIS': a pipelined SET + query is caught only after it ran otherwise")
		}
		policyTable(t, "pol_enc")
		conn := analyst(t)
		fe := conn.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: "SET client_encoding = 'SJIS'"})
		fe.Send(&pgproto3.Query{String: encBypassSQL})
		must0(t, fe.Flush())
		var errs []string
		for ready := 0; ready < 2; {
			msg, err := fe.Receive()
			if err != nil {
				break // the session was ended
			}
			switch m := msg.(type) {
			case *pgproto3.ReadyForQuery:
				ready++
			case *pgproto3.ErrorResponse:
				errs = append(errs, m.Severity+" "+m.Code+" "+m.Message)
				if m.Severity == "FATAL" {
					ready = 2
				}
			}
		}
		intact(t, "after a pipelined SET client_encoding and the bypass text")
		if len(errs) == 0 || !strings.Contains(errs[0], "42501 pgwarden: ") {
			t.Fatalf("pipelined SET client_encoding: want pgwarden 42501 first, got %q", errs)
		}
	})
	t.Run("startup parameter", func(t *testing.T) {
		policyTable(t, "pol_enc")
		for _, enc := range []string{"SJIS", "Shift-JIS", "BIG5", "unknown_encoding"} {
			b.startupRefused(t, enc)
		}
	})
	t.Run("database default", func(t *testing.T) {
		policyTable(t, "pol_enc")
		d := direct(t)
		must(d.Exec(ctx, "ALTER DATABASE vectors SET client_encoding = 'SJIS'"))
		t.Cleanup(func() { _, _ = direct(t).Exec(context.Background(), "ALTER DATABASE vectors RESET client_encoding") })
		cc := w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst"))
		cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		conn, err := pgx.ConnectConfig(cctx, cc)
		cancel()
		if err == nil {
			enc := conn.PgConn().ParameterStatus("client_encoding")
			err = raw(conn, encBypassSQL)
			conn.Close(ctx)
			intact(t, "connected to a database whose default client_encoding is "+enc)
			t.Fatalf("connected to a database whose default client_encoding is %s (bypass: %v)", enc, err)
		}
		refused(t, err, "database default client_encoding SJIS")
		if !strings.Contains(err.Error(), "client_encoding") {
			t.Fatalf("error does not say why: %v", err)
		}
	})
	t.Run("server reports it", func(t *testing.T) {
		policyTable(t, "pol_enc")
		b.serverReports(t, "pol_enc_flip", "SJIS")
	})
	t.Run("ASCII-safe encodings stay allowed", func(t *testing.T) {
		policyTable(t, "pol_enc")
		conn := analyst(t)
		for _, sql := range []string{
			"SET client_encoding = 'LATIN1'",
			"SET client_encoding = 'WIN1252'",
			"SET NAMES 'EUC_JP'",
			"SET client_encoding = 'iso-8859-5'",
			"SELECT set_config('client_encoding', 'KOI8R', false)",
			"SET client_encoding = 'unicode'",
			"SET client_encoding TO DEFAULT",
			"RESET client_encoding",
			"SET client_encoding = 'UTF8'",
		} {
			if err := raw(conn, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		if v := conn.PgConn().ParameterStatus("client_encoding"); v != "UTF8" {
			t.Fatalf("client_encoding = %q", v)
		}
		runBypass(t, conn)
		// Startup parameters that drivers and psql send.
		for _, enc := range []string{"UTF8", "utf-8", "LATIN1", "WIN1252", "EUC_KR"} {
			cc := w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst"))
			cc.RuntimeParams["client_encoding"] = enc
			c := w.connectWith(t, cc)
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM pol_enc").Scan(&n); err != nil || n != bypassRows {
				t.Fatalf("client_encoding=%s: %d %v", enc, n, err)
			}
		}
	})
}

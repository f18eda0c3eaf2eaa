package integration

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/config"
)

// closedWorldFunctions creates, as the superuser, the functions of issue
// 14's report: purge_note is SECURITY DEFINER, owned by vector_admin, and
// deletes through a SELECT; slugify is a harmless IMMUTABLE helper;
// bump_note is VOLATILE and writes.
func closedWorldFunctions(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	d := direct(t)
	policyTable(t, "cw_notes")
	for _, sql := range []string{
		`CREATE OR REPLACE FUNCTION purge_note(n int) RETURNS int LANGUAGE sql SECURITY DEFINER AS 'DELETE FROM cw_notes WHERE id = n RETURNING id'`,
		`ALTER FUNCTION purge_note(int) OWNER TO vector_admin`,
		`CREATE OR REPLACE FUNCTION slugify(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT lower(replace(s, ' ', '-'))$$`,
		`CREATE OR REPLACE FUNCTION bump_note(n int) RETURNS int LANGUAGE sql AS $$UPDATE cw_notes SET note = note || '+' WHERE id = n RETURNING id$$`,
		`GRANT EXECUTE ON FUNCTION purge_note(int), slugify(text), bump_note(int) TO PUBLIC`,
	} {
		must(d.Exec(ctx, sql))
	}
}

// TestClosedWorldPolicy: a user-defined VOLATILE function in a SELECT is
// admin unless policy.functions.allow vouches for it, through the simple
// and the extended protocol; what it would have deleted stays.
func TestClosedWorldPolicy(t *testing.T) {
	closedWorldFunctions(t)
	w := startGateway(t, func(c *config.Config) {
		c.Policy.Functions.Allow = []string{"public.slugify", "bump_note"}
	})
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			alice := w.connectMode(t, mode, "alice@example.com", "analyst")
			for _, sql := range []string{
				"SELECT purge_note(7)",
				"SELECT public.purge_note(7)",
				"SELECT md5(purge_note(7)::text)",
				"SELECT * FROM purge_note(7)",
				"WITH x AS (SELECT purge_note(7) AS id) SELECT id FROM x",
				"SELECT id FROM cw_notes WHERE purge_note(id) = 7",
				"SELECT no_such_function_anywhere(7)",
			} {
				var v any
				err := alice.QueryRow(ctx, sql).Scan(&v)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "42501" || !strings.HasPrefix(pe.Message, "pgwarden: ") {
					t.Fatalf("%s: %v, want 42501 pgwarden: ...", sql, err)
				}
				fn := "purge_note"
				if strings.Contains(sql, "no_such") {
					fn = "no_such_function_anywhere"
				}
				if !strings.Contains(pe.Detail, fn) {
					t.Errorf("%s: detail %q does not name %s", sql, pe.Detail, fn)
				}
				if !strings.Contains(pe.Detail, "policy.functions.allow") {
					t.Errorf("%s: detail %q does not name the fix", sql, pe.Detail)
				}
			}
			if n := tableCount(t, "cw_notes"); n != 20 {
				t.Fatalf("cw_notes has %d rows after the refused calls, want 20", n)
			}
			// vouched for: an IMMUTABLE helper is a read; a VOLATILE one
			// runs under volatile_action (update), which analyst lacks.
			var slug string
			must0(t, alice.QueryRow(ctx, "SELECT slugify('Hello World')").Scan(&slug))
			if slug != "hello-world" {
				t.Fatalf("slugify = %q", slug)
			}
			var v any
			if err := alice.QueryRow(ctx, "SELECT bump_note(1)").Scan(&v); sqlstate(err) != "42501" {
				t.Fatalf("analyst bump_note: %v, want 42501", err)
			}
			ivan := w.connectMode(t, mode, "ivan@example.com", "ingest")
			must0(t, ivan.QueryRow(ctx, "SELECT bump_note(1)").Scan(&v))
		})
	}
}

// TestClosedWorldSeesNewFunctions: a function created through the gateway
// is classified from the refreshed catalog at once (DDL invalidates it).
func TestClosedWorldSeesNewFunctions(t *testing.T) {
	w := startGateway(t, nil)
	ctx := context.Background()
	dana := w.connect(t, "dana@example.com", "dba")
	must(dana.Exec(ctx, "SET pgwarden.reason = 'closed world test'"))
	must(dana.Exec(ctx, `CREATE OR REPLACE FUNCTION cw_fresh(n int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT n + 1'`))
	must(direct(t).Exec(ctx, `GRANT EXECUTE ON FUNCTION cw_fresh(int) TO PUBLIC`)) // GRANT is admin: held
	var v int
	alice := w.connect(t, "alice@example.com", "analyst")
	err := alice.QueryRow(ctx, "SELECT cw_fresh(1)").Scan(&v)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Detail, "VOLATILE") || strings.Contains(pe.Detail, "not classified") {
		t.Fatalf("analyst cw_fresh: %v, want 42501 naming a VOLATILE user-defined function (not an unknown one)", err)
	}
}

// TestClosedWorldMasking: masked data has no way out of a statement but
// masked rows. A SECURITY DEFINER function owned by vector_admin returns a
// masked column (its owner reads it, the gateway cannot see inside), and
// the *_to_xml family reads whole tables by name: each is refused with
// 42501 through pgx (text and binary results) and psql, and nothing of the
// raw value reaches the analyst.
func TestClosedWorldMasking(t *testing.T) {
	ctx := context.Background()
	d := direct(t)
	for _, sql := range []string{
		`CREATE OR REPLACE FUNCTION cw_contact(n int) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER AS 'SELECT email FROM customers WHERE id = n'`,
		`ALTER FUNCTION cw_contact(int) OWNER TO vector_admin`,
		`GRANT EXECUTE ON FUNCTION cw_contact(int) TO PUBLIC`,
	} {
		must(d.Exec(ctx, sql))
	}
	t.Cleanup(func() { _, _ = direct(t).Exec(context.Background(), "DROP FUNCTION IF EXISTS cw_contact(int)") })
	var email string
	must0(t, d.QueryRow(ctx, "SELECT email FROM customers WHERE id = 1").Scan(&email))
	// The test can fail: directly, the function hands out the raw value.
	var viaFn string
	must0(t, d.QueryRow(ctx, "SELECT cw_contact(1)").Scan(&viaFn))
	if viaFn != email {
		t.Fatalf("cw_contact(1) = %q directly, want the raw email", viaFn)
	}

	w := startGateway(t, nil)
	leaks := []string{
		"SELECT md5(cw_contact(1))",
		"SELECT cw_contact(1)",
		"SELECT table_to_xml('customers', true, false, '')",
		"SELECT query_to_xml('SELECT email FROM customers', true, false, '')",
		"SELECT schema_to_xml('public', true, false, '')",
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			alice := w.connectMode(t, mode, "alice@example.com", "analyst")
			for _, sql := range leaks {
				var v any
				err := alice.QueryRow(ctx, sql).Scan(&v)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "42501" || !strings.HasPrefix(pe.Message, "pgwarden: ") {
					t.Fatalf("%s: %v (value %v), want 42501 pgwarden: ...", sql, err, v)
				}
				if strings.Contains(pe.Message+pe.Detail+pe.Hint, email) {
					t.Fatalf("%s: the refusal carries the raw email: %+v", sql, pe)
				}
			}
		})
	}
	t.Run("binary results", func(t *testing.T) {
		alice := w.connect(t, "alice@example.com", "analyst")
		for _, sql := range leaks[:2] {
			rr := alice.PgConn().ExecParams(ctx, sql, nil, nil, nil, []int16{1}).Read()
			if sqlstate(rr.Err) != "42501" {
				t.Fatalf("%s with binary results: %v, want 42501", sql, rr.Err)
			}
		}
	})
	t.Run("psql", func(t *testing.T) {
		needTool(t, "psql", "the psql client")
		tok := w.Issuer.token(t, "alice@example.com", "analyst")
		for _, sql := range leaks {
			out, errOut, err := w.psql(t, "alice@example.com", tok, "-c", sql)
			if err == nil || !strings.Contains(errOut, "pgwarden: ") {
				t.Fatalf("psql %s: %v, stdout %q, stderr %q; want a pgwarden refusal", sql, err, out, errOut)
			}
			if strings.Contains(out+errOut, email) {
				t.Fatalf("psql %s: the raw email reached the client", sql)
			}
		}
		// control: a masked read still answers, masked
		out, errOut, err := w.psql(t, "alice@example.com", tok, "-c", "SELECT email FROM customers WHERE id = 1")
		if err != nil || strings.TrimSpace(out) == "" || strings.Contains(out, email) {
			t.Fatalf("psql masked read: %v, stdout %q, stderr %q", err, out, errOut)
		}
	})
}

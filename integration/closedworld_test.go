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

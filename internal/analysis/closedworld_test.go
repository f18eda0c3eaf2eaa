package analysis

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// TestClosedWorld enumerates every function of a real PostgreSQL 15 with
// pgvector and requires a reviewed answer for each built-in one: a new
// PostgreSQL or extension version fails here until exceptions.go answers
// for what it added. PGWARDEN_CLOSEDWORLD_DSN points it at an existing
// server instead of starting one; PGWARDEN_UPDATE_BUILTIN=1 rewrites
// builtin_pg15.tsv from that server.
func TestClosedWorld(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn := os.Getenv("PGWARDEN_CLOSEDWORLD_DSN")
	if dsn == "" {
		c := pgtest.StartT(t, pgtest.Options{})
		if err := c.Exec(ctx, "postgres", "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
			t.Fatal(err)
		}
		dsn = c.SuperDSN("postgres")
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		t.Fatal(err)
	}
	funcs, err := QueryFuncs(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PGWARDEN_UPDATE_BUILTIN") == "1" {
		if err := os.WriteFile("builtin_pg15.tsv", []byte(WriteBuiltin(funcs)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs := NewFunctions(funcs, Options{}, "catalog")
	var unknown []string
	classes := map[Class]int{}
	for _, e := range fs.All() {
		if !e.F.BuiltIn() {
			continue
		}
		if !e.V.Known {
			unknown = append(unknown, e.V.Name+"("+e.F.Args+") "+volName(e.F.Volatility))
			continue
		}
		classes[e.V.Class]++
	}
	if len(unknown) > 0 {
		t.Errorf("%d built-in functions have no reviewed class (add them to exceptions.go):\n%s", len(unknown), strings.Join(unknown, "\n"))
	}
	t.Logf("classes: pure %d, reads hidden %d, writes state %d, admin %d", classes[Pure], classes[ReadsHidden], classes[WritesState], classes[Admin])

	// The embedded snapshot matches this server: policy without a
	// catalog connection classifies the same way.
	snap := map[string]bool{}
	for _, f := range Builtin() {
		snap[f.Schema+"."+f.Name] = true
	}
	missing := 0
	for _, f := range funcs {
		if f.BuiltIn() && !snap[f.Schema+"."+f.Name] {
			missing++
			if missing < 10 {
				t.Errorf("%s.%s is not in builtin_pg15.tsv (regenerate with PGWARDEN_UPDATE_BUILTIN=1)", f.Schema, f.Name)
			}
		}
	}

	// Named leaks of the adversarial run, and the families they stand for.
	for name, want := range map[string]Class{
		"table_to_xml": ReadsHidden, "schema_to_xml": ReadsHidden, "database_to_xml": ReadsHidden,
		"cursor_to_xml": ReadsHidden, "query_to_xml": ReadsHidden, "query_to_xml_and_xmlschema": ReadsHidden,
		"table_to_xmlschema": ReadsHidden, "ts_stat": ReadsHidden, "current_setting": ReadsHidden,
		"set_config": WritesState, "pg_notify": WritesState, "pg_advisory_lock": WritesState,
		"nextval": WritesState, "pg_read_file": Admin, "lo_import": Admin, "pg_terminate_backend": Admin,
		"md5": Pure, "lower": Pure, "now": Pure, "l2_distance": Pure, "cosine_distance": Pure,
	} {
		if v := fs.Lookup("", name); !v.Known || v.Class != want {
			t.Errorf("%s: %v known=%v (%s), want %v", name, v.Class, v.Known, v.Reason, want)
		}
	}
}

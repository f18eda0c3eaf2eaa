package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// policyCheckConfig is a config for the check: catalogDSN and adminDSN go to
// masking.catalog_dsn and credentials.native.admin_dsn.
func policyCheckConfig(catalogDSN, adminDSN string) string {
	return fmt.Sprintf(`
tls: { self_signed: true }
auth: { oidc: { issuer: https://idp.example.com, audience: pgwarden } }
credentials: { native: { admin_dsn: %q } }
policy:
  roles:
    analyst: { actions: [search, read], db_role: vector_reader }
    ingest:  { actions: [search, read, insert, update, delete], db_role: vector_writer }
    dba:     { actions: [all], db_role: vector_admin, unmask: true }
    ghost:   { actions: [read], db_role: ghost_role }
    tooling: { actions: [read] }
  approval: { approvers: [dba] }
masking:
  catalog_dsn: %q
  rules:
    - { table: public.customers, column: email, method: email }
    - { table: public.customers, column: ssn, method: partial, keep_last: 4 }
    - { table: public.documents, column: metadata, json_keys: [email, phone], method: redact }
    - { table: public.Leads, column: email, method: redact }
    - { table: public.nosuch, column: x, method: redact }
    - { column: phone, method: redact }
`, adminDSN, catalogDSN)
}

// fixLines returns the statements of the report's "fix:" lines, in order.
func fixLines(out string) []string {
	var fx []string
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "fix: "); ok {
			fx = append(fx, s)
		}
	}
	return fx
}

func countPrefix(out, prefix string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func TestPolicyCheckAgainstPostgres(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.CreateDB(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "shop",
		`CREATE ROLE vector_reader NOLOGIN`,
		`CREATE ROLE vector_writer NOLOGIN`,
		`CREATE ROLE vector_admin NOLOGIN CREATEROLE`,
		`CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text, ssn text, created_at timestamptz DEFAULT now())`,
		`INSERT INTO public.customers (id, name, email, ssn) VALUES (1, 'Ada', 'ada@example.com', '123-45-6789')`,
		`CREATE TABLE public.documents (id int PRIMARY KEY, body text, metadata jsonb)`,
		`CREATE TABLE public."Leads" (id int, "Email" text)`,
		`CREATE VIEW public.contacts AS SELECT id, email FROM public.customers`,
		// analyst's role: table-level SELECT (so it reads email and ssn), an
		// INSERT it should not have, CREATE on the schema, a view over email.
		`GRANT SELECT, INSERT ON public.customers TO vector_reader`,
		`GRANT SELECT ON public."Leads" TO vector_reader`,
		`GRANT SELECT ON public.contacts TO vector_reader`,
		`GRANT CREATE ON SCHEMA public TO vector_reader`,
		// Everyone reads documents (and so its jsonb metadata).
		`GRANT SELECT ON public.documents TO PUBLIC`,
		// ingest's role: a column-level SELECT of email, TRUNCATE, CREATEDB.
		`GRANT SELECT (id, name, email), INSERT, UPDATE, DELETE, TRUNCATE ON public.customers TO vector_writer`,
		`ALTER ROLE vector_writer CREATEDB`,
		`GRANT ALL ON ALL TABLES IN SCHEMA public TO vector_admin`,
	); err != nil {
		t.Fatal(err)
	}
	bogus := fmt.Sprintf("postgres://nobody@127.0.0.1:%d/shop?sslmode=disable&connect_timeout=3", mustFreePort(t))
	// masking.catalog_dsn wins over credentials.native.admin_dsn.
	cfg := writeConfig(t, policyCheckConfig(c.SuperDSN("shop"), bogus))

	code, out, errs := runCLI("policy", "check", "--config", cfg)
	t.Logf("first run:\n%s", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (warnings); stderr: %s", code, errs)
	}
	warns := countPrefix(out, "WARN")
	if want := fmt.Sprintf("policy check: %d warning(s)", warns); !strings.Contains(errs, want) {
		t.Errorf("stderr %q lacks %q", errs, want)
	}
	for _, want := range []string{
		"pgwarden policy check: database shop as postgres",
		"info  masking.rules[4] (public.nosuch.x): not found: no table public.nosuch in database shop",
		"info  masking.rules[5] (phone, any table): not found: no column phone in database shop",
		"\ngroup analyst: db_role vector_reader, actions search, read\n",
		"WARN  public.customers.email (masking.rules[0], method email): vector_reader can SELECT it (table-level SELECT granted to vector_reader); pgwarden masks it, but a direct connection as vector_reader bypassing pgwarden would see it\n",
		"WARN  public.customers.ssn (masking.rules[1], method partial): vector_reader can SELECT it (table-level SELECT granted to vector_reader)",
		"      fix: REVOKE SELECT ON public.customers FROM vector_reader;\n      fix: GRANT SELECT (id, name, created_at) ON public.customers TO vector_reader;\n",
		"WARN  public.documents.metadata (masking.rules[2], method redact, json_keys email, phone; a direct reader gets the whole value): vector_reader can SELECT it (table-level SELECT granted to PUBLIC, i.e. every role)",
		"      fix: REVOKE SELECT ON public.documents FROM PUBLIC;\n      fix: GRANT SELECT (id, body) ON public.documents TO PUBLIC;\n",
		`WARN  public."Leads"."Email" (masking.rules[3], method redact): vector_reader can SELECT it`,
		`      fix: REVOKE SELECT ON public."Leads" FROM vector_reader;` + "\n" + `      fix: GRANT SELECT (id) ON public."Leads" TO vector_reader;` + "\n",
		"WARN  view public.contacts reads public.customers.email: vector_reader can SELECT it (table-level SELECT granted to vector_reader)",
		"      fix: REVOKE SELECT ON public.contacts FROM vector_reader;\n",
		"WARN  INSERT on public.customers (granted to vector_reader): that needs action insert, which group analyst lacks\n      fix: REVOKE INSERT ON public.customers FROM vector_reader;\n",
		"WARN  CREATE on schema public (granted to vector_reader): that needs action ddl, which group analyst lacks\n      fix: REVOKE CREATE ON SCHEMA public FROM vector_reader;\n",
		"\ngroup dba: db_role vector_admin, actions all, unmask\n",
		"ok    vector_admin has CREATEROLE: group dba has action admin",
		"ok    public.customers.email (masking.rules[0], method email): vector_admin can SELECT it; the group has unmask",
		"WARN  db_role ghost_role does not exist",
		"      fix: CREATE ROLE ghost_role NOLOGIN;\n",
		"WARN  vector_writer has CREATEDB, which needs action admin: group ingest lacks it\n      fix: ALTER ROLE vector_writer NOCREATEDB;\n",
		"WARN  public.customers.email (masking.rules[0], method email): vector_writer can SELECT it (column-level SELECT granted to vector_writer)",
		// The fix follows the WARN it closes.
		"bypassing pgwarden would see it\n      fix: REVOKE SELECT (email) ON public.customers FROM vector_writer;\n",
		"ok    public.customers.ssn (masking.rules[1], method partial): vector_writer cannot SELECT it",
		"WARN  TRUNCATE on public.customers (granted to vector_writer): that needs action truncate, which group ingest lacks\n      fix: REVOKE TRUNCATE ON public.customers FROM vector_writer;\n",
		"info  group tooling has no db_role: nothing to check",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The writer may insert, update and delete; the admin everything.
	for _, bad := range []string{"INSERT on public.customers (granted to vector_writer)", "DELETE on public.customers (granted to vector_writer)", "vector_admin): that needs"} {
		if strings.Contains(out, bad) {
			t.Errorf("report flags an allowed privilege: %q", bad)
		}
	}
	if warns != 12 {
		t.Errorf("%d WARN lines, want 12", warns)
	}
	if !strings.Contains(out, fmt.Sprintf("\nsummary: 4 group(s) checked, %d warning(s)", warns)) {
		t.Errorf("summary line missing or wrong")
	}

	if !strings.Contains(out, "info  revoking SELECT on masked columns makes the database refuse them to vector_reader outright") {
		t.Errorf("report does not say what revoking masked columns costs")
	}

	// --allow-masked-reads: masked columns a role can SELECT are notes; the
	// other 5 findings (INSERT, CREATE, ghost, CREATEDB, TRUNCATE) stay.
	code, outAllow, _ := runCLI("policy", "check", "--config", cfg, "--allow-masked-reads")
	if n := countPrefix(outAllow, "WARN"); code != 1 || n != 5 {
		t.Errorf("--allow-masked-reads: exit %d, %d WARN lines, want 1 and 5:\n%s", code, n, outAllow)
	}
	if !strings.Contains(outAllow, "info  public.customers.email (masking.rules[0], method email): vector_reader can SELECT it (table-level SELECT granted to vector_reader)") ||
		!strings.Contains(outAllow, "info  view public.contacts reads public.customers.email: vector_reader can SELECT it") {
		t.Errorf("--allow-masked-reads: masked columns are not reported as notes:\n%s", outAllow)
	}

	// --dsn overrides both configured connections.
	cfgBogus := writeConfig(t, policyCheckConfig(bogus, bogus))
	if code, _, errs := runCLI("policy", "check", "--config", cfgBogus); code != 1 || !strings.Contains(errs, "connecting to 127.0.0.1") {
		t.Errorf("unreachable catalog_dsn: exit %d, stderr %q", code, errs)
	}
	if code, out2, _ := runCLI("policy", "check", "--config", cfgBogus, "--dsn", c.SuperDSN("shop")); code != 1 || out2 != out {
		t.Errorf("--dsn: exit %d; report differs from the first run:\n%s", code, out2)
	}
	// Without catalog_dsn, credentials.native.admin_dsn is used.
	if code, out2, _ := runCLI("policy", "check", "--config", writeConfig(t, policyCheckConfig("", c.SuperDSN("shop")))); code != 1 || out2 != out {
		t.Errorf("admin_dsn: exit %d; report differs from the first run:\n%s", code, out2)
	}

	// Apply every suggested statement; then the check passes.
	fx := fixLines(out)
	if len(fx) == 0 {
		t.Fatal("no fix lines")
	}
	for _, s := range fx {
		if strings.Contains(s, "<") {
			t.Fatalf("fix with a placeholder: %s", s)
		}
	}
	if err := c.Exec(ctx, "shop", fx...); err != nil {
		t.Fatalf("applying the fixes: %v", err)
	}
	code, out, errs = runCLI("policy", "check", "--config", cfg)
	t.Logf("after the fixes:\n%s", out)
	if code != 0 {
		t.Fatalf("after the fixes: exit %d, stderr %s", code, errs)
	}
	if n := countPrefix(out, "WARN"); n != 0 {
		t.Errorf("%d WARN lines after the fixes", n)
	}
	for _, want := range []string{
		"ok    public.customers.email (masking.rules[0], method email): vector_reader cannot SELECT it",
		"ok    view public.contacts reads public.customers.email: vector_reader cannot SELECT it",
		"ok    table, schema and database privileges of vector_reader are within group analyst's actions",
		"ok    vector_writer has no role attribute needing admin",
		"\nsummary: 4 group(s) checked, 0 warning(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report after the fixes lacks %q", want)
		}
	}

	// The fixes closed the direct reads and kept the unmasked columns.
	conn, err := pgx.Connect(ctx, c.SuperDSN("shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	asRole := func(role, sql string) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+role); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, sql)
		return err
	}
	for _, ok := range []string{
		"SELECT id, name, created_at FROM public.customers",
		"SELECT id, body FROM public.documents",
		`SELECT id FROM public."Leads"`,
	} {
		if err := asRole("vector_reader", ok); err != nil {
			t.Errorf("vector_reader: %s: %v", ok, err)
		}
	}
	for _, denied := range []string{
		"SELECT email FROM public.customers",
		"SELECT ssn FROM public.customers",
		"SELECT * FROM public.contacts",
		"SELECT metadata FROM public.documents",
		"INSERT INTO public.customers (id) VALUES (2)",
		"CREATE TABLE public.t (x int)",
	} {
		if err := asRole("vector_reader", denied); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("vector_reader: %s: got %v, want permission denied", denied, err)
		}
	}
	if err := asRole("vector_writer", "SELECT email FROM public.customers"); err == nil {
		t.Errorf("vector_writer still reads email")
	}
	if err := asRole("vector_writer", "INSERT INTO public.customers (id, name) VALUES (3, 'Bob')"); err != nil {
		t.Errorf("vector_writer lost INSERT: %v", err)
	}
}

// A superuser db_role has no grant to revoke: the attribute is the finding.
func TestPolicyCheckSuperuserAndMembership(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDB(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "shop",
		`CREATE ROLE vector_reader NOLOGIN`,
		`CREATE ROLE vector_writer NOLOGIN SUPERUSER`,
		`CREATE ROLE vector_admin NOLOGIN`,
		`CREATE ROLE ghost_role NOLOGIN`,
		`CREATE ROLE readers NOLOGIN`,
		`GRANT pg_read_all_data TO readers`,
		`GRANT readers TO vector_reader`,
		`CREATE TABLE public.customers (id int PRIMARY KEY, email text)`,
	); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI("policy", "check", "--config", writeConfig(t, policyCheckConfig(c.SuperDSN("shop"), c.SuperDSN("shop"))))
	t.Logf("\n%s", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"WARN  public.customers.email (masking.rules[0], method email): vector_reader can SELECT it (member of pg_read_all_data)",
		"      fix: REVOKE readers FROM vector_reader;\n",
		"WARN  vector_writer has SUPERUSER, which needs action admin: group ingest lacks it\n      fix: ALTER ROLE vector_writer NOSUPERUSER;\n",
		"info  vector_writer is SUPERUSER: a direct connection as it reads all 1 masked column(s) unmasked; group ingest has no unmask",
		"info  vector_writer is SUPERUSER: it holds TRUNCATE, CREATE on everything, beyond group ingest's actions",
		"info  masking.rules[3] (public.Leads.email): not found: no table public.Leads in database shop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := countPrefix(out, "WARN"); n != 2 {
		t.Errorf("%d WARN lines, want 2 (pg_read_all_data, SUPERUSER)", n)
	}
	_, out, _ = runCLI("policy", "check", "--config", writeConfig(t, policyCheckConfig(c.SuperDSN("shop"), c.SuperDSN("shop"))), "--allow-masked-reads")
	if n := countPrefix(out, "WARN"); n != 1 {
		t.Errorf("--allow-masked-reads: %d WARN lines, want 1 (SUPERUSER)", n)
	}
	if strings.Contains(out, "REVOKE SELECT ON public.customers") {
		t.Errorf("suggests revoking a grant that does not exist")
	}
}

func TestPolicyCheckNeedsADSN(t *testing.T) {
	// Provider static: no admin_dsn; no catalog_dsn either.
	cfg := writeConfig(t, `
tls: { self_signed: true }
auth: { oidc: { issuer: https://idp.example.com, audience: pgwarden } }
credentials: { provider: static, static: { user: app } }
policy:
  roles:
    analyst: { actions: [read], db_role: vector_reader }
`)
	code, out, errs := runCLI("policy", "check", "--config", cfg)
	if code != 2 {
		t.Fatalf("exit %d, want 2 (bad configuration); stdout %q stderr %q", code, out, errs)
	}
	for _, want := range []string{"masking.catalog_dsn", "credentials.native.admin_dsn", "--dsn"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr %q does not name %s", errs, want)
		}
	}
	if code, _, errs := runCLI("policy", "check"); code != 2 || !strings.Contains(errs, "--config is required") {
		t.Errorf("without --config: exit %d, stderr %q", code, errs)
	}
}

func mustFreePort(t *testing.T) int {
	t.Helper()
	p, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

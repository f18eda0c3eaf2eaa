package devstack

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// Both demo databases in one cluster: ProvisionSupport refuses to run
// before Provision, then loads the tickets once, grants pgwarden_admin the
// support roles and answers kNN queries.
func TestProvisionSupport(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	err := ProvisionSupport(ctx, c)
	if err == nil || !strings.Contains(err.Error(), AdminRole) || !strings.Contains(err.Error(), "Provision first") {
		t.Fatalf("ProvisionSupport before Provision: %v", err)
	}
	pg := connect(t, c.SuperDSN("postgres"))
	var created bool
	if err := pg.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", SupportDatabase).Scan(&created); err != nil || created {
		t.Fatalf("failed ProvisionSupport created the database: %v %v", created, err)
	}

	const pw = "support-test-pw"
	adminDSN, err := Provision(ctx, c, pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := ProvisionSupport(ctx, c); err != nil {
		t.Fatal(err)
	}

	super := connect(t, c.SuperDSN(SupportDatabase))
	var n int
	var owner, indexdef, first string
	if err := super.QueryRow(ctx, `SELECT (SELECT count(*) FROM tickets),
	    (SELECT tableowner FROM pg_tables WHERE tablename = 'tickets'),
	    (SELECT indexdef FROM pg_indexes WHERE indexname = 'tickets_embedding_hnsw'),
	    (SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY oid LIMIT 1)`).
		Scan(&n, &owner, &indexdef, &first); err != nil {
		t.Fatal(err)
	}
	if n != NumTickets || owner != SupportAdminDBRole || !strings.Contains(indexdef, "hnsw") || first != "tickets" {
		t.Fatalf("%d tickets, owner %q, index %q, first table %q", n, owner, indexdef, first)
	}
	var keys []string
	if err := super.QueryRow(ctx, "SELECT array_agg(k ORDER BY k) FROM (SELECT jsonb_object_keys(metadata) k FROM tickets WHERE id = 1) s").Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys, []string{"category", "channel", "customer", "email", "priority"}) {
		t.Fatalf("metadata keys %v", keys)
	}
	// The vectors database is untouched.
	var nd int
	if err := connect(t, c.SuperDSN(Database)).QueryRow(ctx, "SELECT count(*) FROM documents").Scan(&nd); err != nil || nd != NumDocuments {
		t.Fatalf("documents: %d %v", nd, err)
	}

	// kNN: the five nearest tickets are of the query's category.
	q := "SELECT metadata->>'category' FROM tickets ORDER BY embedding <-> $1::vector LIMIT 5"
	for cat, text := range map[string]string{
		"billing": "I was charged twice, please refund the invoice payment",
		"login":   "password reset link expired and my account is locked",
		"search":  "vector similarity search results are slow, hnsw index recall",
	} {
		rows, err := super.Query(ctx, q, VectorLiteral(Embed(text)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 {
			t.Fatalf("%s: %d rows", cat, len(got))
		}
		for i, g := range got {
			if g != cat {
				t.Fatalf("%s: result %d has category %q (all: %v)", cat, i, g, got)
			}
		}
	}

	// The admin DSN reaches the support database and holds its roles: as
	// support_agent it reads and updates tickets; as support_reader it cannot write.
	admin := connect(t, strings.Replace(adminDSN, "/"+Database+"?", "/"+SupportDatabase+"?", 1))
	var db string
	if err := admin.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != SupportDatabase {
		t.Fatalf("admin connected to %q: %v", db, err)
	}
	for _, s := range []string{"SET ROLE support_agent", "UPDATE tickets SET metadata = metadata || '{\"priority\": \"high\"}' WHERE id = 1", "RESET ROLE", "SET ROLE support_reader"} {
		if _, err := admin.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := admin.Exec(ctx, "UPDATE tickets SET subject = 'x' WHERE id = 1"); err == nil {
		t.Fatal("support_reader could update tickets")
	}
	if _, err := admin.Exec(ctx, "RESET ROLE"); err != nil {
		t.Fatal(err)
	}
	var adminOf []string
	if err := admin.QueryRow(ctx, `SELECT array_agg(r.rolname ORDER BY r.rolname) FROM pg_auth_members m
	    JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
	    WHERE u.rolname = $1 AND m.admin_option AND r.rolname LIKE 'support_%'`, AdminRole).Scan(&adminOf); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(adminOf, []string{SupportAdminDBRole, SupportAgentRole, SupportReaderRole}) {
		t.Fatalf("pgwarden_admin has ADMIN OPTION on %v", adminOf)
	}

	// Idempotent: a second run neither reloads nor fails.
	if err := ProvisionSupport(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := super.QueryRow(ctx, "SELECT count(*) FROM tickets").Scan(&n); err != nil || n != NumTickets {
		t.Fatalf("after re-provision %d tickets: %v", n, err)
	}
}

func TestTicketsDeterministicAndSynthetic(t *testing.T) {
	t1, t2 := Tickets(), Tickets()
	if !reflect.DeepEqual(t1, t2) || len(t1) != NumTickets {
		t.Fatal("tickets not deterministic")
	}
	cats := map[string]int{}
	for _, tk := range t1 {
		if !strings.Contains(tk.CustomerEmail, "@example.") || !strings.Contains(tk.CustomerPhone, "-555-01") {
			t.Fatalf("non-synthetic contact data: %+v", tk)
		}
		if tk.Subject == "" || tk.Body == "" || tk.Metadata["email"] != tk.CustomerEmail || tk.Metadata["category"] != tk.Category {
			t.Fatalf("ticket %+v", tk)
		}
		if _, ok := tk.Metadata["customer"].(string); !ok {
			t.Fatalf("metadata without customer: %+v", tk.Metadata)
		}
		cats[tk.Category]++
	}
	if len(cats) != len(TicketCategories) {
		t.Fatalf("categories %v", cats)
	}
}

// The support policy and masking rules form a valid configuration, and
// each call hands out its own copy.
func TestDemoSupportPolicyValidAndFresh(t *testing.T) {
	cfg := config.Default()
	cfg.TLS = config.TLS{SelfSigned: true, Require: true}
	cfg.Upstream.Databases = []string{SupportDatabase}
	cfg.Auth.OIDC.Issuer = "https://issuer.example.com"
	cfg.Credentials.Native.AdminDSN = "postgres://pgwarden_admin@127.0.0.1/support"
	cfg.Policy.Roles = DemoSupportRoles()
	cfg.Masking.HMACKey = "k"
	cfg.Masking.Rules = DemoSupportMaskRules()
	cfg.Store.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("support policy does not validate: %v", err)
	}

	r := DemoSupportRoles()
	s := r["support"]
	s.Actions[0] = "changed"
	r["dba"] = config.Role{}
	if got := DemoSupportRoles(); got["support"].Actions[0] != "search" || got["dba"].DBRole != SupportAdminDBRole {
		t.Fatalf("DemoSupportRoles shares state between calls: %+v", got)
	}
	m := DemoSupportMaskRules()
	m[0].Column = "changed"
	m[2].JSONKeys[0] = "changed"
	if got := DemoSupportMaskRules(); got[0].Column != "customer_email" || got[2].JSONKeys[0] != "email" {
		t.Fatalf("DemoSupportMaskRules shares state between calls: %+v", got)
	}

	want := map[string]config.Role{
		"support": {Actions: []string{"search", "read", "insert", "update"}, DBRole: SupportAgentRole},
		"analyst": {Actions: []string{"search", "read"}, DBRole: SupportReaderRole},
		"dba":     {Actions: []string{"all"}, DBRole: SupportAdminDBRole, Unmask: true},
	}
	if got := DemoSupportRoles(); !reflect.DeepEqual(got, want) {
		t.Fatalf("DemoSupportRoles = %+v", got)
	}
	rules := map[string]config.MaskRule{}
	for _, rule := range DemoSupportMaskRules() {
		if rule.Table != "public.tickets" {
			t.Errorf("rule outside tickets: %+v", rule)
		}
		rules[rule.Column] = rule
	}
	if rules["customer_email"].Method != "email" ||
		rules["customer_phone"].Method != "partial" || rules["customer_phone"].KeepLast != 4 ||
		rules["metadata"].Method != "redact" || !reflect.DeepEqual(rules["metadata"].JSONKeys, []string{"email", "customer"}) {
		t.Fatalf("support mask rules %+v", rules)
	}
	if _, ok := rules["body"]; ok {
		t.Fatal("tickets.body has a masking rule")
	}
}

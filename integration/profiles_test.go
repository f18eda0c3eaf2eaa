package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/devstack"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// profileDBs prepares, on the shared upstream, two databases cloned from
// one template whose table then diverges: the same table OID and attnums
// name customers(email, notes) in kb and products(title, email) in
// kb_staging. A catalog keyed by OID alone masks one of them wrongly.
func profileDBs(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := upstream.pg
	if err := pg.Exec(ctx, "postgres",
		"DROP DATABASE IF EXISTS kb", "DROP DATABASE IF EXISTS kb_staging", "DROP DATABASE IF EXISTS kb_tmpl",
		"CREATE DATABASE kb_tmpl TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "kb_tmpl", "CREATE TABLE items (id int PRIMARY KEY, c1 text, c2 text)"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "postgres", "CREATE DATABASE kb TEMPLATE kb_tmpl", "CREATE DATABASE kb_staging TEMPLATE kb_tmpl"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "kb",
		"ALTER TABLE items RENAME TO customers", "ALTER TABLE customers RENAME c1 TO email", "ALTER TABLE customers RENAME c2 TO notes",
		"INSERT INTO customers VALUES (1, 'ann@example.com', 'likes tea')",
		"GRANT SELECT ON customers TO vector_reader"); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "kb_staging",
		"ALTER TABLE items RENAME TO products", "ALTER TABLE products RENAME c1 TO title", "ALTER TABLE products RENAME c2 TO email",
		"INSERT INTO products VALUES (1, 'Blue kettle', 'seller@example.com')",
		"GRANT SELECT ON products TO vector_reader"); err != nil {
		t.Fatal(err)
	}
	oid := func(db, table string) (o uint32) {
		c, err := pgx.Connect(ctx, pg.SuperDSN(db))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if err := c.QueryRow(ctx, "SELECT $1::regclass::oid", table).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	if a, b := oid("kb", "customers"), oid("kb_staging", "products"); a != b {
		t.Fatalf("the test needs colliding OIDs: customers %d, products %d", a, b)
	}
}

// supportCluster is a second PostgreSQL server with the demo support
// database (its own pgwarden_admin role and password).
func supportCluster(t *testing.T) (*pgtest.Cluster, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgtest.Start(ctx, filepath.Join(t.TempDir(), "pg"), pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	admin, err := devstack.Provision(ctx, pg, "support-admin-pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := devstack.ProvisionSupport(ctx, pg); err != nil {
		t.Fatal(err)
	}
	return pg, admin
}

func TestConnectionProfiles(t *testing.T) {
	profileDBs(t)
	pgB, adminB := supportCluster(t)

	w := startGateway(t, func(c *config.Config) {
		c.Upstream = config.Default().Upstream
		kbPolicy := config.Default().Policy
		kbPolicy.Roles = map[string]config.Role{
			"analyst": {Actions: []string{"search", "read"}, DBRole: "vector_reader"},
			"dba":     {Actions: []string{"all"}, DBRole: "vector_admin", Unmask: true},
		}
		kbPolicy.Approval.Approvers = []string{"dba"}
		kbMask := config.Default().Masking
		kbMask.Rules = []config.MaskRule{
			{Table: "public.customers", Column: "email", Method: "email"},
			{Table: "public.products", Column: "email", Method: "redact"},
		}
		supCreds := config.Default().Credentials
		supCreds.Native.AdminDSN = adminB
		supPolicy := config.Default().Policy
		supPolicy.Roles = devstack.DemoSupportRoles()
		supPolicy.Roles["analyst"] = config.Role{Actions: []string{"search"}, DBRole: "support_reader"} // search only here
		supPolicy.Approval.Approvers = []string{"dba"}
		supMask := config.Default().Masking
		supMask.Rules = devstack.DemoSupportMaskRules()
		c.Upstreams = map[string]config.UpstreamProfile{
			"kb": {Upstream: config.Upstream{Host: upstream.pg.Host, Port: upstream.pg.Port, Databases: []string{"kb", "kb_staging"}, SSLMode: "disable", ConnectTimeout: 5 * time.Second},
				Policy: &kbPolicy, Masking: &kbMask},
			"support": {Upstream: config.Upstream{Host: pgB.Host, Port: pgB.Port, Databases: []string{"support"}, SSLMode: "disable", ConnectTimeout: 2 * time.Second},
				Credentials: &supCreds, Policy: &supPolicy, Masking: &supMask},
		}
	})
	connect := func(t *testing.T, db, user string, groups ...string) (*pgx.Conn, error) {
		cc := w.connConfig(t, user, w.Issuer.token(t, user, groups...))
		cc.Database = db
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err == nil {
			t.Cleanup(func() { conn.Close(context.Background()) })
		}
		return conn, err
	}
	must := func(c *pgx.Conn, err error) *pgx.Conn {
		t.Helper()
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		return c
	}
	ctx := context.Background()

	t.Run("same OID, two databases, each masked by its own catalog", func(t *testing.T) {
		kb := must(connect(t, "kb", "alice@example.com", "analyst"))
		var email, notes string
		if err := kb.QueryRow(ctx, "SELECT email, notes FROM customers").Scan(&email, &notes); err != nil {
			t.Fatal(err)
		}
		if email == "ann@example.com" || !strings.Contains(email, "@example.com") || notes != "likes tea" {
			t.Fatalf("kb: email %q (want the email mask), notes %q (want clear)", email, notes)
		}
		st := must(connect(t, "kb_staging", "alice@example.com", "analyst"))
		var title, semail string
		if err := st.QueryRow(ctx, "SELECT title, email FROM products").Scan(&title, &semail); err != nil {
			t.Fatal(err)
		}
		if title != "Blue kettle" || semail == "seller@example.com" || strings.Contains(semail, "seller") {
			t.Fatalf("kb_staging: title %q (want clear), email %q (want redacted)", title, semail)
		}
		// And back: kb's cache did not take kb_staging's names.
		if err := kb.QueryRow(ctx, "SELECT email, notes FROM customers").Scan(&email, &notes); err != nil || notes != "likes tea" || email == "ann@example.com" {
			t.Fatalf("kb after kb_staging: %q %q %v", email, notes, err)
		}
	})

	t.Run("each profile its own policy, masking and server", func(t *testing.T) {
		sup := must(connect(t, "support", "alice@example.com", "analyst"))
		_, err := sup.Exec(ctx, "SELECT count(*) FROM tickets")
		wantPgError(t, err, "42501", "pgwarden: ")
		rows, err := sup.Query(ctx, "SELECT customer_email FROM tickets ORDER BY embedding <-> '"+queryVector("refund for a broken order")+"' LIMIT 3")
		if err != nil {
			t.Fatal(err)
		}
		emails, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(emails) != 3 {
			t.Fatalf("search on support: %v %v", emails, err)
		}
		direct, err := pgx.Connect(ctx, pgB.SuperDSN(devstack.SupportDatabase))
		if err != nil {
			t.Fatal(err)
		}
		defer direct.Close(ctx)
		for _, e := range emails {
			var n int
			if err := direct.QueryRow(ctx, "SELECT count(*) FROM tickets WHERE customer_email = $1", e).Scan(&n); err != nil || n != 0 {
				t.Fatalf("support returned a real customer_email %q (masking of the support profile not applied)", e)
			}
		}
		// The session's role was minted on the support server, not on kb's
		// (asked by a support agent: the analyst may only search there).
		sup.Close(ctx)
		sup = must(connect(t, "support", "sam@example.com", "support"))
		var me string
		if err := sup.QueryRow(ctx, "SELECT current_user::text").Scan(&me); err != nil {
			t.Fatal(err)
		}
		if !roleExists(t, pgB, me) || roleExists(t, upstream.pg, me) {
			t.Fatalf("role %s: on support server %v, on kb server %v", me, roleExists(t, pgB, me), roleExists(t, upstream.pg, me))
		}
		sup.Close(ctx)
		deadline := time.Now().Add(10 * time.Second)
		for roleExists(t, pgB, me) {
			if time.Now().After(deadline) {
				t.Fatalf("role %s still on the support server after the session closed", me)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The analyst of kb reads there (read is allowed in kb's policy).
		kb := must(connect(t, "kb", "alice@example.com", "analyst"))
		var n int
		if err := kb.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil || n != 1 {
			t.Fatalf("kb read: %d %v", n, err)
		}
	})

	t.Run("profile in the record", func(t *testing.T) {
		body := adminGet(t, w, "/api/v1/sessions?profile=support")
		var list struct {
			Sessions []struct {
				Profile  string `json:"profile"`
				Database string `json:"database"`
			} `json:"sessions"`
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if len(list.Sessions) == 0 {
			t.Fatalf("no support session listed: %s", body)
		}
		for _, s := range list.Sessions {
			if s.Profile != "support" || s.Database != "support" {
				t.Fatalf("filtered list has %+v", s)
			}
		}
		var v struct {
			OK      bool   `json:"ok"`
			Summary string `json:"summary"`
		}
		if body := adminGet(t, w, "/api/v1/sessions/verify"); json.Unmarshal([]byte(body), &v) != nil || !v.OK || !strings.HasPrefix(v.Summary, "ok: ") {
			t.Fatalf("verify: %s", body)
		}
	})

	t.Run("unknown database", func(t *testing.T) {
		_, err := connect(t, "hr", "alice@example.com", "analyst")
		pe := wantPgError(t, err, "28000", "pgwarden: ")
		for _, leak := range []string{"kb", "support", "staging"} {
			if strings.Contains(pe.Message+pe.Detail+pe.Hint, leak) {
				t.Fatalf("refusal names %q: %s", leak, pe.Message)
			}
		}
	})

	t.Run("one server stopped, the other keeps serving", func(t *testing.T) {
		kb := must(connect(t, "kb", "alice@example.com", "analyst"))
		pgB.Stop()
		_, err := connect(t, "support", "alice@example.com", "analyst")
		wantPgError(t, err, "08001", "pgwarden: ")
		var n int
		if err := kb.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
			t.Fatalf("kb session while support is down: %v", err)
		}
		kb2 := must(connect(t, "kb_staging", "bob@example.com", "analyst"))
		if err := kb2.QueryRow(ctx, "SELECT count(*) FROM products").Scan(&n); err != nil {
			t.Fatalf("new kb session while support is down: %v", err)
		}
		code, body := w.readyz(t)
		var rz struct {
			Status   string `json:"status"`
			Profiles map[string]struct {
				Status string `json:"status"`
			} `json:"profiles"`
		}
		if err := json.Unmarshal([]byte(body), &rz); err != nil {
			t.Fatal(err)
		}
		if code != 200 || rz.Status != "degraded" || rz.Profiles["support"].Status != "unavailable" || rz.Profiles["kb"].Status != "ok" {
			t.Fatalf("readyz with support down: %d %s", code, body)
		}
	})
}

func roleExists(t *testing.T, pg *pgtest.Cluster, role string) bool {
	t.Helper()
	c, err := pgx.Connect(context.Background(), pg.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var ok bool
	if err := c.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// adminGet calls the admin API as a dba and returns the body (200 required).
func adminGet(t *testing.T, w *gw, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", w.AdminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+w.Issuer.token(t, "auditor@example.com", "dba"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

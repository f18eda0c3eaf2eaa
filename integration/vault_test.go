package integration

// The vault credential provider end to end: pgx → pgwarden → a real
// `vault server -dev` minting v-… roles in the real upstream PostgreSQL.
// Run: go test -count=1 -run 'TestVault' ./integration/

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgwarden/pgwarden/config"
)

// connectErr connects through the gateway and returns the error (nil: a
// connection that the test closes at cleanup).
func (w *gw) vaultConnect(t *testing.T, user string, groups ...string) (*pgx.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, w.connConfig(t, user, w.Issuer.token(t, user, groups...)))
	if err == nil {
		t.Cleanup(func() { conn.Close(context.Background()) })
	}
	return conn, err
}

func currentUser(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var u string
	must0(t, conn.QueryRow(context.Background(), "SELECT current_user").Scan(&u))
	return u
}

func pgErrOf(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// wantConnectRefused checks a connect error is 08001 from pgwarden naming want.
func wantConnectRefused(t *testing.T, err error, want string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("connection succeeded; want 08001 %q", want)
	}
	pe := pgErrOf(err)
	if pe == nil || pe.Code != "08001" || !strings.HasPrefix(pe.Message, "pgwarden: credential minting failed: ") || !strings.Contains(pe.Message, want) {
		t.Fatalf("want 08001 \"pgwarden: credential minting failed: …%s…\", got %v", want, err)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a secret: %v", err)
		}
	}
}

// runUntilTerminated runs SELECT 1 every 200ms (bounded) until it fails,
// returning the time of the last success, the failure's time and the failure.
func runUntilTerminated(t *testing.T, conn *pgx.Conn, limit time.Duration) (lastOK, at time.Time, err error) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = conn.Exec(ctx, "SELECT 1")
		cancel()
		if err != nil {
			return lastOK, time.Now(), err
		}
		lastOK = time.Now()
	}
	t.Fatalf("session still alive after %v", limit)
	return
}

// wantTerminated checks err is pgwarden's FATAL 57P01.
func wantTerminated(t *testing.T, err error) {
	t.Helper()
	pe := pgErrOf(err)
	if pe == nil || pe.Code != "57P01" || pe.Severity != "FATAL" || !strings.HasPrefix(pe.Message, "pgwarden: ") {
		t.Fatalf("want FATAL 57P01 \"pgwarden: …\", got %v (%T)", err, err)
	}
}

func shortGroup(cfg *config.Config) {
	cfg.Policy.Roles["shortlived"] = config.Role{Actions: []string{"search", "read"}, DBRole: "vector_short"}
}

// auth token: a session gets its own v-… role from Vault, the lease lives
// in Vault while the session does, and closing the session revokes the
// lease and drops the role.
func TestVaultTokenSessionLeaseRevoked(t *testing.T) {
	tv, w := startVaultGateway(t, "token", nil)
	ctx := context.Background()
	d := direct(t)
	if l := tv.Leases(t, "vector_reader"); len(l) != 0 {
		t.Fatalf("leases before any session: %v", l)
	}

	conn, err := w.vaultConnect(t, "alice@example.com", "analyst")
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, tv.Log())
	}
	user := currentUser(t, conn)
	if !strings.HasPrefix(user, "v-") || !strings.Contains(user, "vector_r") {
		t.Fatalf("current_user %q is not a Vault role of vector_reader", user)
	}
	var member, super bool
	var validUntil *time.Time
	must0(t, d.QueryRow(ctx, "SELECT pg_has_role($1, 'vector_reader', 'MEMBER'), rolsuper, rolvaliduntil FROM pg_roles WHERE rolname = $1", user).
		Scan(&member, &super, &validUntil))
	if !member || super || validUntil == nil {
		t.Fatalf("role %s: member of vector_reader %v, superuser %v, valid until %v", user, member, super, validUntil)
	}
	var n int64
	must0(t, conn.QueryRow(ctx, "SELECT count(*) FROM documents").Scan(&n))
	if n == 0 {
		t.Fatal("no documents visible through the Vault role")
	}
	var backends int
	must0(t, d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", user).Scan(&backends))
	if backends != 1 {
		t.Fatalf("%d upstream backends of %s, want 1", backends, user)
	}

	leases := tv.Leases(t, "vector_reader")
	if len(leases) != 1 {
		t.Fatalf("Vault leases of vector_reader during the session: %v, want 1", leases)
	}
	if issued := tv.LeaseIssued(t, leases[0]); time.Since(issued) > time.Minute || time.Since(issued) < 0 {
		t.Fatalf("lease %s issued at %v", leases[0], issued)
	}

	// A second session gets a different role and lease.
	conn2, err := w.vaultConnect(t, "bob@example.com", "analyst")
	if err != nil {
		t.Fatal(err)
	}
	user2 := currentUser(t, conn2)
	if user2 == user || !strings.HasPrefix(user2, "v-") {
		t.Fatalf("second session's role %q (first %q)", user2, user)
	}
	if l := tv.Leases(t, "vector_reader"); len(l) != 2 {
		t.Fatalf("leases with two sessions: %v", l)
	}

	conn.Close(ctx)
	if !waitVault(10*time.Second, func() bool {
		return len(tv.Leases(t, "vector_reader")) == 1 && !upstreamRoleExists(t, d, user)
	}) {
		t.Fatalf("after close: leases %v, role %s exists %v", tv.Leases(t, "vector_reader"), user, upstreamRoleExists(t, d, user))
	}
	// The other session is untouched.
	if got := currentUser(t, conn2); got != user2 {
		t.Fatalf("second session now %q", got)
	}
	conn2.Close(ctx)
	if !waitVault(10*time.Second, func() bool {
		return len(tv.Leases(t, "vector_reader")) == 0 && !upstreamRoleExists(t, d, user2)
	}) {
		t.Fatalf("after second close: leases %v", tv.Leases(t, "vector_reader"))
	}

	// A group whose db_role has no Vault role: 08001 naming it.
	_, err = w.vaultConnect(t, "dba-1@example.com", "dba")
	wantConnectRefused(t, err, "vault database role vector_admin not found", tv.Root)
}

// A Vault role with default_ttl 4s and max_ttl 6s: pgwarden renews the
// lease past the default TTL and, once Vault caps it at max_ttl, ends the
// session itself with FATAL 57P01 "pgwarden: …" — not before max_ttl (to
// Vault's 1s TTL granularity) and before Vault's own revocation would kill
// the backend.
func TestVaultMaxTTLTerminatesSession(t *testing.T) {
	tv, w := startVaultGateway(t, "token", shortGroup)
	d := direct(t)
	conn, err := w.vaultConnect(t, "carol@example.com", "shortlived")
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, tv.Log())
	}
	user := currentUser(t, conn)
	if !strings.HasPrefix(user, "v-") {
		t.Fatalf("current_user %q", user)
	}
	leases := tv.Leases(t, "vector_short")
	if len(leases) != 1 {
		t.Fatalf("leases of vector_short: %v", leases)
	}
	issued := tv.LeaseIssued(t, leases[0])

	lastOK, at, err := runUntilTerminated(t, conn, 20*time.Second)
	wantTerminated(t, err)
	t.Logf("lease issued %v; last success +%v; terminated +%v: %v", issued.Format(time.StampMilli), lastOK.Sub(issued), at.Sub(issued), err)
	if lastOK.Sub(issued) <= vaultShortTTL {
		t.Fatalf("session did not outlive the default TTL %v (last success +%v): lease not renewed", vaultShortTTL, lastOK.Sub(issued))
	}
	if got := at.Sub(issued); got < vaultShortMaxTTL-1500*time.Millisecond || got > vaultShortMaxTTL+3*time.Second {
		t.Fatalf("terminated %v after the lease was issued; want about max_ttl %v", got, vaultShortMaxTTL)
	}
	if !waitVault(10*time.Second, func() bool {
		return len(tv.Leases(t, "vector_short")) == 0 && !upstreamRoleExists(t, d, user)
	}) {
		t.Fatalf("after termination: leases %v, role exists %v", tv.Leases(t, "vector_short"), upstreamRoleExists(t, d, user))
	}
}

// auth jwt: pgwarden logs in to Vault with each user's own OIDC token, so
// Vault's policies (bound to the token's groups) decide the database role.
// The gateway's policy allows INSERT for all three groups; the analyst's
// Vault role still cannot insert, and the intern, whose group maps to
// vector_writer in pgwarden but whose Vault policy only grants the reader
// creds, is refused by Vault.
func TestVaultJWTRolesDecidedByVaultPolicy(t *testing.T) {
	tv, w := startVaultGateway(t, "jwt", func(cfg *config.Config) {
		all := []string{"search", "read", "insert", "update", "delete"}
		cfg.Policy.Roles["analyst"] = config.Role{Actions: all, DBRole: "vector_reader"}
		cfg.Policy.Roles["ingest"] = config.Role{Actions: all, DBRole: "vector_writer"}
		cfg.Policy.Roles["intern"] = config.Role{Actions: all, DBRole: "vector_writer"}
	})
	ctx := context.Background()
	d := direct(t)
	// a fresh table: the test counts rows (go test -count=2 reuses the cluster)
	must(d.Exec(ctx, "DROP TABLE IF EXISTS vault_jwt_it"))
	must(d.Exec(ctx, "CREATE TABLE vault_jwt_it (id int)"))
	must(d.Exec(ctx, "GRANT SELECT ON vault_jwt_it TO vector_reader"))
	must(d.Exec(ctx, "GRANT SELECT, INSERT ON vault_jwt_it TO vector_writer"))

	analyst, err := w.vaultConnect(t, "ann@example.com", "analyst")
	if err != nil {
		t.Fatalf("analyst: %v\n%s", err, tv.Log())
	}
	ingest, err := w.vaultConnect(t, "ivan@example.com", "ingest")
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, tv.Log())
	}
	ua, ui := currentUser(t, analyst), currentUser(t, ingest)
	if !strings.HasPrefix(ua, "v-") || !strings.HasPrefix(ui, "v-") || ua == ui {
		t.Fatalf("current_user analyst %q, ingest %q", ua, ui)
	}
	roleOf := func(u string) (reader, writer bool) {
		must0(t, d.QueryRow(ctx, "SELECT pg_has_role($1, 'vector_reader', 'MEMBER'), pg_has_role($1, 'vector_writer', 'MEMBER')", u).Scan(&reader, &writer))
		return
	}
	if r, wr := roleOf(ua); !r || wr {
		t.Fatalf("analyst's role %s: reader %v writer %v", ua, r, wr)
	}
	if r, wr := roleOf(ui); r || !wr {
		t.Fatalf("ingest's role %s: reader %v writer %v", ui, r, wr)
	}
	if l := tv.Leases(t, "vector_reader"); len(l) != 1 {
		t.Fatalf("reader leases %v", l)
	}
	if l := tv.Leases(t, "vector_writer"); len(l) != 1 {
		t.Fatalf("writer leases %v", l)
	}

	// pgwarden allows the INSERT; PostgreSQL refuses it for the reader role.
	_, err = analyst.Exec(ctx, "INSERT INTO vault_jwt_it VALUES (1)")
	if pe := pgErrOf(err); pe == nil || pe.Code != "42501" || strings.HasPrefix(pe.Message, "pgwarden: ") || !strings.Contains(pe.Message, "vault_jwt_it") {
		t.Fatalf("analyst INSERT: want PostgreSQL's 42501 on vault_jwt_it, got %v", err)
	}
	if tag, err := ingest.Exec(ctx, "INSERT INTO vault_jwt_it VALUES (2)"); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("ingest INSERT: %v %v", tag, err)
	}
	var n int
	must0(t, analyst.QueryRow(ctx, "SELECT count(*) FROM vault_jwt_it WHERE id = 2").Scan(&n))
	if n != 1 {
		t.Fatalf("analyst sees %d rows of ingest's insert", n)
	}

	// Vault's policy for the intern's group does not allow vector_writer.
	internTok := w.Issuer.token(t, "ian@example.com", "intern")
	ctxc, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = pgx.ConnectConfig(ctxc, w.connConfig(t, "ian@example.com", internTok))
	cancel()
	wantConnectRefused(t, err, "vault permission denied for database role vector_writer", internTok)
	if l := tv.Leases(t, "vector_writer"); len(l) != 1 {
		t.Fatalf("writer leases after the refused intern: %v", l)
	}

	// Closing revokes the leases (and the per-session Vault tokens).
	analyst.Close(ctx)
	ingest.Close(ctx)
	if !waitVault(10*time.Second, func() bool {
		return len(tv.Leases(t, "vector_reader"))+len(tv.Leases(t, "vector_writer")) == 0 &&
			!upstreamRoleExists(t, d, ua) && !upstreamRoleExists(t, d, ui)
	}) {
		t.Fatalf("after close: reader leases %v writer leases %v", tv.Leases(t, "vector_reader"), tv.Leases(t, "vector_writer"))
	}
	// pgwarden's JWT logins left no Vault tokens behind.
	s, err := tv.Admin.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.Data["keys"].([]any); len(keys) != 1 { // the root token
		t.Fatalf("Vault token accessors after the sessions: %d, want only root's", len(keys))
	}
}

// Vault killed mid-run: new sessions get 08001 naming Vault, /readyz turns
// 503 on the credentials check, and sessions that already hold a
// credential keep working until it ends (the 4s one ends with 57P01 at
// its expiry since it cannot be renewed; the 1m one keeps working).
func TestVaultStoppedMidRun(t *testing.T) {
	tv, w := startVaultGateway(t, "token", shortGroup)
	if code, body := w.readyz(t); code != 200 {
		t.Fatalf("readyz before: %d %s", code, body)
	}
	short, err := w.vaultConnect(t, "carol@example.com", "shortlived")
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, tv.Log())
	}
	long, err := w.vaultConnect(t, "alice@example.com", "analyst")
	if err != nil {
		t.Fatal(err)
	}
	leases := tv.Leases(t, "vector_short")
	if len(leases) != 1 {
		t.Fatalf("leases of vector_short: %v", leases)
	}
	issued := tv.LeaseIssued(t, leases[0])
	longUser := currentUser(t, long)

	tv.Kill()

	_, err = w.vaultConnect(t, "dave@example.com", "analyst")
	wantConnectRefused(t, err, "vault unreachable", tv.Root)

	code, body := w.readyz(t)
	var rz struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &rz); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	if code != 503 || rz.Checks["credentials"] == "ok" || !strings.Contains(rz.Checks["credentials"], "vault") || rz.Checks["upstream"] != "ok" {
		t.Fatalf("readyz with Vault down: %d %s", code, body)
	}

	if got := currentUser(t, long); got != longUser {
		t.Fatalf("existing session's user %q, was %q", got, longUser)
	}
	lastOK, at, err := runUntilTerminated(t, short, 15*time.Second)
	wantTerminated(t, err)
	t.Logf("short lease issued %v; last success +%v; terminated +%v: %v", issued.Format(time.StampMilli), lastOK.Sub(issued), at.Sub(issued), err)
	if lastOK.IsZero() {
		t.Fatal("the existing short session did not work after Vault stopped")
	}
	if got := at.Sub(issued); got < vaultShortTTL-1500*time.Millisecond || got > vaultShortTTL+3*time.Second {
		t.Fatalf("short session terminated %v after issue; want at its expiry %v", got, vaultShortTTL)
	}
	var n int64
	must0(t, long.QueryRow(context.Background(), "SELECT count(*) FROM documents").Scan(&n))
	if n == 0 {
		t.Fatal("long session sees no documents")
	}
}

// auth approle with the policy docs/vault.md prescribes: pgwarden logs in
// itself (no VAULT_TOKEN), mints per-session roles and revokes them.
func TestVaultAppRoleSession(t *testing.T) {
	tv, w := startVaultGateway(t, "approle", nil)
	ctx := context.Background()
	d := direct(t)
	if code, body := w.readyz(t); code != 200 {
		t.Fatalf("readyz: %d %s", code, body)
	}
	conn, err := w.vaultConnect(t, "ivan@example.com", "ingest")
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, tv.Log())
	}
	user := currentUser(t, conn)
	if !strings.HasPrefix(user, "v-") || !strings.Contains(user, "approle") {
		t.Fatalf("current_user %q: want a Vault role minted with the AppRole token", user)
	}
	if l := tv.Leases(t, "vector_writer"); len(l) != 1 {
		t.Fatalf("writer leases %v", l)
	}
	conn.Close(ctx)
	if !waitVault(10*time.Second, func() bool {
		return len(tv.Leases(t, "vector_writer")) == 0 && !upstreamRoleExists(t, d, user)
	}) {
		t.Fatalf("after close: leases %v, role exists %v", tv.Leases(t, "vector_writer"), upstreamRoleExists(t, d, user))
	}
}

// A sealed Vault: new sessions get 08001 "vault is sealed", /readyz says so,
// and a session that holds a credential goes on.
func TestVaultSealed(t *testing.T) {
	tv, w := startVaultGateway(t, "token", nil)
	conn, err := w.vaultConnect(t, "alice@example.com", "analyst")
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, tv.Log())
	}
	user := currentUser(t, conn)
	if err := tv.Admin.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = w.vaultConnect(t, "bob@example.com", "analyst")
	wantConnectRefused(t, err, "vault is sealed", tv.Root)
	code, body := w.readyz(t)
	if code != 503 || !strings.Contains(body, `"credentials":"vault is sealed"`) {
		t.Fatalf("readyz with Vault sealed: %d %s", code, body)
	}
	if got := currentUser(t, conn); got != user {
		t.Fatalf("existing session now %q, was %q", got, user)
	}
}

// BenchmarkVaultSession: one whole session through pgwarden with the vault
// provider (token auth): TLS, token verification, creds read from Vault
// (CREATE ROLE upstream), upstream scram login, SELECT 1, close (lease
// revocation runs after the client is gone).
func BenchmarkVaultSession(b *testing.B) {
	tv, w := startVaultGateway(b, "token", nil)
	ctx := context.Background()
	cc := w.connConfig(b, "alice@example.com", w.Issuer.token(b, "alice@example.com", "analyst"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			b.Fatalf("connect: %v\n%s", err, tv.Log())
		}
		if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
			b.Fatal(err)
		}
		conn.Close(ctx)
	}
	b.StopTimer()
	waitVault(20*time.Second, func() bool { return len(tv.Leases(b, "vector_reader")) == 0 })
}

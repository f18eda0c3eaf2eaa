package credentials

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// testVault is a real `vault server -dev` process on 127.0.0.1.
type testVault struct {
	Addr  string
	Root  string // root token
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
	Admin *vaultapi.Client // holds the root token
}

// vaultBinary finds the Vault server built by scripts/vault-tool.sh.
func vaultBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PGWARDEN_VAULT_BIN")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", ".tools", "bin", "vault"))
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("vault server binary not built at %s (run scripts/vault-tool.sh, or make setup)", bin)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startVault starts a dev-mode Vault and stops it at cleanup.
func startVault(t testing.TB) *testVault {
	t.Helper()
	bin := vaultBinary(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	tv := &testVault{
		Addr: fmt.Sprintf("http://127.0.0.1:%d", port),
		Root: "root-" + randHex(t, 12),
		done: make(chan struct{}),
		log:  filepath.Join(home, "vault.log"),
	}
	logf, err := os.Create(tv.log)
	if err != nil {
		t.Fatal(err)
	}
	tv.cmd = exec.Command(bin, "server", "-dev", "-dev-no-store-token",
		"-dev-root-token-id="+tv.Root, fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port))
	tv.cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	tv.cmd.Stdout, tv.cmd.Stderr = logf, logf
	tv.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := tv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = tv.cmd.Wait(); logf.Close(); close(tv.done) }()
	t.Cleanup(tv.Stop)

	cfg := vaultapi.DefaultConfig()
	cfg.Address = tv.Addr
	cfg.MaxRetries = 0
	tv.Admin, err = vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tv.Admin.SetToken(tv.Root)
	deadline := time.Now().Add(60 * time.Second)
	for {
		h, err := tv.Admin.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed {
			break
		}
		select {
		case <-tv.done:
			t.Fatalf("vault exited during start:\n%s", tv.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault did not become ready: %v\n%s", err, tv.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return tv
}

// Stop kills the Vault process (as if it crashed) and waits for it.
func (tv *testVault) Stop() {
	if tv.cmd.Process == nil {
		return
	}
	select {
	case <-tv.done:
		return
	default:
	}
	_ = tv.cmd.Process.Kill()
	select {
	case <-tv.done:
	case <-time.After(10 * time.Second):
	}
}

func (tv *testVault) Log() string {
	b, _ := os.ReadFile(tv.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (tv *testVault) write(t testing.TB, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := tv.Admin.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return s
}

// vaultEnv is a Vault whose database engine points at a real PostgreSQL.
type vaultEnv struct {
	V       *testVault
	PG      *pgtest.Cluster
	DB      string
	JWTKey  *rsa.PrivateKey
	Issuer  string
	RoleID  string
	Secret  string
	Readers string // Vault role names
	Writers string
	Short   string
}

const (
	envIssuer   = "https://issuer.pgwarden.test"
	envAudience = "pgwarden"
)

// newVaultEnv starts PostgreSQL and Vault and configures: the database
// engine at "database" (scram-sha-256 passwords) with roles vector_reader,
// vector_writer (1m/5m) and vector_short (3s/5s); jwt auth whose external
// groups analyst/ingest get policies for the reader/writer creds only; and
// an AppRole "pgw" allowed both.
func newVaultEnv(t testing.TB) *vaultEnv {
	t.Helper()
	ctx := context.Background()
	vaultBinary(t) // skip before starting PostgreSQL
	pg := pgtest.StartT(t, pgtest.Options{})
	e := &vaultEnv{PG: pg, DB: "vectors", Issuer: envIssuer,
		Readers: "vector_reader", Writers: "vector_writer", Short: "vector_short"}
	if err := pg.CreateDB(ctx, e.DB); err != nil {
		t.Fatal(err)
	}
	adminPW := randHex(t, 16)
	if err := pg.Exec(ctx, e.DB,
		"CREATE ROLE pgwarden_vault LOGIN CREATEROLE PASSWORD '"+adminPW+"'",
		"CREATE ROLE vector_reader NOLOGIN",
		"CREATE ROLE vector_writer NOLOGIN",
		"GRANT pg_signal_backend TO pgwarden_vault",
		"CREATE TABLE docs (id int)",
		"INSERT INTO docs VALUES (1), (2)",
		"GRANT SELECT ON docs TO vector_reader",
		"GRANT SELECT, INSERT ON docs TO vector_writer",
	); err != nil {
		t.Fatal(err)
	}
	e.V = startVault(t)
	v := e.V
	if err := v.Admin.Sys().Mount("database", &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	v.write(t, "database/config/pg", map[string]any{
		"plugin_name":             "postgresql-database-plugin",
		"connection_url":          fmt.Sprintf("postgresql://{{username}}:{{password}}@127.0.0.1:%d/%s?sslmode=disable", pg.Port, e.DB),
		"username":                "pgwarden_vault",
		"password":                adminPW,
		"allowed_roles":           "*",
		"password_authentication": "scram-sha-256",
		"verify_connection":       true,
	})
	role := func(name, group, ttl, maxTTL string) {
		v.write(t, "database/roles/"+name, map[string]any{
			"db_name": "pg",
			"creation_statements": []string{
				`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE ` + group + `;`,
			},
			"revocation_statements": []string{
				`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';`,
				`DROP ROLE IF EXISTS "{{name}}";`,
			},
			"default_ttl": ttl,
			"max_ttl":     maxTTL,
		})
	}
	role("vector_reader", "vector_reader", "1m", "5m")
	role("vector_writer", "vector_writer", "1m", "5m")
	role("vector_short", "vector_reader", "3s", "5s")

	for name, creds := range map[string]string{"reader-creds": "vector_reader", "writer-creds": "vector_writer"} {
		if err := v.Admin.Sys().PutPolicy(name, fmt.Sprintf(`path "database/creds/%s" { capabilities = ["read"] }`, creds)); err != nil {
			t.Fatal(err)
		}
	}

	// JWT auth: the user's own OIDC token logs in; Vault's identity groups
	// (from the token's groups claim) carry the policies.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e.JWTKey = key
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Admin.Sys().EnableAuthWithOptions("jwt", &vaultapi.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	v.write(t, "auth/jwt/config", map[string]any{
		"jwt_validation_pubkeys": []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))},
		"bound_issuer":           envIssuer,
	})
	v.write(t, "auth/jwt/role/pgwarden", map[string]any{
		"role_type":       "jwt",
		"bound_audiences": []string{envAudience},
		"user_claim":      "email",
		"groups_claim":    "groups",
		"token_ttl":       "10m",
		"token_max_ttl":   "1h",
	})
	auths, err := v.Admin.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	acc := auths["jwt/"].Accessor
	for group, pol := range map[string]string{"analyst": "reader-creds", "ingest": "writer-creds"} {
		g := v.write(t, "identity/group", map[string]any{"name": group, "type": "external", "policies": []string{pol}})
		v.write(t, "identity/group-alias", map[string]any{"name": group, "mount_accessor": acc, "canonical_id": g.Data["id"]})
	}

	// AppRole with a short token TTL, to exercise re-login.
	if err := v.Admin.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	v.write(t, "auth/approle/role/pgw", map[string]any{
		"token_policies": []string{"reader-creds", "writer-creds"},
		"token_ttl":      "2s",
		"token_max_ttl":  "3s",
	})
	rid, err := v.Admin.Logical().Read("auth/approle/role/pgw/role-id")
	if err != nil {
		t.Fatal(err)
	}
	e.RoleID = rid.Data["role_id"].(string)
	sid := v.write(t, "auth/approle/role/pgw/secret-id", nil)
	e.Secret = sid.Data["secret_id"].(string)
	return e
}

// userToken signs an OIDC-style token for email with groups.
func (e *vaultEnv) userToken(t testing.TB, key *rsa.PrivateKey, email string, groups ...string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer: e.Issuer, Subject: email, Audience: jwt.Audience{envAudience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
	}).Claims(map[string]any{"email": email, "groups": groups}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// connectAs logs in to PostgreSQL with a lease's credential and reports
// current_user and whether it is a member of group.
func (e *vaultEnv) connectAs(ctx context.Context, l Lease) (*pgx.Conn, error) {
	return e.connectUser(ctx, l.Username(), l.Password())
}

// connectUser logs in as user/password (Vault usernames may contain '@'
// from the display name, so no URL).
func (e *vaultEnv) connectUser(ctx context.Context, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(e.PG.SuperDSN(e.DB))
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Password = user, password
	return pgx.ConnectConfig(ctx, cfg)
}

func (e *vaultEnv) roleExists(t testing.TB, name string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.PG.SuperDSN(e.DB))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// waitRoleGone polls (bounded) until the role no longer exists.
func (e *vaultEnv) waitRoleGone(t testing.TB, name string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if !e.roleExists(t, name) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("role %s still exists after revocation", name)
}

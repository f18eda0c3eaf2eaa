package integration

// A compact harness for the vault provider end to end: a real
// `vault server -dev` on 127.0.0.1 (the binary scripts/vault-tool.sh builds
// into .tools/bin/vault) whose database secrets engine manages roles in the
// shared upstream PostgreSQL (scram-sha-256 over TCP, so Vault's passwords
// are really checked), and a pgwarden started with credentials.provider
// vault in front of it. The credentials package has its own (unexported)
// harness; this one follows the same ideas.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/gateway"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// itVault is a dev-mode Vault process.
type itVault struct {
	Addr  string
	Root  string
	Admin *vaultapi.Client // holds the root token
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
}

// vaultBin is the Vault server binary: PGWARDEN_VAULT_BIN or
// ../.tools/bin/vault. Missing: skip, or fail when CI is set.
func vaultBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PGWARDEN_VAULT_BIN")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", ".tools", "bin", "vault"))
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("vault server binary not built at %s (run scripts/vault-tool.sh or make setup)", bin)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

func vaultRandHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startITVault starts `vault server -dev` and kills it at cleanup.
func startITVault(t testing.TB) *itVault {
	t.Helper()
	bin := vaultBin(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	tv := &itVault{
		Addr: fmt.Sprintf("http://127.0.0.1:%d", port),
		Root: "root-" + vaultRandHex(t, 12),
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
	t.Cleanup(tv.Kill)

	cfg := vaultapi.DefaultConfig()
	cfg.Address = tv.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	if tv.Admin, err = vaultapi.NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	tv.Admin.SetToken(tv.Root)
	for deadline := time.Now().Add(60 * time.Second); ; {
		h, err := tv.Admin.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed {
			return tv
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
}

// Kill kills the Vault process (as if it crashed) and waits for it.
func (tv *itVault) Kill() {
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

// Log is the tail of Vault's output (for failure messages).
func (tv *itVault) Log() string {
	b, _ := os.ReadFile(tv.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (tv *itVault) write(t testing.TB, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	s, err := tv.Admin.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return s
}

// leases lists the ids of the live leases of Vault database role role.
func (tv *itVault) leases(t testing.TB, role string) []string {
	t.Helper()
	prefix := "database/creds/" + role + "/"
	s, err := tv.Admin.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatalf("vault list leases of %s: %v", role, err)
	}
	if s == nil {
		return nil
	}
	keys, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, prefix+fmt.Sprint(k))
	}
	return out
}

// leaseIssued is the issue time Vault recorded for lease id.
func (tv *itVault) leaseIssued(t testing.TB, id string) time.Time {
	t.Helper()
	s := tv.write(t, "sys/leases/lookup", map[string]any{"lease_id": id})
	raw, _ := s.Data["issue_time"].(string)
	ts, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		t.Fatalf("lease %s issue_time %q: %v", id, raw, err)
	}
	return ts
}

// Vault database roles configured by startVaultGateway.
const (
	vaultShortTTL    = 4 * time.Second // vector_short default_ttl
	vaultShortMaxTTL = 6 * time.Second // vector_short max_ttl
)

// startVaultGateway starts Vault with the database engine against the
// upstream PostgreSQL and a pgwarden with credentials.provider vault and
// credentials.vault.auth auth ("token": VAULT_TOKEN is the root token;
// "approle": AppRole pgwarden with a periodic token allowed the reader and
// writer creds and lease renew/revoke; "jwt": Vault's jwt auth trusts the
// gateway's OIDC issuer, and the Vault identity groups analyst, intern →
// reader-creds and ingest → writer-creds).
//
// Vault roles (all in the upstream's "vectors" database):
// vector_reader and vector_writer (1m/5m, members of the seed roles of the
// same name) and vector_short (4s/6s, member of vector_reader).
func startVaultGateway(t testing.TB, auth string, mutate func(*config.Config)) (*itVault, *gw) {
	t.Helper()
	vaultBin(t)
	ctx := context.Background()
	admin := "vault_admin_" + vaultRandHex(t, 4)
	adminPW := vaultRandHex(t, 16)
	if err := upstream.pg.Exec(ctx, "vectors",
		"CREATE ROLE "+admin+" LOGIN CREATEROLE PASSWORD '"+adminPW+"'",
		"GRANT pg_signal_backend TO "+admin,
	); err != nil {
		t.Fatal(err)
	}
	tv := startITVault(t)
	if err := tv.Admin.Sys().Mount("database", &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	tv.write(t, "database/config/pg", map[string]any{
		"plugin_name":             "postgresql-database-plugin",
		"connection_url":          fmt.Sprintf("postgresql://{{username}}:{{password}}@%s:%d/vectors?sslmode=disable", upstream.pg.Host, upstream.pg.Port),
		"username":                admin,
		"password":                adminPW,
		"allowed_roles":           "*",
		"password_authentication": "scram-sha-256",
		"verify_connection":       true,
	})
	role := func(name, member, ttl, maxTTL string) {
		tv.write(t, "database/roles/"+name, map[string]any{
			"db_name": "pg",
			"creation_statements": []string{
				`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE ` + member + `;`,
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
	role("vector_short", "vector_reader", vaultShortTTL.String(), vaultShortMaxTTL.String())
	for name, creds := range map[string]string{"reader-creds": "vector_reader", "writer-creds": "vector_writer"} {
		if err := tv.Admin.Sys().PutPolicy(name, fmt.Sprintf(`path "database/creds/%s" { capabilities = ["read"] }`, creds)); err != nil {
			t.Fatal(err)
		}
	}

	var roleID, secretID string
	if auth == "approle" {
		// As docs/vault.md says: a periodic token allowed the creds paths
		// plus sys/leases/revoke (the default policy only grants renew).
		if err := tv.Admin.Sys().PutPolicy("pgwarden-leases", `path "sys/leases/revoke" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }`); err != nil {
			t.Fatal(err)
		}
		if err := tv.Admin.Sys().EnableAuthWithOptions("approle", &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
		tv.write(t, "auth/approle/role/pgwarden", map[string]any{
			"token_policies": []string{"reader-creds", "writer-creds", "pgwarden-leases"},
			"token_period":   "1h",
		})
		rid, err := tv.Admin.Logical().Read("auth/approle/role/pgwarden/role-id")
		if err != nil {
			t.Fatal(err)
		}
		roleID = rid.Data["role_id"].(string)
		secretID = tv.write(t, "auth/approle/role/pgwarden/secret-id", nil).Data["secret_id"].(string)
	}
	if auth == "token" {
		t.Setenv("VAULT_TOKEN", tv.Root)
	} else {
		t.Setenv("VAULT_TOKEN", "") // jwt/approle must not depend on (or use) one
	}
	// The gateway's whole log (debug level), checked after it stopped:
	// no Vault token, AppRole secret id or OIDC token in it.
	logBuf := &syncBuffer{}
	t.Cleanup(func() {
		out := logBuf.String()
		for name, secret := range map[string]string{"root token": tv.Root, "vault token": "hvs.", "secret_id": secretID, "JWT": "eyJ"} {
			if secret != "" && strings.Contains(out, secret) {
				t.Errorf("gateway log contains a %s", name)
			}
		}
		if strings.Count(out, "\n") < 2 && !t.Failed() {
			t.Errorf("gateway log is nearly empty (%d bytes): capture broken?", len(out))
		}
	})
	w := startGatewayLogged(t, logBuf, func(cfg *config.Config) {
		cfg.Credentials.Provider = "vault"
		cfg.Credentials.Vault = config.Vault{Address: tv.Addr, Auth: auth, JWTRole: "pgwarden", JWTMount: "jwt", Mount: "database",
			RoleID: roleID, SecretID: secretID}
		cfg.Credentials.Native.AdminDSN = "" // the gateway holds no database secret
		if mutate != nil {
			mutate(cfg)
		}
	})

	if auth == "jwt" {
		// Vault trusts the same issuer pgwarden verifies tokens from.
		if err := tv.Admin.Sys().EnableAuthWithOptions("jwt", &vaultapi.EnableAuthOptions{Type: "jwt"}); err != nil {
			t.Fatal(err)
		}
		tv.write(t, "auth/jwt/config", map[string]any{
			"oidc_discovery_url": w.Issuer.URL,
			"bound_issuer":       w.Issuer.URL,
			"jwt_supported_algs": []string{"ES256"},
		})
		tv.write(t, "auth/jwt/role/pgwarden", map[string]any{
			"role_type":       "jwt",
			"bound_audiences": []string{"pgwarden"},
			"user_claim":      "email",
			"groups_claim":    "groups",
			"token_ttl":       "10m",
			"token_max_ttl":   "1h",
		})
		auths, err := tv.Admin.Sys().ListAuth()
		if err != nil {
			t.Fatal(err)
		}
		acc := auths["jwt/"].Accessor
		for group, pol := range map[string]string{"analyst": "reader-creds", "intern": "reader-creds", "ingest": "writer-creds"} {
			g := tv.write(t, "identity/group", map[string]any{"name": group, "type": "external", "policies": []string{pol}})
			tv.write(t, "identity/group-alias", map[string]any{"name": group, "mount_accessor": acc, "canonical_id": g.Data["id"]})
		}
	}
	return tv, w
}

// readyz fetches the gateway's /readyz: status code and body.
func (w *gw) readyz(t testing.TB) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(w.AdminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// upstreamRoleExists reports whether role exists in the upstream (d: a
// direct superuser connection).
func upstreamRoleExists(t testing.TB, d *pgx.Conn, role string) bool {
	t.Helper()
	var n int
	must0(t, d.QueryRow(context.Background(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n))
	return n > 0
}

// waitVault polls cond every 100ms for up to limit.
func waitVault(limit time.Duration, cond func() bool) bool {
	for i := 0; i < int(limit/(100*time.Millisecond)); i++ {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGatewayLogged is startGateway with the gateway's log at debug level
// written to logw (and warnings and above to the test log).
func startGatewayLogged(t testing.TB, logw io.Writer, mutate func(*config.Config)) *gw {
	t.Helper()
	is := newIssuer(t)
	cfg := baseConfig(t, is)
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Admin.Listen = wl.Addr().String(), al.Addr().String()
	log := zerolog.New(zerolog.MultiLevelWriter(logw, warnOnly{zerolog.NewTestWriter(t)})).Level(zerolog.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, gateway.Options{Log: log})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, wl, al) }()
	w := &gw{Addr: cfg.Listen, AdminURL: "http://" + cfg.Admin.Listen, Cfg: cfg, Issuer: is, G: g}
	w.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop within 20s")
		}
	}
	t.Cleanup(w.stop)
	return w
}

// warnOnly passes warnings and above to w.
type warnOnly struct{ w io.Writer }

func (f warnOnly) Write(p []byte) (int, error) { return len(p), nil }

func (f warnOnly) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < zerolog.WarnLevel {
		return len(p), nil
	}
	return f.w.Write(p)
}

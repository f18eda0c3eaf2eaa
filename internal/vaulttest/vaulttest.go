// Package vaulttest is test support only: it starts a real HashiCorp Vault
// dev server (`vault server -dev`) on 127.0.0.1 for the tests of the
// credentials and integration packages, and configures its database secrets
// engine, policies and auth methods the way those tests need.
//
// The server binary is PGWARDEN_VAULT_BIN or .tools/bin/vault at the module
// root (scripts/vault-tool.sh builds it; make setup runs that). When it is
// missing a test is skipped, or fails when CI is set.
//
// Lifecycle: Start returns a ready, unsealed server with a random root token
// and kills it at the test's cleanup; Kill may end it earlier (as if it
// crashed). Everything fails the test through testing.TB; nothing returns
// errors to recover from.
//
// It must never be imported by production code, never listen beyond
// 127.0.0.1, and never wait without a bound.
package vaulttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// Server is a dev-mode Vault process on 127.0.0.1.
type Server struct {
	Addr  string           // http://127.0.0.1:port
	Root  string           // root token
	Admin *vaultapi.Client // holds the root token
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
}

// Binary is the Vault server binary: PGWARDEN_VAULT_BIN or .tools/bin/vault
// at the module root. Missing: skip, or fail when CI is set. Callers that
// need more set-up (a PostgreSQL) call it first to skip early.
func Binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PGWARDEN_VAULT_BIN")
	if bin == "" {
		bin = filepath.Join(moduleRoot(), ".tools", "bin", "vault")
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

// moduleRoot is the nearest directory at or above the working directory
// (a test's package directory) holding go.mod; ".." when none is found.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ".."
	}
	for i := 0; i < 32; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ".."
}

// RandHex is n random bytes, hex-encoded (passwords, tokens, role suffixes).
func RandHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Start starts `vault server -dev` with a random root token, waits (at most
// 60s) until it is initialised and unsealed, and kills it at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	s := &Server{
		Addr: fmt.Sprintf("http://127.0.0.1:%d", port),
		Root: "root-" + RandHex(t, 12),
		done: make(chan struct{}),
		log:  filepath.Join(home, "vault.log"),
	}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, "server", "-dev", "-dev-no-store-token",
		"-dev-root-token-id="+s.Root, fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port))
	s.cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.done) }()
	t.Cleanup(s.Kill)

	cfg := vaultapi.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	if s.Admin, err = vaultapi.NewClient(cfg); err != nil {
		t.Fatal(err)
	}
	s.Admin.SetToken(s.Root)
	for deadline := time.Now().Add(60 * time.Second); ; {
		h, err := s.Admin.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("vault exited during start:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault did not become ready: %v\n%s", err, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill kills the Vault process (as if it crashed) and waits (at most 10s)
// for it. Calling it again, or after the process ended, does nothing.
func (s *Server) Kill() {
	if s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
}

// Pause stops the Vault process (SIGSTOP): it accepts connections but
// answers nothing, as a hung server, until Resume.
func (s *Server) Pause() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused Vault process (SIGCONT).
func (s *Server) Resume() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Log is the tail (4000 bytes) of Vault's output, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Write writes data at path with the root token; an error fails the test.
func (s *Server) Write(t testing.TB, path string, data map[string]any) *vaultapi.Secret {
	t.Helper()
	sec, err := s.Admin.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("vault write %s: %v", path, err)
	}
	return sec
}

// EnableAuth enables the auth method kind at the path of the same name.
func (s *Server) EnableAuth(t testing.TB, kind string) {
	t.Helper()
	if err := s.Admin.Sys().EnableAuthWithOptions(kind, &vaultapi.EnableAuthOptions{Type: kind}); err != nil {
		t.Fatalf("vault enable auth %s: %v", kind, err)
	}
}

// PutPolicy writes the ACL policy name.
func (s *Server) PutPolicy(t testing.TB, name, rules string) {
	t.Helper()
	if err := s.Admin.Sys().PutPolicy(name, rules); err != nil {
		t.Fatalf("vault put policy %s: %v", name, err)
	}
}

// Database is the PostgreSQL the database secrets engine manages roles in,
// reached over TCP as User (LOGIN CREATEROLE, member of pg_signal_backend).
type Database struct {
	Host, User, Password, Name string
	Port                       int
}

// MountDatabase mounts the database secrets engine at "database" and
// configures connection "pg" to db (scram-sha-256 passwords, so PostgreSQL
// really checks the ones Vault mints; the connection is verified).
func (s *Server) MountDatabase(t testing.TB, db Database) {
	t.Helper()
	if err := s.Admin.Sys().Mount("database", &vaultapi.MountInput{Type: "database"}); err != nil {
		t.Fatalf("vault mount database: %v", err)
	}
	s.Write(t, "database/config/pg", map[string]any{
		"plugin_name":             "postgresql-database-plugin",
		"connection_url":          fmt.Sprintf("postgresql://{{username}}:{{password}}@%s:%d/%s?sslmode=disable", db.Host, db.Port, db.Name),
		"username":                db.User,
		"password":                db.Password,
		"allowed_roles":           "*",
		"password_authentication": "scram-sha-256",
		"verify_connection":       true,
	})
}

// DatabaseRole defines Vault database role name on connection "pg": each
// credential is a LOGIN role valid until its expiry and a member of the
// PostgreSQL role member; revocation terminates its backends and drops it.
func (s *Server) DatabaseRole(t testing.TB, name, member, ttl, maxTTL string) {
	t.Helper()
	s.Write(t, "database/roles/"+name, map[string]any{
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

// CredsPolicies writes, for each policy name → database role, a policy
// allowing only a read of database/creds/<role>.
func (s *Server) CredsPolicies(t testing.TB, policies map[string]string) {
	t.Helper()
	for name, role := range policies {
		s.PutPolicy(t, name, fmt.Sprintf(`path "database/creds/%s" { capabilities = ["read"] }`, role))
	}
}

// JWTRole writes jwt auth role name (auth/jwt must be enabled): tokens
// bound to audience, user from the email claim, groups from the groups
// claim, Vault tokens of 10m (at most 1h).
func (s *Server) JWTRole(t testing.TB, name, audience string) {
	t.Helper()
	s.Write(t, "auth/jwt/role/"+name, map[string]any{
		"role_type":       "jwt",
		"bound_audiences": []string{audience},
		"user_claim":      "email",
		"groups_claim":    "groups",
		"token_ttl":       "10m",
		"token_max_ttl":   "1h",
	})
}

// JWTGroups creates, for each group → policy, an external identity group
// carrying the policy with an alias on the jwt auth mount, so a token's
// groups claim grants the policies.
func (s *Server) JWTGroups(t testing.TB, groups map[string]string) {
	t.Helper()
	auths, err := s.Admin.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	acc := auths["jwt/"].Accessor
	for group, pol := range groups {
		g := s.Write(t, "identity/group", map[string]any{"name": group, "type": "external", "policies": []string{pol}})
		s.Write(t, "identity/group-alias", map[string]any{"name": group, "mount_accessor": acc, "canonical_id": g.Data["id"]})
	}
}

// Leases lists the ids of the live leases of Vault database role role.
func (s *Server) Leases(t testing.TB, role string) []string {
	t.Helper()
	prefix := "database/creds/" + role + "/"
	sec, err := s.Admin.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatalf("vault list leases of %s: %v", role, err)
	}
	if sec == nil {
		return nil
	}
	keys, _ := sec.Data["keys"].([]any)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, prefix+fmt.Sprint(k))
	}
	return out
}

// LeaseIssued is the issue time Vault recorded for lease id.
func (s *Server) LeaseIssued(t testing.TB, id string) time.Time {
	t.Helper()
	sec := s.Write(t, "sys/leases/lookup", map[string]any{"lease_id": id})
	raw, _ := sec.Data["issue_time"].(string)
	ts, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		t.Fatalf("lease %s issue_time %q: %v", id, raw, err)
	}
	return ts
}

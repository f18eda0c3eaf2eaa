package integration

// A compact harness for the vault provider end to end: a real
// `vault server -dev` on 127.0.0.1 (the binary scripts/vault-tool.sh builds
// into .tools/bin/vault) whose database secrets engine manages roles in the
// shared upstream PostgreSQL (scram-sha-256 over TCP, so Vault's passwords
// are really checked), and a pgwarden started with credentials.provider
// vault in front of it. The Vault process and its engine set-up are
// internal/vaulttest, shared with the credentials package's tests.

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/vaulttest"
)

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
func startVaultGateway(t testing.TB, auth string, mutate func(*config.Config)) (*vaulttest.Server, *gw) {
	t.Helper()
	vaulttest.Binary(t)
	ctx := context.Background()
	admin := "vault_admin_" + vaulttest.RandHex(t, 4)
	adminPW := vaulttest.RandHex(t, 16)
	if err := upstream.pg.Exec(ctx, "vectors",
		"CREATE ROLE "+admin+" LOGIN CREATEROLE PASSWORD '"+adminPW+"'",
		"GRANT pg_signal_backend TO "+admin,
	); err != nil {
		t.Fatal(err)
	}
	tv := vaulttest.Start(t)
	tv.MountDatabase(t, vaulttest.Database{Host: upstream.pg.Host, Port: upstream.pg.Port, Name: "vectors", User: admin, Password: adminPW})
	tv.DatabaseRole(t, "vector_reader", "vector_reader", "1m", "5m")
	tv.DatabaseRole(t, "vector_writer", "vector_writer", "1m", "5m")
	tv.DatabaseRole(t, "vector_short", "vector_reader", vaultShortTTL.String(), vaultShortMaxTTL.String())
	tv.CredsPolicies(t, map[string]string{"reader-creds": "vector_reader", "writer-creds": "vector_writer"})

	var roleID, secretID string
	if auth == "approle" {
		// As docs/vault.md says: a periodic token allowed the creds paths
		// plus sys/leases/revoke (the default policy only grants renew).
		tv.PutPolicy(t, "pgwarden-leases", `path "sys/leases/revoke" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }`)
		tv.EnableAuth(t, "approle")
		tv.Write(t, "auth/approle/role/pgwarden", map[string]any{
			"token_policies": []string{"reader-creds", "writer-creds", "pgwarden-leases"},
			"token_period":   "1h",
		})
		rid, err := tv.Admin.Logical().Read("auth/approle/role/pgwarden/role-id")
		if err != nil {
			t.Fatal(err)
		}
		roleID = rid.Data["role_id"].(string)
		secretID = tv.Write(t, "auth/approle/role/pgwarden/secret-id", nil).Data["secret_id"].(string)
	}
	if auth == "token" {
		t.Setenv("VAULT_TOKEN", tv.Root)
	} else {
		t.Setenv("VAULT_TOKEN", "") // jwt/approle must not depend on (or use) one
	}
	// The gateway's whole log (debug level), checked after it stopped:
	// no Vault token, AppRole secret id or OIDC token in it.
	logBuf := &lockedBuffer{}
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
	catalogDSN := catalogReader(t)
	w := startGatewayWith(t, gwOptions{Log: logBuf, Mutate: func(cfg *config.Config) {
		cfg.Credentials.Provider = "vault"
		cfg.Credentials.Vault = config.Vault{Address: tv.Addr, Auth: auth, JWTRole: "pgwarden", JWTMount: "jwt", Mount: "database",
			RoleID: roleID, SecretID: secretID}
		cfg.Credentials.Native.AdminDSN = "" // the gateway holds no data secret:
		cfg.Masking.CatalogDSN = catalogDSN  // only a catalog reader for masking
		if mutate != nil {
			mutate(cfg)
		}
	}})

	if auth == "jwt" {
		// Vault trusts the same issuer pgwarden verifies tokens from.
		tv.EnableAuth(t, "jwt")
		tv.Write(t, "auth/jwt/config", map[string]any{
			"oidc_discovery_url": w.Issuer.URL,
			"bound_issuer":       w.Issuer.URL,
			"jwt_supported_algs": []string{"ES256"},
		})
		tv.JWTRole(t, "pgwarden", "pgwarden")
		tv.JWTGroups(t, map[string]string{"analyst": "reader-creds", "intern": "reader-creds", "ingest": "writer-creds"})
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

// catalogReader is a login role with no data privileges, enough for the
// masking catalog cache (pg_class/pg_attribute are readable by everyone).
func catalogReader(t testing.TB) string {
	t.Helper()
	const pw = "catalog-reader-pw"
	err := upstream.pg.Exec(context.Background(), "postgres",
		`DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgwarden_catalog') THEN CREATE ROLE pgwarden_catalog LOGIN PASSWORD '`+pw+`'; END IF; END$$`)
	if err != nil {
		t.Fatal(err)
	}
	return upstream.pg.DSN("pgwarden_catalog", pw, "vectors")
}

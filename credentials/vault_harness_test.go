package credentials

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/vaulttest"
)

// vaultEnv is a Vault whose database engine points at a real PostgreSQL.
type vaultEnv struct {
	V       *vaulttest.Server
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
	vaulttest.Binary(t) // skip before starting PostgreSQL
	pg := pgtest.StartT(t, pgtest.Options{})
	e := &vaultEnv{PG: pg, DB: "vectors", Issuer: envIssuer,
		Readers: "vector_reader", Writers: "vector_writer", Short: "vector_short"}
	if err := pg.CreateDB(ctx, e.DB); err != nil {
		t.Fatal(err)
	}
	adminPW := vaulttest.RandHex(t, 16)
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
	e.V = vaulttest.Start(t)
	v := e.V
	v.MountDatabase(t, vaulttest.Database{Host: "127.0.0.1", Port: pg.Port, Name: e.DB, User: "pgwarden_vault", Password: adminPW})
	v.DatabaseRole(t, "vector_reader", "vector_reader", "1m", "5m")
	v.DatabaseRole(t, "vector_writer", "vector_writer", "1m", "5m")
	v.DatabaseRole(t, "vector_short", "vector_reader", "3s", "5s")
	v.CredsPolicies(t, map[string]string{"reader-creds": "vector_reader", "writer-creds": "vector_writer"})

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
	v.EnableAuth(t, "jwt")
	v.Write(t, "auth/jwt/config", map[string]any{
		"jwt_validation_pubkeys": []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))},
		"bound_issuer":           envIssuer,
	})
	v.JWTRole(t, "pgwarden", envAudience)
	v.JWTGroups(t, map[string]string{"analyst": "reader-creds", "ingest": "writer-creds"})

	// AppRole with a short token TTL, to exercise re-login.
	v.EnableAuth(t, "approle")
	v.Write(t, "auth/approle/role/pgw", map[string]any{
		"token_policies": []string{"reader-creds", "writer-creds"},
		"token_ttl":      "2s",
		"token_max_ttl":  "3s",
	})
	rid, err := v.Admin.Logical().Read("auth/approle/role/pgw/role-id")
	if err != nil {
		t.Fatal(err)
	}
	e.RoleID = rid.Data["role_id"].(string)
	sid := v.Write(t, "auth/approle/role/pgw/secret-id", nil)
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

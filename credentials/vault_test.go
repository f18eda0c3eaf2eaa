package credentials

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
)

func vaultCfg(e *vaultEnv, auth string) config.Vault {
	return config.Vault{Address: e.V.Addr, Auth: auth, Mount: "database", JWTRole: "pgwarden", JWTMount: "jwt"}
}

func newTestVault(t *testing.T, cfg config.Vault) *Vault {
	t.Helper()
	v, err := NewVault(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func wantMintError(t *testing.T, err error, public string, secrets ...string) {
	t.Helper()
	var me *MintError
	if !errors.As(err, &me) {
		t.Fatalf("got %v (%T), want *MintError %q", err, err, public)
	}
	if !strings.Contains(me.Public, public) {
		t.Fatalf("MintError.Public = %q, want it to contain %q", me.Public, public)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error leaks a secret: %q", err.Error())
		}
	}
}

// memberOf reports current_user and whether it is a member of group, as
// seen by a session logged in with the lease (password really checked:
// pgtest uses scram-sha-256 for every role but postgres).
func memberOf(t *testing.T, e *vaultEnv, l Lease, group string) (string, bool) {
	t.Helper()
	ctx := context.Background()
	conn, err := e.connectAs(ctx, l)
	if err != nil {
		t.Fatalf("login with the vault credential: %v", err)
	}
	defer conn.Close(ctx)
	var user string
	var member bool
	if err := conn.QueryRow(ctx, "SELECT current_user, pg_has_role(current_user, $1, 'member')", group).Scan(&user, &member); err != nil {
		t.Fatal(err)
	}
	return user, member
}

func TestVaultProvider(t *testing.T) {
	e := newVaultEnv(t)
	ctx := context.Background()

	t.Run("token", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", e.V.Root)
		v := newTestVault(t, vaultCfg(e, "token"))
		if err := v.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
		before := time.Now()
		l, err := v.Mint(ctx, Request{DBRoles: []string{"vector_reader"}, Database: e.DB, SessionID: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(l.Username(), "v-") || l.Password() == "" {
			t.Fatalf("username %q: want a v-… role with a password", l.Username())
		}
		if exp := l.Expiry(); exp.Before(before.Add(50*time.Second)) || exp.After(time.Now().Add(61*time.Second)) {
			t.Fatalf("expiry %v not ~1m from now", exp)
		}
		user, member := memberOf(t, e, l, "vector_reader")
		if user != l.Username() || !member {
			t.Fatalf("logged in as %q member=%v, want %q in vector_reader", user, member, l.Username())
		}
		if c, err := e.connectUser(ctx, l.Username(), l.Password()+"x"); err == nil {
			c.Close(ctx)
			t.Fatal("wrong password accepted: passwords are not checked")
		}
		leaseID := l.(*vaultLease).LeaseID()
		if !strings.HasPrefix(leaseID, "database/creds/vector_reader/") {
			t.Fatalf("lease id %q", leaseID)
		}
		if _, err := e.V.Admin.Sys().Lookup(leaseID); err != nil {
			t.Fatalf("lease not visible in vault: %v", err)
		}
		exp, err := l.Renew(ctx)
		if err != nil {
			t.Fatalf("Renew: %v", err)
		}
		if exp.Before(time.Now().Add(50 * time.Second)) {
			t.Fatalf("renewed expiry %v too early", exp)
		}
		if err := l.Revoke(ctx); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if _, err := e.V.Admin.Sys().Lookup(leaseID); err == nil {
			t.Fatal("lease still in vault after Revoke")
		}
		e.waitRoleGone(t, l.Username())
		if err := l.Revoke(ctx); err != nil {
			t.Fatalf("second Revoke: %v", err)
		}
		if l.Password() != "" {
			t.Fatal("password kept after Revoke")
		}
		if _, err := l.Renew(ctx); !errors.Is(err, ErrNotRenewable) {
			t.Fatalf("Renew after Revoke: %v, want ErrNotRenewable", err)
		}
	})

	t.Run("role choice", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", e.V.Root)
		cfg := vaultCfg(e, "token")
		cfg.RoleOrder = []string{"vector_writer", "vector_reader"}
		v := newTestVault(t, cfg)
		l, err := v.Mint(ctx, Request{DBRoles: []string{"vector_reader", "vector_writer"}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Revoke(ctx)
		if _, member := memberOf(t, e, l, "vector_writer"); !member {
			t.Fatal("role_order put vector_writer first but the credential is not a writer")
		}
		_, err = v.Mint(ctx, Request{DBRoles: []string{"nosuch"}})
		wantMintError(t, err, "vault database role nosuch not found", e.V.Root)
		_, err = v.Mint(ctx, Request{})
		wantMintError(t, err, "no database role")
		_, err = v.Mint(ctx, Request{DBRoles: []string{"../../sys/seal"}})
		wantMintError(t, err, "invalid database role name")
	})

	t.Run("renewal refused at max ttl", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", e.V.Root)
		v := newTestVault(t, vaultCfg(e, "token"))
		start := time.Now()
		l, err := v.Mint(ctx, Request{DBRoles: []string{"vector_short"}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Revoke(ctx)
		password := l.Password()
		if _, err := l.Renew(ctx); err != nil { // 3s of 5s max: still a full TTL
			t.Fatalf("first Renew: %v", err)
		}
		// Renew as a keep-alive would until Vault caps the TTL at max_ttl
		// (less than the 3s default left): bounded, and well before max_ttl.
		var exp time.Time
		for i := 0; ; i++ {
			time.Sleep(500 * time.Millisecond)
			exp, err = l.Renew(ctx)
			if errors.Is(err, ErrNotRenewable) {
				break
			}
			if err != nil || i == 8 || time.Since(start) > 4500*time.Millisecond {
				t.Fatalf("Renew near max_ttl (after %v): %v, want ErrNotRenewable", time.Since(start), err)
			}
		}
		if maxExp := start.Add(5*time.Second + 500*time.Millisecond); exp.After(maxExp) || !exp.Equal(l.Expiry()) {
			t.Fatalf("final expiry %v (Expiry %v), want <= %v", exp, l.Expiry(), maxExp)
		}
		if _, err := l.Renew(ctx); !errors.Is(err, ErrNotRenewable) {
			t.Fatalf("Renew after final: %v", err)
		}
		// Past max_ttl Vault revokes the lease itself and the role cannot log in.
		time.Sleep(time.Until(exp) + 1500*time.Millisecond)
		if c, err := e.connectUser(ctx, l.Username(), password); err == nil {
			c.Close(ctx)
			t.Fatal("credential still logs in after its max TTL")
		}
	})

	t.Run("jwt", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", e.V.Root) // must NOT be used in jwt mode
		v := newTestVault(t, vaultCfg(e, "jwt"))
		alice := e.userToken(t, e.JWTKey, "alice@example.com", "analyst")
		bob := e.userToken(t, e.JWTKey, "bob@example.com", "ingest")
		req := func(tok string, groups []string, roles ...string) Request {
			return Request{Principal: identity.Principal{Groups: groups}, Token: tok, DBRoles: roles}
		}
		la, err := v.Mint(ctx, req(alice, []string{"analyst"}, "vector_reader"))
		if err != nil {
			t.Fatal(err)
		}
		lb, err := v.Mint(ctx, req(bob, []string{"ingest"}, "vector_writer"))
		if err != nil {
			t.Fatal(err)
		}
		if _, m := memberOf(t, e, la, "vector_reader"); !m {
			t.Fatal("alice is not a reader")
		}
		if _, m := memberOf(t, e, la, "vector_writer"); m {
			t.Fatal("alice is a writer")
		}
		if _, m := memberOf(t, e, lb, "vector_writer"); !m {
			t.Fatal("bob is not a writer")
		}
		// Vault's policy, not pgwarden, refuses alice the writer role (and
		// a jwt token must not fall back to VAULT_TOKEN's root power).
		_, err = v.Mint(ctx, req(alice, []string{"analyst"}, "vector_writer"))
		wantMintError(t, err, "vault permission denied for database role vector_writer", alice, e.V.Root)
		// A token Vault cannot verify.
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		forged := e.userToken(t, other, "mallory@example.com", "ingest")
		_, err = v.Mint(ctx, req(forged, []string{"ingest"}, "vector_writer"))
		wantMintError(t, err, "vault jwt login refused", forged)
		_, err = v.Mint(ctx, req("", nil, "vector_reader"))
		wantMintError(t, err, "OIDC token")

		if exp, err := la.Renew(ctx); err != nil || exp.Before(time.Now().Add(50*time.Second)) {
			t.Fatalf("jwt Renew: %v %v", exp, err)
		}
		// Revoke: the session's login token has no sys/leases/revoke; revoking
		// the token itself takes the lease (and the role) with it.
		if err := la.Revoke(ctx); err != nil {
			t.Fatalf("jwt Revoke: %v", err)
		}
		e.waitRoleGone(t, la.Username())
		if err := lb.Revoke(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitRoleGone(t, lb.Username())
	})

	t.Run("approle", func(t *testing.T) {
		cfg := vaultCfg(e, "approle")
		cfg.RoleID, cfg.SecretID = e.RoleID, e.Secret
		v := newTestVault(t, cfg)
		if err := v.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
		l, err := v.Mint(ctx, Request{DBRoles: []string{"vector_writer"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, m := memberOf(t, e, l, "vector_writer"); !m {
			t.Fatal("approle credential is not a writer")
		}
		_ = l.Revoke(ctx)
		// The AppRole token lives at most 3s: after that pgwarden must have
		// logged in again on its own.
		time.Sleep(3500 * time.Millisecond)
		l2, err := v.Mint(ctx, Request{DBRoles: []string{"vector_reader"}})
		if err != nil {
			t.Fatalf("mint after the approle token's max TTL: %v", err)
		}
		_ = l2.Revoke(ctx)
		if err := v.Check(ctx); err != nil {
			t.Fatalf("Check after re-login: %v", err)
		}

		bad := cfg
		bad.SecretID = "wrong-" + e.Secret
		_, err = NewVault(ctx, bad, zerolog.Nop())
		if err == nil || strings.Contains(err.Error(), bad.SecretID) {
			t.Fatalf("bad secret id: err=%v (must fail without echoing it)", err)
		}
	})
}

// Vault sealed, then gone: new mints fail naming the cause, Check reflects
// it, and a credential minted before keeps working upstream.
func TestVaultSealedAndUnreachable(t *testing.T) {
	e := newVaultEnv(t)
	ctx := context.Background()
	t.Setenv("VAULT_TOKEN", e.V.Root)
	v := newTestVault(t, vaultCfg(e, "token"))
	l, err := v.Mint(ctx, Request{DBRoles: []string{"vector_reader"}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.connectAs(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	if err := e.V.Admin.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	_, err = v.Mint(ctx, Request{DBRoles: []string{"vector_reader"}})
	wantMintError(t, err, "vault is sealed", e.V.Root)
	if err := v.Check(ctx); err == nil || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("Check while sealed: %v", err)
	}
	if _, err := l.Renew(ctx); err == nil || errors.Is(err, ErrNotRenewable) {
		t.Fatalf("Renew while sealed: %v, want a transient error", err)
	}

	e.V.Kill()
	_, err = v.Mint(ctx, Request{DBRoles: []string{"vector_reader"}})
	wantMintError(t, err, "vault unreachable", e.V.Root)
	if err := v.Check(ctx); err == nil || !strings.Contains(err.Error(), "vault unreachable") {
		t.Fatalf("Check with vault down: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM docs").Scan(&n); err != nil || n != 2 {
		t.Fatalf("existing session broke when vault went away: n=%d err=%v", n, err)
	}
	if err := l.Revoke(ctx); err == nil {
		t.Fatal("Revoke with vault down reported success")
	}
}

func TestPickVaultRole(t *testing.T) {
	for _, c := range []struct {
		roles, order []string
		want         string
	}{
		{nil, nil, ""},
		{[]string{"b", "a"}, nil, "a"},
		{[]string{"reader", "writer"}, []string{"writer"}, "writer"},
		{[]string{"reader", "writer"}, []string{"admin"}, "reader"},
		{[]string{"reader"}, []string{"admin", "reader"}, "reader"},
		{[]string{"", "x"}, nil, "x"},
	} {
		if got := PickVaultRole(c.roles, c.order); got != c.want {
			t.Errorf("PickVaultRole(%v, %v) = %q, want %q", c.roles, c.order, got, c.want)
		}
	}
}

func TestVaultClassify(t *testing.T) {
	re := func(code int, msgs ...string) error {
		return &vaultapi.ResponseError{HTTPMethod: "GET", URL: "http://127.0.0.1:1/v1/database/creds/r?token=SECRET", StatusCode: code, Errors: msgs}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{re(503, "Vault is sealed"), "vault is sealed"},
		{re(403, "1 error occurred:\n\t* permission denied\n\n"), "vault permission denied for database role r"},
		{re(400, "unknown role: r"), "vault database role r not found"},
		{re(404), "vault database role r not found"},
		{re(500, "internal error"), "vault error (status 500)"},
		{re(429), "rate limited"},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), "vault unreachable"},
		{context.Canceled, "cancelled"},
	} {
		me := classify(c.err, "r")
		if me.Public != c.want && !strings.Contains(me.Public, c.want) {
			t.Errorf("classify(%v) = %q, want %q", c.err, me.Public, c.want)
		}
		if strings.Contains(me.Error(), "SECRET") || strings.Contains(me.Error(), "127.0.0.1:1/v1") {
			t.Errorf("classified error keeps the request URL: %q", me.Error())
		}
	}
	if !isDefinitive(re(400)) || isDefinitive(re(503)) || isDefinitive(errors.New("x")) {
		t.Error("isDefinitive wrong")
	}
}

func TestVaultLeaseFromSecret(t *testing.T) {
	start := time.Unix(1000, 0)
	sec, err := vaultapi.ParseSecret(strings.NewReader(`{"lease_id":"database/creds/r/abc","lease_duration":60,"renewable":true,"data":{"username":"v-x","password":"p"}}`))
	if err != nil {
		t.Fatal(err)
	}
	l, err := leaseFromSecret(sec, start)
	if err != nil {
		t.Fatal(err)
	}
	if l.username != "v-x" || l.password != "p" || !l.expiry.Equal(start.Add(time.Minute)) || !l.renewable || l.increment != 60 {
		t.Fatalf("lease %+v", l)
	}
	for _, body := range []string{
		`{"lease_id":"x","lease_duration":60,"data":{"username":"v-x"}}`,
		`{"lease_id":"x","lease_duration":60,"data":{"username":1,"password":"p"}}`,
		`{"lease_id":"","lease_duration":60,"data":{"username":"u","password":"p"}}`,
		`{"lease_id":"x","lease_duration":0,"data":{"username":"u","password":"p"}}`,
	} {
		sec, _ := vaultapi.ParseSecret(strings.NewReader(body))
		if _, err := leaseFromSecret(sec, start); err == nil {
			t.Errorf("accepted %s", body)
		}
	}
	if _, err := leaseFromSecret(nil, start); err == nil {
		t.Error("accepted nil secret")
	}
}

// FuzzVaultLeaseFromSecret: a creds response is untrusted input.
func FuzzVaultLeaseFromSecret(f *testing.F) {
	f.Add([]byte(`{"lease_id":"database/creds/r/abc","lease_duration":60,"renewable":true,"data":{"username":"v-x","password":"p"}}`))
	f.Add([]byte(`{"data":null}`))
	f.Add([]byte(`{"lease_duration":-5,"lease_id":"x","data":{"username":"a","password":"b"}}`))
	start := time.Unix(1000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		sec, err := vaultapi.ParseSecret(bytes.NewReader(b))
		if err != nil {
			return
		}
		l, err := leaseFromSecret(sec, start)
		if err != nil {
			return
		}
		if l.username == "" || l.password == "" || l.leaseID == "" || !l.expiry.After(start) {
			t.Fatalf("accepted an incomplete credential: %+v", l)
		}
	})
}

func BenchmarkPickVaultRole(b *testing.B) {
	roles := []string{"vector_admin", "vector_reader", "vector_writer"}
	order := []string{"vector_admin", "vector_writer"}
	b.ReportAllocs()
	for b.Loop() {
		if PickVaultRole(roles, order) != "vector_admin" {
			b.Fatal("wrong")
		}
	}
}

// BenchmarkVaultMintRevoke: one session's credential round trip against a
// real Vault and PostgreSQL (read creds = CREATE ROLE; revoke = DROP ROLE).
func BenchmarkVaultMintRevoke(b *testing.B) {
	e := newVaultEnv(b)
	ctx := context.Background()
	b.Setenv("VAULT_TOKEN", e.V.Root)
	v, err := NewVault(ctx, vaultCfg(e, "token"), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	b.ReportAllocs()
	for b.Loop() {
		l, err := v.Mint(ctx, Request{DBRoles: []string{"vector_reader"}})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Revoke(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewVaultConfigErrors(t *testing.T) {
	ctx := context.Background()
	t.Setenv("VAULT_TOKEN", "")
	for _, c := range []struct {
		cfg  config.Vault
		want string
	}{
		{config.Vault{Address: "http://127.0.0.1:1", Auth: "token"}, "VAULT_TOKEN is not set"},
		{config.Vault{Address: "http://127.0.0.1:1", Auth: "approle", RoleID: "r"}, "role_id and secret_id"},
		{config.Vault{Address: "http://127.0.0.1:1", Auth: "jwt"}, "jwt_role"},
		{config.Vault{Address: "http://127.0.0.1:1", Auth: "kerberos"}, "not one of"},
	} {
		_, err := NewVault(ctx, c.cfg, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewVault(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	// An unreachable Vault at start is not fatal; Check reports it; Close
	// stops the token goroutine.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv("VAULT_TOKEN", "s.not-a-real-token")
	v, err := NewVault(ctx, config.Vault{Address: "http://127.0.0.1:1", Auth: "token", Mount: "database"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Check(ctx); err == nil || !strings.Contains(err.Error(), "vault unreachable") || strings.Contains(err.Error(), "not-a-real-token") {
		t.Fatalf("Check = %v", err)
	}
	_, err = v.Mint(ctx, Request{DBRoles: []string{"r"}})
	wantMintError(t, err, "vault unreachable", "not-a-real-token")
}

func TestVaultConfigRoleOrder(t *testing.T) {
	base := "auth: {oidc: {issuer: https://idp.example}}\ntls: {require: false}\ncredentials:\n  provider: vault\n  vault:\n"
	if _, err := config.Parse([]byte(base + "    role_order: [a, b]\n")); err != nil {
		t.Fatalf("valid role_order refused: %v", err)
	}
	_, err := config.Parse([]byte(base + "    role_order: [a, a]\n"))
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Path != "credentials.vault.role_order[1]" {
		t.Fatalf("duplicate role_order: %v", err)
	}
	_, err = config.Parse([]byte(base + "    auth: approle\n    role_id: x\n"))
	if !errors.As(err, &ce) || ce.Path != "credentials.vault.role_id" {
		t.Fatalf("approle without secret_id: %v", err)
	}
}

// fakeVault answers sys/leases/renew with a scripted response (unit tests of
// the renewal decision; the real-Vault tests above cover the protocol).
func fakeVaultLease(t *testing.T, status int, body string) *vaultLease {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sys/leases/renew" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("VAULT_TOKEN", "t")
	cfg := vaultapi.DefaultConfig()
	cfg.Address, cfg.MaxRetries = srv.URL, 0
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := &Vault{log: zerolog.Nop(), client: c, now: time.Now}
	return &vaultLease{v: v, client: c, role: "r", leaseID: "database/creds/r/x", username: "v-x", password: "p",
		increment: 60, expiry: time.Now().Add(30 * time.Second), renewable: true}
}

func TestVaultRenewDecision(t *testing.T) {
	ctx := context.Background()
	l := fakeVaultLease(t, 200, `{"lease_id":"database/creds/r/x","lease_duration":60,"renewable":true}`)
	exp, err := l.Renew(ctx)
	if err != nil || exp.Before(time.Now().Add(55*time.Second)) {
		t.Fatalf("full renewal: %v %v", exp, err)
	}
	l = fakeVaultLease(t, 200, `{"lease_id":"database/creds/r/x","lease_duration":20,"renewable":true,"warnings":["TTL capped"]}`)
	exp, err = l.Renew(ctx)
	if !errors.Is(err, ErrNotRenewable) || !exp.Equal(l.Expiry()) || exp.After(time.Now().Add(21*time.Second)) {
		t.Fatalf("capped renewal: %v %v", exp, err)
	}
	if _, err := l.Renew(ctx); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("renew after final: %v", err)
	}
	l = fakeVaultLease(t, 400, `{"errors":["lease not found"]}`)
	if _, err := l.Renew(ctx); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("refused renewal: %v", err)
	}
	l = fakeVaultLease(t, 503, `{"errors":["Vault is sealed"]}`)
	before := l.Expiry()
	exp, err = l.Renew(ctx)
	if err == nil || errors.Is(err, ErrNotRenewable) || !strings.Contains(err.Error(), "sealed") || !exp.Equal(before) {
		t.Fatalf("sealed renewal: %v %v", exp, err)
	}
	l.renewable = false
	if _, err := l.Renew(ctx); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("non-renewable lease: %v", err)
	}
}

package credentials

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

const adminPW = "admin-pw-for-tests"

// nativeCluster starts PostgreSQL with the roles the native provider expects.
func nativeCluster(t *testing.T) *pgtest.Cluster {
	t.Helper()
	c := pgtest.StartT(t, pgtest.Options{})
	ctx := context.Background()
	if err := c.CreateDB(ctx, "vectors"); err != nil {
		t.Fatal(err)
	}
	err := c.Exec(ctx, "vectors",
		"CREATE ROLE pgwarden_admin WITH LOGIN CREATEROLE PASSWORD '"+adminPW+"'",
		"CREATE ROLE vector_reader NOLOGIN",
		"CREATE ROLE vector_writer NOLOGIN",
		"GRANT vector_reader, vector_writer TO pgwarden_admin WITH ADMIN OPTION",
		"CREATE TABLE documents (id int primary key, title text)",
		"INSERT INTO documents VALUES (1, 'one'), (2, 'two')",
		"GRANT SELECT ON documents TO vector_reader",
		"GRANT CREATE ON SCHEMA public TO vector_writer",
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newNative(t *testing.T, c *pgtest.Cluster, ttl time.Duration) *Native {
	t.Helper()
	n, err := NewNative(context.Background(), config.Native{
		AdminDSN: c.DSN("pgwarden_admin", adminPW, "vectors"), RolePrefix: "pgw_",
	}, ttl, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func mint(t *testing.T, n *Native, user string, roles ...string) Lease {
	t.Helper()
	l, err := n.Mint(context.Background(), Request{
		Principal: identity.Principal{User: user}, DBRoles: roles, Database: "vectors", SessionID: "s1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func roleExists(t *testing.T, c *pgtest.Cluster, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.SuperDSN("vectors"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

var nameRE = regexp.MustCompile(`^pgw_[a-z0-9_]+_[a-z2-7]{10}$`)

func TestNativeMintLoginRevoke(t *testing.T) {
	c := nativeCluster(t)
	n := newNative(t, c, 15*time.Minute)
	ctx := context.Background()
	odd := `"O'Brien"; DROP ROLE postgres; --` + strings.Repeat("ünïcödé-ß-名前", 8) + `\x@example.com`
	if len(odd) < 200 {
		odd += strings.Repeat("z", 200-len(odd))
	}
	for _, user := range []string{"alice@example.com", odd} {
		t.Run(user[:min(len(user), 20)], func(t *testing.T) {
			before := time.Now()
			l := mint(t, n, user, "vector_reader")
			name := l.Username()
			if len(name) > MaxRoleNameLen || !nameRE.MatchString(name) {
				t.Fatalf("role name %q (%d bytes) is not <= 63 bytes of [a-z0-9_]", name, len(name))
			}
			if user == "alice@example.com" && !strings.HasPrefix(name, "pgw_alice_example_com_") {
				t.Fatalf("role name %q does not carry the sanitized user", name)
			}
			if got := len(l.Password()); got != 43 {
				t.Fatalf("password length %d, want 43 (32 bytes base64url)", got)
			}
			if exp := l.Expiry(); exp.Before(before.Add(14*time.Minute)) || exp.After(before.Add(16*time.Minute)) {
				t.Fatalf("expiry %v not ~15m from now", exp)
			}

			super, err := pgx.Connect(ctx, c.SuperDSN("vectors"))
			if err != nil {
				t.Fatal(err)
			}
			defer super.Close(ctx)
			var (
				until          time.Time
				login, inherit bool
				member         bool
				stored         string
			)
			err = super.QueryRow(ctx, `SELECT rolvaliduntil, rolcanlogin, rolinherit, pg_has_role(oid, 'vector_reader', 'MEMBER'), rolpassword
				FROM pg_authid WHERE rolname = $1`, name).Scan(&until, &login, &inherit, &member, &stored)
			if err != nil {
				t.Fatalf("role %q not found: %v", name, err)
			}
			if !until.After(time.Now()) || !login || !inherit || !member {
				t.Fatalf("role attrs: until=%v login=%v inherit=%v member_of_reader=%v", until, login, inherit, member)
			}
			if !strings.HasPrefix(stored, fmt.Sprintf("SCRAM-SHA-256$%d:", MintedSCRAMIterations)) || strings.Contains(stored, l.Password()) {
				t.Fatalf("stored password is not a SCRAM verifier: %q", stored)
			}

			// Log in over TCP (scram-sha-256 in pg_hba) with the password.
			conn, err := pgx.Connect(ctx, c.DSN(name, l.Password(), "vectors"))
			if err != nil {
				t.Fatalf("login with minted password: %v", err)
			}
			var cnt int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM documents").Scan(&cnt); err != nil || cnt != 2 {
				t.Fatalf("reader query: %d %v", cnt, err)
			}
			if _, err := pgx.Connect(ctx, c.DSN(name, "wrong-"+l.Password(), "vectors")); err == nil {
				t.Fatal("wrong password accepted")
			}

			if err := l.Revoke(ctx); err != nil {
				t.Fatal(err)
			}
			if err := conn.Ping(ctx); err == nil {
				t.Fatal("session backend still alive after Revoke")
			}
			conn.Close(ctx)
			if roleExists(t, c, name) {
				t.Fatal("role still exists after Revoke")
			}
			if l.Password() != "" {
				t.Fatal("password not zeroed after Revoke")
			}
			if err := l.Revoke(ctx); err != nil {
				t.Fatalf("second Revoke: %v", err)
			}
			if _, err := l.Renew(ctx); !errors.Is(err, ErrNotRenewable) {
				t.Fatalf("Renew after Revoke: %v", err)
			}
		})
	}
}

func TestNativeRevokeRoleThatOwnsObjects(t *testing.T) {
	c := nativeCluster(t)
	n := newNative(t, c, 15*time.Minute)
	ctx := context.Background()
	l := mint(t, n, "bob@example.com", "vector_writer")
	conn, err := pgx.Connect(ctx, c.DSN(l.Username(), l.Password(), "vectors"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE bobs_notes (id int); INSERT INTO bobs_notes VALUES (7); GRANT SELECT ON bobs_notes TO vector_reader"); err != nil {
		t.Fatal(err)
	}
	// And a table in another database (found through pg_shdepend).
	if err := c.CreateDB(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "other", "GRANT CREATE ON SCHEMA public TO vector_writer"); err != nil {
		t.Fatal(err)
	}
	oc, err := pgx.Connect(ctx, c.DSN(l.Username(), l.Password(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Exec(ctx, "CREATE TABLE elsewhere (id int)"); err != nil {
		t.Fatal(err)
	}
	name := l.Username()
	if err := l.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	oc.Close(ctx)
	if roleExists(t, c, name) {
		t.Fatal("role that owned tables was not dropped")
	}
	other, err := pgx.Connect(ctx, c.SuperDSN("other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var otherOwner string
	if err := other.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'elsewhere'").Scan(&otherOwner); err != nil || otherOwner != "vector_writer" {
		t.Fatalf("table in the other database: owner %q, %v", otherOwner, err)
	}
	super, err := pgx.Connect(ctx, c.SuperDSN("vectors"))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	var owner string
	var v int
	if err := super.QueryRow(ctx, "SELECT tableowner, (SELECT id FROM bobs_notes) FROM pg_tables WHERE tablename = 'bobs_notes'").Scan(&owner, &v); err != nil {
		t.Fatal(err)
	}
	if owner != "vector_writer" || v != 7 {
		t.Fatalf("table kept with owner %q and row %d, want vector_writer and 7", owner, v)
	}
}

func TestNativeRenew(t *testing.T) {
	c := nativeCluster(t)
	n := newNative(t, c, time.Minute)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.SuperDSN("vectors"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	serverUntil := func(l Lease) time.Time {
		var until time.Time
		if err := conn.QueryRow(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", l.Username()).Scan(&until); err != nil {
			t.Fatal(err)
		}
		return until
	}

	l := mint(t, n, "carol@example.com")
	defer l.Revoke(ctx)
	first := l.Expiry()
	time.Sleep(30 * time.Millisecond)
	exp, err := l.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Sub(first) < 30*time.Millisecond || !exp.Equal(l.Expiry()) || !serverUntil(l).Equal(exp) {
		t.Fatalf("renewed expiry %v (server %v) not >= 30ms after %v", exp, serverUntil(l), first)
	}

	// Capped at mint + max lifetime: one renewal reaches the cap, the next is refused.
	n.SetMaxLifetime(time.Minute + 100*time.Millisecond)
	l2 := mint(t, n, "carol@example.com")
	defer l2.Revoke(ctx)
	minted := l2.Expiry().Add(-time.Minute)
	time.Sleep(200 * time.Millisecond)
	exp2, err := l2.Renew(ctx)
	if err != nil {
		t.Fatalf("renew to cap: %v", err)
	}
	if d := exp2.Sub(minted); d != time.Minute+100*time.Millisecond || !serverUntil(l2).Equal(exp2) {
		t.Fatalf("capped expiry is %v after mint, want 1m0.1s", d)
	}
	if _, err := l2.Renew(ctx); !errors.Is(err, ErrNotRenewable) {
		t.Fatalf("renew past max lifetime: %v", err)
	}
}

func TestNativeSweep(t *testing.T) {
	c := nativeCluster(t)
	ctx := context.Background()
	n := newNative(t, c, 15*time.Minute)
	live := mint(t, n, "dave@example.com", "vector_reader")
	expired := mint(t, n, "erin@example.com", "vector_reader")
	owner := mint(t, n, "frank@example.com", "vector_writer")
	oc, err := pgx.Connect(ctx, c.DSN(owner.Username(), owner.Password(), "vectors"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oc.Exec(ctx, "CREATE TABLE franks (id int)"); err != nil {
		t.Fatal(err)
	}
	oc.Close(ctx)
	past := "'2000-01-01 00:00:00Z'"
	err = c.Exec(ctx, "vectors",
		"ALTER ROLE "+quoteIdent(expired.Username())+" VALID UNTIL "+past,
		"ALTER ROLE "+quoteIdent(owner.Username())+" VALID UNTIL "+past,
		// Same prefix, expired, but not created by pgwarden_admin: must stay.
		"CREATE ROLE pgw_foreign_role LOGIN VALID UNTIL "+past,
		// Expired without the prefix: must stay.
		"CREATE ROLE other_expired LOGIN VALID UNTIL "+past,
	)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh provider sweeps at start (as after a crash).
	newNative(t, c, 15*time.Minute)
	for name, want := range map[string]bool{
		live.Username(): true, expired.Username(): false, owner.Username(): false,
		"pgw_foreign_role": true, "other_expired": true, "pgwarden_admin": true,
	} {
		if got := roleExists(t, c, name); got != want {
			t.Errorf("after sweep role %s exists=%v, want %v", name, got, want)
		}
	}
	if got, err := n.Sweep(ctx); err != nil || got != 0 {
		t.Fatalf("second sweep: %d %v", got, err)
	}
	if err := live.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	if err := expired.Revoke(ctx); err != nil {
		t.Fatalf("revoking an already-swept role: %v", err)
	}
}

func TestNativeMintErrors(t *testing.T) {
	c := nativeCluster(t)
	n := newNative(t, c, 15*time.Minute)
	_, err := n.Mint(context.Background(), Request{Principal: identity.Principal{User: "x@example.com"}, DBRoles: []string{"no_such_role"}})
	var me *MintError
	if !errors.As(err, &me) || !strings.HasPrefix(me.Public, "native: could not create session role") {
		t.Fatalf("mint with unknown db role: %v", err)
	}
	// Bad admin password: error without the password.
	_, err = NewNative(context.Background(), config.Native{AdminDSN: c.DSN("pgwarden_admin", "s3cr3t-wrong", "vectors"), RolePrefix: "pgw_"}, time.Minute, zerolog.Nop())
	if err == nil || strings.Contains(err.Error(), "s3cr3t-wrong") {
		t.Fatalf("bad admin password: %v", err)
	}
	// A role without CREATEROLE is refused.
	if err := c.Exec(context.Background(), "vectors", "CREATE ROLE weak LOGIN PASSWORD 'weakpw'"); err != nil {
		t.Fatal(err)
	}
	_, err = NewNative(context.Background(), config.Native{AdminDSN: c.DSN("weak", "weakpw", "vectors"), RolePrefix: "pgw_"}, time.Minute, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "CREATEROLE") {
		t.Fatalf("admin without CREATEROLE: %v", err)
	}
	if err := n.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestRoleName(t *testing.T) {
	cases := map[string]string{
		"alice@example.com":         "pgw_alice_example_com_",
		"Bob.Smith+tag@Example.ORG": "pgw_bob_smith_tag_example_org_",
		"__weird__@@":               "pgw_weird_",
		"名前":                        "pgw_user_",
		"":                          "pgw_user_",
	}
	for in, want := range cases {
		got, err := RoleName("pgw_", in)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, want) || len(got) != len(want)+suffixLen || !nameRE.MatchString(got) {
			t.Errorf("RoleName(%q) = %q, want %q + 10 random chars", in, got, want)
		}
	}
	a, _ := RoleName("pgw_", "same@example.com")
	b, _ := RoleName("pgw_", "same@example.com")
	if a == b {
		t.Fatal("two names for the same user are equal: suffix not random")
	}
	long, _ := RoleName("abcdefghijklmnop", strings.Repeat("x", 300))
	if len(long) != MaxRoleNameLen {
		t.Fatalf("long name has %d bytes, want exactly 63", len(long))
	}
}

func FuzzRoleName(f *testing.F) {
	for _, s := range []string{"alice@example.com", "", "'\"; DROP", strings.Repeat("é", 100), "a\x00b"} {
		f.Add("pgw_", s)
	}
	f.Fuzz(func(t *testing.T, prefix, user string) {
		if !prefixRE.MatchString(prefix) {
			prefix = "pgw_"
		}
		got, err := RoleName(prefix, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > MaxRoleNameLen || !strings.HasPrefix(got, prefix) {
			t.Fatalf("RoleName(%q, %q) = %q", prefix, user, got)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				t.Fatalf("RoleName(%q) = %q has byte %q", user, got, c)
			}
		}
	})
}

func TestQuoteLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"abc":      "'abc'",
		"O'Brien":  "'O''Brien'",
		`a\'b`:     `E'a\\''b'`,
		"nul\x00x": "'nulx'",
	} {
		if got := quoteLiteral(in); got != want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

// RFC 7677 section 3: user "user", password "pencil".
func TestSCRAMRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	stored, server, err := scramKeys("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	authMessage := "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	if got := base64.StdEncoding.EncodeToString(hmacSHA256(server, authMessage)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server signature %s", got)
	}
	// ClientProof = ClientKey XOR ClientSignature; check StoredKey = H(ClientKey).
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := hmacSHA256(stored, authMessage)
	ck := make([]byte, len(proof))
	for i := range proof {
		ck[i] = proof[i] ^ sig[i]
	}
	if h := sha256.Sum256(ck); !hmac.Equal(h[:], stored) {
		t.Fatal("stored key does not match the RFC's client proof")
	}
	v, err := scramVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$") {
		t.Fatalf("verifier %s", v)
	}
	if _, err := scramVerifier("tab\there", salt, 4096); err == nil {
		t.Fatal("control character accepted")
	}
}

// The verifier PostgreSQL computes for a password equals ours for the same salt,
// and a role created with our verifier can log in.
func TestSCRAMMatchesPostgreSQL(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, "postgres", "CREATE ROLE pgv LOGIN PASSWORD 'correct horse battery staple'"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var theirs string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'pgv'").Scan(&theirs); err != nil {
		t.Fatal(err)
	}
	// SCRAM-SHA-256$4096:<salt>$<stored>:<server>
	parts := strings.SplitN(strings.TrimPrefix(theirs, "SCRAM-SHA-256$4096:"), "$", 2)
	salt, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("parse %q: %v", theirs, err)
	}
	ours, err := scramVerifier("correct horse battery staple", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if ours != theirs {
		t.Fatalf("verifier mismatch:\n ours   %s\n theirs %s", ours, theirs)
	}
	v, err := SCRAMSHA256Verifier("Zm9vYmFy-_xyz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE pgv2 LOGIN PASSWORD "+quoteLiteral(v)); err != nil {
		t.Fatal(err)
	}
	c2, err := pgx.Connect(ctx, c.DSN("pgv2", "Zm9vYmFy-_xyz", "postgres"))
	if err != nil {
		t.Fatalf("login with our verifier: %v", err)
	}
	c2.Close(ctx)
	if _, err := pgx.Connect(ctx, c.DSN("pgv2", "Zm9vYmFy-_xyZ", "postgres")); err == nil {
		t.Fatal("wrong password accepted")
	}
}

func BenchmarkRoleName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RoleName("pgw_", "alice.smith@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSCRAMVerifier(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SCRAMSHA256Verifier("Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNativeMint measures minting alone (the part on a client's
// connect path) against a real PostgreSQL; the roles are revoked afterwards.
func BenchmarkNativeMint(b *testing.B) {
	n := benchNative(b)
	ctx := context.Background()
	req := Request{Principal: identity.Principal{User: "alice@example.com"}, DBRoles: []string{"vector_reader"}}
	var leases []Lease
	b.ReportAllocs()
	for b.Loop() {
		l, err := n.Mint(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		leases = append(leases, l)
	}
	b.StopTimer()
	for _, l := range leases {
		if err := l.Revoke(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func benchNative(b *testing.B) *Native {
	c := pgtest.StartT(b, pgtest.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, "postgres", "CREATE ROLE pgwarden_admin WITH LOGIN CREATEROLE PASSWORD '"+adminPW+"'", "CREATE ROLE vector_reader"); err != nil {
		b.Fatal(err)
	}
	n, err := NewNative(ctx, config.Native{AdminDSN: c.DSN("pgwarden_admin", adminPW, "postgres"), RolePrefix: "pgw_"}, 15*time.Minute, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}

// BenchmarkNativeMintRevoke measures a full session credential round trip
// against a real PostgreSQL.
func BenchmarkNativeMintRevoke(b *testing.B) {
	n := benchNative(b)
	ctx := context.Background()
	req := Request{Principal: identity.Principal{User: "alice@example.com"}, DBRoles: []string{"vector_reader"}}
	b.ReportAllocs()
	for b.Loop() {
		l, err := n.Mint(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Revoke(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// Close stops the background sweeper and the pool: no goroutine outlives it.
func TestNativeCloseLeaksNothing(t *testing.T) {
	c := nativeCluster(t)
	opts := goleak.IgnoreCurrent()
	n, err := NewNative(context.Background(), config.Native{AdminDSN: c.DSN("pgwarden_admin", adminPW, "vectors"), RolePrefix: "pgw_"}, time.Minute, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	l := mint(t, n, "gina@example.com", "vector_reader")
	if err := l.Revoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_ = n.Close() // idempotent
	goleak.VerifyNone(t, opts)
}

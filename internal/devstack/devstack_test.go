package devstack

import (
	"context"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func startStack(t *testing.T, dir string, port int) *Stack {
	t.Helper()
	if err := pgtest.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DataDir: dir, PGPort: port, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStartSeedSearchRestart(t *testing.T) {
	dir := t.TempDir()
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, dir, port)
	defer s.Stop()
	ctx := context.Background()
	if s.Port != port || s.PG.Port != port {
		t.Fatalf("port %d, want %d", s.Port, port)
	}
	st, err := os.Stat(filepath.Join(dir, "admin-password"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password: %v %v", st, err)
	}

	super := connect(t, s.PG.SuperDSN(Database))
	var nd, nc int
	if err := super.QueryRow(ctx, "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM customers)").Scan(&nd, &nc); err != nil {
		t.Fatal(err)
	}
	if nd != NumDocuments || nc != NumCustomers {
		t.Fatalf("seeded %d documents, %d customers", nd, nc)
	}
	var indexdef, owner string
	if err := super.QueryRow(ctx, "SELECT indexdef, (SELECT tableowner FROM pg_tables WHERE tablename = 'documents') FROM pg_indexes WHERE indexname = 'documents_embedding_hnsw'").Scan(&indexdef, &owner); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(indexdef, "hnsw") || !strings.Contains(indexdef, "vector_l2_ops") || owner != AdminDBRole {
		t.Fatalf("index %q, owner %q", indexdef, owner)
	}
	var keys []string
	if err := super.QueryRow(ctx, "SELECT array_agg(k ORDER BY k) FROM (SELECT jsonb_object_keys(metadata) k FROM documents WHERE id = 1) s").Scan(&keys); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(keys, []string{"author", "email", "name", "phone", "source", "tags"}) {
		t.Fatalf("metadata keys %v", keys)
	}

	// kNN through the HNSW index: the topic's documents come first.
	if _, err := super.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	var plan string
	q := "SELECT metadata->'tags'->>0 FROM documents ORDER BY embedding <-> $1::vector LIMIT 10"
	for topic, text := range map[string]string{
		"vector_search": "approximate nearest neighbor search with an hnsw index over embeddings",
		"cooking":       "simmer the garlic and tomato sauce, then bake the pasta",
		"medicine":      "the patient had a fever and the nurse gave an antibiotic dose",
	} {
		vec := VectorLiteral(Embed(text))
		prows, err := super.Query(ctx, "EXPLAIN "+q, vec)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(prows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan = strings.Join(lines, "\n")
		rows, err := super.Query(ctx, q, vec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 {
			t.Fatalf("%s: %d rows", topic, len(got))
		}
		for i, g := range got {
			if g != topic {
				t.Fatalf("%s: result %d has topic %q (all: %v)", topic, i, g, got)
			}
		}
	}
	if !strings.Contains(plan, "documents_embedding_hnsw") {
		t.Fatalf("kNN does not use the HNSW index: %s", plan)
	}

	// The admin DSN drives the native provider: a reader can read, not write;
	// a writer can insert (sequence usage granted).
	n, err := credentials.NewNative(ctx, config.Native{AdminDSN: s.AdminDSN, RolePrefix: "pgw_"}, 15*time.Minute, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for role, canWrite := range map[string]bool{ReaderRole: false, WriterRole: true} {
		l, err := n.Mint(ctx, credentials.Request{Principal: identity.Principal{User: "alice@example.com"}, DBRoles: []string{role}})
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, s.PG.DSN(l.Username(), l.Password(), Database))
		var email string
		if err := c.QueryRow(ctx, "SELECT email FROM customers WHERE id = 1").Scan(&email); err != nil || !strings.Contains(email, "@example.") {
			t.Fatalf("%s: read customers: %q %v", role, email, err)
		}
		_, err = c.Exec(ctx, "INSERT INTO documents (title, body) VALUES ('t', 'b')")
		if (err == nil) != canWrite {
			t.Fatalf("%s: insert err=%v, want writable=%v", role, err, canWrite)
		}
		if err := l.Revoke(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := super.Exec(ctx, "INSERT INTO documents (title, body) VALUES ('marker', 'kept across restarts')"); err != nil {
		t.Fatal(err)
	}
	if err := super.QueryRow(ctx, "SELECT count(*) FROM documents").Scan(&nd); err != nil {
		t.Fatal(err)
	}
	pw, _ := os.ReadFile(filepath.Join(dir, "admin-password"))
	super.Close(ctx)
	n.Close()
	s.Stop()

	// Second run on the same directory: same data, same password, no reseed.
	s2 := startStack(t, dir, port)
	defer s2.Stop()
	if s2.AdminDSN != s.AdminDSN {
		t.Fatalf("admin DSN changed across runs")
	}
	pw2, _ := os.ReadFile(filepath.Join(dir, "admin-password"))
	if string(pw) != string(pw2) {
		t.Fatal("admin password changed across runs")
	}
	admin := connect(t, s2.AdminDSN)
	var nd2 int
	var marker bool
	if err := admin.QueryRow(ctx, "SELECT count(*), bool_or(title = 'marker') FROM documents").Scan(&nd2, &marker); err != nil {
		t.Fatal(err)
	}
	if nd2 != nd || !marker {
		t.Fatalf("after restart %d documents (want %d), marker=%v", nd2, nd, marker)
	}
}

func TestStartRefusesRunningDir(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir, 0)
	defer s.Stop()
	if s.Port == 0 {
		t.Fatal("no port")
	}
	_, err := Start(context.Background(), Options{DataDir: dir, Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start on a live dir: %v", err)
	}
	// The first stack still works.
	c := connect(t, s.AdminDSN)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestResolvePort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := l.Addr().(*net.TCPAddr).Port
	if got := resolvePort(busy); got != 0 {
		t.Fatalf("busy port %d resolved to %d", busy, got)
	}
	l.Close()
	if got := resolvePort(busy); got != busy {
		t.Fatalf("free port %d resolved to %d", busy, got)
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

func TestEmbed(t *testing.T) {
	a := Embed("HNSW index for nearest-neighbor vector search")
	if len(a) != Dim || math.Abs(norm(a)-1) > 1e-5 {
		t.Fatalf("len %d norm %v", len(a), norm(a))
	}
	if !reflect.DeepEqual(a, Embed("hnsw INDEX for nearest neighbor, vector search!")) {
		t.Fatal("not deterministic / not case and punctuation insensitive")
	}
	near := Embed("vector search with an hnsw index")
	far := Embed("bake the bread in a hot oven")
	if dist(a, near) >= dist(a, far) {
		t.Fatalf("similar text at %v, unrelated at %v", dist(a, near), dist(a, far))
	}
	if n := norm(Embed(" ,.; the and ")); n != 0 {
		t.Fatalf("text without words has norm %v", n)
	}
	if got := VectorLiteral([]float32{1, -0.5, 0.25}); got != "[1,-0.5,0.25]" {
		t.Fatalf("VectorLiteral = %s", got)
	}
}

func TestDataDeterministicAndSynthetic(t *testing.T) {
	d1, d2 := Documents(), Documents()
	if !reflect.DeepEqual(d1, d2) || len(d1) != NumDocuments {
		t.Fatal("documents not deterministic")
	}
	c1, c2 := Customers(), Customers()
	if !reflect.DeepEqual(c1, c2) || len(c1) != NumCustomers {
		t.Fatal("customers not deterministic")
	}
	for _, c := range c1 {
		if !strings.Contains(c.Email, "@example.") || !strings.Contains(c.Phone, "-555-01") {
			t.Fatalf("non-synthetic contact data: %+v", c)
		}
		if !luhnValid(strings.ReplaceAll(c.CreditCard, " ", "")) {
			t.Fatalf("card %q fails Luhn", c.CreditCard)
		}
		if a := c.SSN[:3]; a == "000" || a == "666" || a[0] == '9' || len(c.SSN) != 11 {
			t.Fatalf("ssn %q", c.SSN)
		}
	}
}

func luhnValid(s string) bool {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-1-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func FuzzEmbed(f *testing.F) {
	for _, s := range []string{"", "hello world", "ünïcödé 名前 text", "\xff\xfe bad utf8", strings.Repeat("a ", 1000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := Embed(s)
		if len(v) != Dim {
			t.Fatalf("len %d", len(v))
		}
		n := norm(v)
		if math.IsNaN(n) || (n != 0 && math.Abs(n-1) > 1e-4) {
			t.Fatalf("norm %v for %q", n, s)
		}
	})
}

func BenchmarkEmbed(b *testing.B) {
	text := Documents()[0].Body
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		Embed(text)
	}
}

package integration

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const knnSQL = "SELECT id FROM documents ORDER BY embedding <-> $1::vector LIMIT 5"

func ids(t *testing.T, rows pgx.Rows) []int64 {
	t.Helper()
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The headline: psql with a token instead of a password, a kNN search
// returns exactly what PostgreSQL returns directly.
func TestPsqlKNNThroughGateway(t *testing.T) {
	w := startGateway(t, nil)
	ctx := context.Background()
	vec := queryVector("vector databases and approximate nearest neighbour search")
	want := ids(t, must(direct(t).Query(ctx, knnSQL, vec)))
	if len(want) != 5 {
		t.Fatalf("direct returned %d ids", len(want))
	}
	user := "alice@example.com"
	sql := strings.Replace(knnSQL, "$1", "'"+vec+"'", 1)
	out, stderr, err := w.psql(t, user, w.Issuer.token(t, user, "analyst"), "-c", sql)
	if err != nil {
		t.Fatalf("psql: %v: %s", err, stderr)
	}
	got := strings.Fields(out)
	if len(got) != len(want) {
		t.Fatalf("psql returned %q, want ids %v", out, want)
	}
	for i := range want {
		if got[i] != fmt.Sprint(want[i]) {
			t.Fatalf("psql ids %v, direct %v", got, want)
		}
	}
}

func TestPgxSimpleAndExtended(t *testing.T) {
	w := startGateway(t, nil)
	ctx := context.Background()
	vec := queryVector("customer support tickets about billing")
	want := ids(t, must(direct(t).Query(ctx, knnSQL, vec)))
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			conn := w.connectMode(t, mode, "alice@example.com", "analyst")
			for i := 0; i < 3; i++ { // repeated: prepared-statement caches
				got := ids(t, must(conn.Query(ctx, knnSQL, vec)))
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("run %d: got %v, want %v", i, got, want)
				}
			}
			// a pipelined batch
			b := &pgx.Batch{}
			b.Queue("SELECT count(*) FROM documents")
			b.Queue(knnSQL, vec)
			br := conn.SendBatch(ctx, b)
			var n int64
			if err := br.QueryRow().Scan(&n); err != nil || n == 0 {
				t.Fatalf("batch count = %d, %v", n, err)
			}
			got := ids(t, must(br.Query()))
			if err := br.Close(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("batch: got %v, want %v", got, want)
			}
		})
	}
}

func TestCopyBothDirections(t *testing.T) {
	w := startGateway(t, nil)
	ctx := context.Background()
	d := direct(t)
	must(d.Exec(ctx, "CREATE TABLE IF NOT EXISTS copy_it (id int, note text, embedding vector(3))"))
	must(d.Exec(ctx, "GRANT SELECT, INSERT ON copy_it TO vector_writer, vector_admin"))
	must(d.Exec(ctx, "TRUNCATE copy_it"))
	conn := w.connect(t, "ingest-bot@example.com", "ingest")
	data := "1\tone\t[1,2,3]\n2\ttwo\\ttab\t[4,5,6]\n3\t\\N\t[7,8,9]\n"
	tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(data), "COPY copy_it (id, note, embedding) FROM STDIN")
	if err != nil || tag.RowsAffected() != 3 {
		t.Fatalf("COPY FROM STDIN through pgwarden: %v err=%v", tag, err)
	}
	var cnt int
	must0(t, d.QueryRow(ctx, "SELECT count(*) FROM copy_it WHERE embedding IS NOT NULL").Scan(&cnt))
	if cnt != 3 {
		t.Fatalf("upstream has %d rows, want 3", cnt)
	}
	// COPY TO STDOUT through the gateway (export is allowed for dba)
	dba := w.connect(t, "dba-1@example.com", "dba")
	var buf strings.Builder
	tag, err = dba.PgConn().CopyTo(ctx, &buf, "COPY (SELECT id, note FROM copy_it ORDER BY id) TO STDOUT")
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 3 || buf.String() != "1\tone\n2\ttwo\\ttab\n3\t\\N\n" {
		t.Fatalf("COPY TO: %q (%s)", buf.String(), tag)
	}
}

func TestCancelRequest(t *testing.T) {
	w := startGateway(t, nil)
	conn := w.connect(t, "alice@example.com", "analyst")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
	el := time.Since(start)
	if err == nil {
		t.Fatal("pg_sleep(30) was not cancelled")
	}
	if el > 10*time.Second {
		t.Fatalf("cancel took %v", el)
	}
	// pgx sends a CancelRequest on context expiry; PostgreSQL answers 57014.
	if sqlstate(err) != "57014" && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want 57014, got %v", err)
	}
}

// A raw cancel: a second connection sends CancelRequest with the key pgwarden
// handed out, and the first connection's query fails with 57014.
func TestCancelRequestRaw(t *testing.T) {
	w := startGateway(t, nil)
	conn := w.connect(t, "alice@example.com", "analyst")
	pid, key := conn.PgConn().PID(), conn.PgConn().SecretKey()
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), "SELECT pg_sleep(30)")
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	rawCancel(t, w.Addr, pid, key)
	select {
	case err := <-errc:
		if sqlstate(err) != "57014" {
			t.Fatalf("want 57014, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not reach the upstream backend")
	}
}

func TestBadTokensRefused(t *testing.T) {
	w := startGateway(t, nil)
	is := w.Issuer
	user := "alice@example.com"
	expired := is.claims(user, "analyst")
	expired["exp"] = time.Now().Add(-10 * time.Minute).Unix()
	expired["iat"] = time.Now().Add(-time.Hour).Unix()
	expired["nbf"] = time.Now().Add(-time.Hour).Unix()
	wrongIss := is.claims(user, "analyst")
	wrongIss["iss"] = "https://evil.example.com"
	wrongAud := is.claims(user, "analyst")
	wrongAud["aud"] = "someone-else"
	noExp := is.claims(user, "analyst")
	delete(noExp, "exp")
	future := is.claims(user, "analyst")
	future["nbf"] = time.Now().Add(time.Hour).Unix()
	good := is.token(t, user, "analyst")
	cases := map[string]string{
		"empty":          "",
		"garbage":        "not-a-jwt",
		"expired":        is.sign(t, expired, nil, ""),
		"wrong issuer":   is.sign(t, wrongIss, nil, ""),
		"wrong audience": is.sign(t, wrongAud, nil, ""),
		"no exp":         is.sign(t, noExp, nil, ""),
		"future nbf":     is.sign(t, future, nil, ""),
		"unknown key":    is.sign(t, is.claims(user, "analyst"), is.other, "other-key"),
		"alg none":       unsigned(t, is.claims(user, "analyst")),
		"tampered":       tamper(t, good, is.claims(user, "dba")),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := pgx.ConnectConfig(context.Background(), w.connConfig(t, user, tok))
			if sqlstate(err) != "28P01" {
				t.Fatalf("want 28P01, got %v", err)
			}
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Fatal("the error echoes the token")
			}
			if !strings.Contains(err.Error(), "pgwarden: ") {
				t.Fatalf("message does not start with pgwarden: %v", err)
			}
		})
	}
	t.Run("user mismatch", func(t *testing.T) {
		_, err := pgx.ConnectConfig(context.Background(), w.connConfig(t, "mallory@example.com", good))
		if sqlstate(err) != "28P01" {
			t.Fatalf("want 28P01, got %v", err)
		}
	})
	// The gateway still serves a good client.
	conn := w.connectWith(t, w.connConfig(t, user, good))
	var one int
	must0(t, conn.QueryRow(context.Background(), "SELECT 1").Scan(&one))
}

func TestTLSRequired(t *testing.T) {
	w := startGateway(t, nil)
	cc := w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst"))
	cc.TLSConfig = nil
	_, err := pgx.ConnectConfig(context.Background(), cc)
	if sqlstate(err) != "28000" {
		t.Fatalf("plaintext client: want 28000, got %v", err)
	}
}

// The minted role exists while the session lives, with a future VALID
// UNTIL, and is gone soon after; the token is no password upstream.
func TestMintedRoleLifecycle(t *testing.T) {
	w := startGateway(t, nil)
	ctx := context.Background()
	d := direct(t)
	tok := w.Issuer.token(t, "carol@example.com", "analyst")
	conn := w.connectWith(t, w.connConfig(t, "carol@example.com", tok))
	var role string
	must0(t, conn.QueryRow(ctx, "SELECT current_user").Scan(&role))
	if !strings.HasPrefix(role, "pgw_carol") {
		t.Fatalf("session runs as %q, want a pgw_carol… role", role)
	}
	var until time.Time
	must0(t, d.QueryRow(ctx, "SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", role).Scan(&until))
	if !until.After(time.Now()) {
		t.Fatalf("VALID UNTIL %v is not in the future", until)
	}
	// the token is not a database password
	_, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d dbname=vectors user=%s password=%s sslmode=disable", upstream.pg.Host, upstream.pg.Port, role, tok))
	if err == nil {
		t.Fatal("the OIDC token works as a password directly against PostgreSQL")
	}
	conn.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		must0(t, d.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n))
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("role %s still exists 10s after the session ended", role)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rawTLS opens a TLS connection to the gateway and completes the startup
// with a valid token, returning the raw connection in ReadyForQuery state.
func rawSession(t *testing.T, w *gw) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", w.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}
	c.Write(msg)
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest answer %q %v", b, err)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	user := "alice@example.com"
	var sm []byte
	sm = binary.BigEndian.AppendUint32(sm, 0)
	sm = binary.BigEndian.AppendUint32(sm, 196608)
	for _, kv := range []string{"user", user, "database", "vectors"} {
		sm = append(append(sm, kv...), 0)
	}
	sm = append(sm, 0)
	binary.BigEndian.PutUint32(sm, uint32(len(sm)))
	tc.Write(sm)
	readMsg(t, tc) // AuthenticationCleartextPassword
	tok := w.Issuer.token(t, user, "analyst")
	pw := append([]byte{'p', 0, 0, 0, 0}, append([]byte(tok), 0)...)
	binary.BigEndian.PutUint32(pw[1:], uint32(len(pw)-1))
	tc.Write(pw)
	for {
		typ, _ := readMsg(t, tc)
		if typ == 'Z' {
			return tc
		}
		if typ == 'E' {
			t.Fatal("startup refused")
		}
	}
}

func readMsg(t *testing.T, c net.Conn) (byte, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	h := make([]byte, 5)
	if _, err := io.ReadFull(c, h); err != nil {
		t.Fatalf("read: %v", err)
	}
	n := int(binary.BigEndian.Uint32(h[1:])) - 4
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return h[0], body
}

// errorCode extracts the SQLSTATE field of an ErrorResponse body.
func errorCode(body []byte) string {
	for len(body) > 1 {
		f := body[0]
		end := strings.IndexByte(string(body[1:]), 0)
		if end < 0 {
			return ""
		}
		if f == 'C' {
			return string(body[1 : 1+end])
		}
		body = body[2+end:]
	}
	return ""
}

func TestBadInput(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Limits.MaxMessageBytes = 1 << 20 })
	ok := func() {
		t.Helper()
		conn := w.connect(t, "alice@example.com", "analyst")
		var one int
		must0(t, conn.QueryRow(context.Background(), "SELECT 1").Scan(&one))
	}
	t.Run("oversized message", func(t *testing.T) {
		c := rawSession(t, w)
		defer c.Close()
		c.Write([]byte{'Q', 0x7f, 0xff, 0xff, 0xff}) // claims 2 GiB
		typ, body := readMsg(t, c)
		if typ != 'E' || errorCode(body) != "08P01" {
			t.Fatalf("got %q %s, want 08P01", typ, errorCode(body))
		}
		ok()
	})
	t.Run("length below 4", func(t *testing.T) {
		c := rawSession(t, w)
		defer c.Close()
		c.Write([]byte{'Q', 0, 0, 0, 2})
		typ, body := readMsg(t, c)
		if typ != 'E' || errorCode(body) != "08P01" {
			t.Fatalf("got %q %s, want 08P01", typ, errorCode(body))
		}
		ok()
	})
	t.Run("garbage startup", func(t *testing.T) {
		c, err := net.Dial("tcp", w.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8})
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		// PostgreSQL answers an unknown protocol version with 0A000; pgwarden does the same.
		if len(b) > 0 && b[0] == 'E' && !strings.Contains(string(b), "08P01") && !strings.Contains(string(b), "0A000") {
			t.Fatalf("garbage startup answered %q", b)
		}
		ok()
	})
	t.Run("vanishing client", func(t *testing.T) {
		c := rawSession(t, w)
		c.Write([]byte{'Q', 0, 0, 0, 100, 'S', 'E'}) // half a message
		c.Close()
		ok()
	})
	t.Run("replication refused", func(t *testing.T) {
		cc := w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst"))
		cc.RuntimeParams["replication"] = "database"
		_, err := pgx.ConnectConfig(context.Background(), cc)
		if sqlstate(err) != "0A000" {
			t.Fatalf("want 0A000, got %v", err)
		}
		ok()
	})
	t.Run("database not allowed", func(t *testing.T) {
		cc := w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst"))
		cc.Database = "postgres"
		_, err := pgx.ConnectConfig(context.Background(), cc)
		if sqlstate(err) != "28000" {
			t.Fatalf("want 28000, got %v", err)
		}
		ok()
	})
}

func TestMaxConnections(t *testing.T) {
	w := startGateway(t, func(c *pgwardenConfig) { c.Limits.MaxConnections = 2 })
	w.connect(t, "alice@example.com", "analyst")
	w.connect(t, "alice@example.com", "analyst")
	_, err := pgx.ConnectConfig(context.Background(), w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst")))
	if sqlstate(err) != "53300" {
		t.Fatalf("third connection: want 53300, got %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must0(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

package pgwire

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/identity"
)

func connectErr(t *testing.T, dsn string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		conn.Close(ctx)
		return nil
	}
	return err
}

func pgErr(t *testing.T, err error) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want a PostgreSQL error, got %v", err)
	}
	return pe
}

// stillServes proves the gateway handles a normal session.
func stillServes(t *testing.T, g *gateway, extra string) {
	t.Helper()
	conn := g.connect(t, "survivor", extra)
	var n int
	if err := conn.QueryRow(tctx(t), "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("gateway no longer serves: %v", err)
	}
	conn.Close(context.Background())
}

func TestTLS(t *testing.T) {
	c := needPG(t)
	tlsCfg, err := SelfSignedTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, c, func(cfg *Config) { cfg.TLS = tlsCfg; cfg.RequireTLS = true })
	ctx := tctx(t)
	dsn := strings.Replace(g.dsn("grace", "good-grace", ""), "sslmode=disable", "sslmode=require", 1)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("client connection is %T, want *tls.Conn", conn.PgConn().Conn())
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatal(err)
	}
	conn.Close(ctx)

	pe := pgErr(t, connectErr(t, g.dsn("grace", "good-grace", "")))
	if pe.Code != "28000" || !strings.HasPrefix(pe.Message, "pgwarden: ") {
		t.Fatalf("non-TLS: %s %s", pe.Code, pe.Message)
	}
	// A second SSLRequest inside TLS is refused.
	raw, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	writeSSLRequest(t, raw)
	var b [1]byte
	if _, err := io.ReadFull(raw, b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest answer %q %v", b[0], err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	writeSSLRequest(t, tc)
	if e := readError(t, tc); e.Code != "08P01" {
		t.Fatalf("second SSLRequest: %+v", e)
	}
}

func writeSSLRequest(t *testing.T, w io.Writer) {
	t.Helper()
	b, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readError reads messages until an ErrorResponse.
func readError(t *testing.T, r io.Reader) *pgproto3.ErrorResponse {
	t.Helper()
	f := pgproto3.NewFrontend(r, io.Discard)
	for range 20 {
		m, err := f.Receive()
		if err != nil {
			t.Fatalf("no ErrorResponse: %v", err)
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			c := *e
			return &c
		}
	}
	t.Fatal("no ErrorResponse in 20 messages")
	return nil
}

func TestBadTokens(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	for _, tc := range []struct {
		token, msg string
		reason     identity.Reason
	}{
		{"bogus", "pgwarden: invalid token", identity.ReasonSignature},
		{"expired", "pgwarden: token expired", identity.ReasonExpired},
		{"good-someoneelse", "pgwarden: user does not match token", identity.ReasonUserMismatch},
	} {
		pe := pgErr(t, connectErr(t, g.dsn("heidi", tc.token, "")))
		if pe.Code != "28P01" || pe.Message != tc.msg || pe.Severity != "FATAL" {
			t.Errorf("token %q: %s %s %s", tc.token, pe.Severity, pe.Code, pe.Message)
		}
		if v := value(t, g.srv.m.authFail.WithLabelValues(string(tc.reason))); v != 1 {
			t.Errorf("auth failures{%s} = %v", tc.reason, v)
		}
	}
	if g.prov.minted.Load() != 0 {
		t.Fatalf("a refused token minted %d credentials", g.prov.minted.Load())
	}
	stillServes(t, g, "")
}

func TestMaxConnections(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, func(cfg *Config) { cfg.MaxConnections = 1 })
	conn := g.connect(t, "ivan", "")
	pe := pgErr(t, connectErr(t, g.dsn("ivan", "good-ivan", "")))
	if pe.Code != "53300" || pe.Message != "pgwarden: too many connections" {
		t.Fatalf("%s %s", pe.Code, pe.Message)
	}
	// Cancel requests still work at the limit.
	go func() { time.Sleep(300 * time.Millisecond); _ = conn.PgConn().CancelRequest(context.Background()) }()
	if _, err := conn.Exec(tctx(t), "SELECT pg_sleep(20)"); pgCode(err) != "57014" {
		t.Fatalf("cancel at the limit: %v", err)
	}
	conn.Close(context.Background())
	eventually(t, 5*time.Second, "slot released", func() bool { return g.srv.ActiveSessions() == 0 })
	stillServes(t, g, "")
}

func TestOversizedMessage(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, func(cfg *Config) { cfg.MaxMessageBytes = 4096 })
	conn := g.connect(t, "judy", "")
	_, err := conn.Exec(tctx(t), "SELECT '"+strings.Repeat("x", 5000)+"'")
	pe := pgErr(t, err)
	if pe.Code != "08P01" || pe.Message != "pgwarden: message too large" {
		t.Fatalf("%s %s", pe.Code, pe.Message)
	}
	stillServes(t, g, "")
	eventually(t, 5*time.Second, "lease revoked", func() bool { return g.prov.liveCount() == 0 })
}

func rawStartup(t *testing.T, addr string, pkt []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func startupBytes(params map[string]string) []byte {
	b, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params}).Encode(nil)
	return b
}

func TestStartupRefusals(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, func(cfg *Config) { cfg.Targets[0].Databases = []string{"vectors"} })
	be32 := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		code string
	}{
		{"length too small", be32(3), "08P01"},
		{"length too large", be32(1 << 30), "08P01"},
		{"unknown protocol", be32(8, 2<<16), "0A000"},
		{"unterminated params", append(be32(13, 3<<16), 'u', 's', 'e', 'r', 0), "08P01"},
		{"replication", startupBytes(map[string]string{"user": "a", "replication": "database"}), "0A000"},
		{"no user", startupBytes(map[string]string{"database": "vectors"}), "08P01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r := rawStartup(t, g.addr, tc.pkt)
			e := readError(t, r)
			if e.Code != tc.code || e.Severity != "FATAL" || !strings.HasPrefix(e.Message, "pgwarden: ") {
				t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
			}
		})
	}
	t.Run("GSSENCRequest", func(t *testing.T) {
		_, r := rawStartup(t, g.addr, be32(8, gssEncRequestCode))
		b, err := r.ReadByte()
		if err != nil || b != 'N' {
			t.Fatalf("GSSENCRequest answer %q %v", b, err)
		}
	})
	t.Run("SSLRequest without TLS", func(t *testing.T) {
		_, r := rawStartup(t, g.addr, be32(8, sslRequestCode))
		b, err := r.ReadByte()
		if err != nil || b != 'N' {
			t.Fatalf("SSLRequest answer %q %v", b, err)
		}
	})
	t.Run("protocol 3.2 negotiated down", func(t *testing.T) {
		b, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32, Parameters: map[string]string{"user": "a", "database": "vectors"}}).Encode(nil)
		_, r := rawStartup(t, g.addr, b)
		f := pgproto3.NewFrontend(r, io.Discard)
		m, err := f.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if nv, ok := m.(*pgproto3.NegotiateProtocolVersion); !ok || nv.NewestMinorProtocol != 0 {
			t.Fatalf("got %T %+v", m, m)
		}
	})
	t.Run("unknown cancel key ignored", func(t *testing.T) {
		b, _ := (&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}).Encode(nil)
		_, r := rawStartup(t, g.addr, b)
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("want silent close, got %v", err)
		}
	})
	t.Run("client vanishes mid-startup", func(t *testing.T) {
		c, _ := rawStartup(t, g.addr, be32(100, 3<<16)) // claims 100 bytes, sends 4
		c.Close()
	})
	stillServes(t, g, "")
}

func TestStartupTimeout(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, func(cfg *Config) { cfg.StartupTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("silent client: want EOF, got %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("closed after %v", el)
	}
	eventually(t, 5*time.Second, "connection untracked", func() bool { return value(t, g.srv.m.conns) == 0 })
}

// TestMalformedAfterStartup: malformed bytes in the password phase and in
// the relay reach the client as a FATAL 08P01 ErrorResponse.
func TestMalformedAfterStartup(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	pw := func(token string) []byte {
		b, _ := (&pgproto3.PasswordMessage{Password: token}).Encode(nil)
		return b
	}
	for _, tc := range []struct {
		name, user string
		after      []byte // sent after the startup packet
		msg        string
	}{
		{"query instead of password", "kim", []byte{'Q', 0, 0, 0, 5, 0}, "pgwarden: expected a password message"},
		{"password length below 4", "kim", []byte{'p', 0, 0, 0, 3}, "pgwarden: invalid message length"},
		{"relay length below 4", "lee", append(pw("good-lee"), 'Q', 0, 0, 0, 2), "pgwarden: invalid message length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, r := rawStartup(t, g.addr, startupBytes(map[string]string{"user": tc.user, "database": "vectors"}))
			if _, err := conn.Write(tc.after); err != nil {
				t.Fatal(err)
			}
			e := readError(t, r)
			if e.Code != "08P01" || e.Severity != "FATAL" || e.Message != tc.msg {
				t.Fatalf("got %s %s %q", e.Severity, e.Code, e.Message)
			}
		})
	}
	eventually(t, 5*time.Second, "lease revoked", func() bool { return g.prov.liveCount() == 0 })
}

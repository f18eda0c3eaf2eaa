package pgwire

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// nopLease never expires (no keep-alive goroutine).
type nopLease struct{}

func (nopLease) Username() string                         { return "bench" }
func (nopLease) Password() string                         { return "" }
func (nopLease) Expiry() time.Time                        { return time.Time{} }
func (nopLease) Renew(context.Context) (time.Time, error) { return time.Time{}, nil }
func (nopLease) Revoke(context.Context) error             { return nil }

// passHooks wants every message and changes nothing.
type passHooks struct{}

func (passHooks) WantClient(byte) bool { return true }
func (passHooks) WantServer(byte) bool { return true }
func (passHooks) OnClient(context.Context, pgproto3.FrontendMessage) Verdict {
	return Verdict{}
}
func (passHooks) OnServer(m pgproto3.BackendMessage) (pgproto3.BackendMessage, error) {
	return m, nil
}
func (passHooks) Close(string, error) {}

func tcpPair(tb testing.TB) (net.Conn, net.Conn) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); ch <- c }()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	return a, <-ch
}

// relayPair runs a session's relay between an in-process "client" and
// "upstream" (loopback TCP), without handshake. It returns the far ends.
func relayPair(tb testing.TB, h Hooks) (client, upstream net.Conn, stop func()) {
	client, upstream, _, stop = relaySession(tb, h)
	return client, upstream, stop
}

// relaySession is relayPair that also returns the session.
func relaySession(tb testing.TB, h Hooks) (client, upstream net.Conn, ss *session, stop func()) {
	m, _ := newMetrics(nil)
	srv := &Server{cfg: Config{MaxMessageBytes: 64 << 20}, m: m, log: zerolog.Nop()}
	client, gwClient := tcpPair(tb)
	gwUp, upstream := tcpPair(tb)
	ss = &session{
		srv: srv, lease: nopLease{}, hooks: h, log: zerolog.Nop(),
		client: gwClient, cr: bufio.NewReaderSize(gwClient, clientReadBuf), cw: newLazyWriter(gwClient, clientWriteBuf),
		up: gwUp, idle: make(chan struct{}, 1), marker: "pgwarden_refused_bench_", tr: NewTracker(),
		info: SessionInfo{StartedAt: time.Now()},
	}
	ss.ur, ss.uw = bufio.NewReaderSize(gwUp, upReadBuf), newLazyWriter(gwUp, upWriteBuf)
	ss.cf, ss.uf = newClientFramer(ss.cr, srv.cfg.MaxMessageBytes), newFramer(ss.ur, srv.cfg.MaxMessageBytes)
	ss.ctx, ss.cancel = context.WithCancel(context.Background())
	ss.hookCtx, ss.hookCancel = context.WithCancelCause(ss.ctx)
	done := make(chan struct{})
	go func() { ss.run(); close(done) }()
	return client, upstream, ss, func() {
		client.Close()
		upstream.Close()
		<-done
		ss.cancel()
	}
}

// pump writes n copies of msg to w in large chunks.
func pump(w io.Writer, msg []byte, n int) {
	const per = 256
	chunk := make([]byte, 0, len(msg)*per)
	for range per {
		chunk = append(chunk, msg...)
	}
	for n > 0 {
		k := min(n, per)
		if _, err := w.Write(chunk[:k*len(msg)]); err != nil {
			return
		}
		n -= k
	}
}

func benchRelay(b *testing.B, h Hooks, toServer bool) { benchRelayQuery(b, h, toServer, "") }

// benchRelayQuery is benchRelay with the Query text q (when toServer and
// q is not empty).
func benchRelayQuery(b *testing.B, h Hooks, toServer bool, q string) {
	client, upstream, stop := relayPair(b, h)
	defer stop()
	var msg []byte
	src, dst := client, upstream
	if q == "" {
		q = "SELECT id, name FROM items WHERE id = 42"
	}
	if toServer {
		msg, _ = (&pgproto3.Query{String: q}).Encode(nil)
	} else {
		msg, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("42"), []byte("a name of some length"), []byte("[0.1,0.2,0.3]")}}).Encode(nil)
		src, dst = upstream, client
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	go pump(src, msg, b.N)
	if _, err := io.CopyN(io.Discard, dst, int64(len(msg)*b.N)); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRelay measures messages/s through the relay loop in-process:
// client->server Query messages and server->client DataRows, with no hooks
// and with a hook that wants every message but changes nothing.
func BenchmarkRelay(b *testing.B) {
	b.Run("c2s/nohooks", func(b *testing.B) { benchRelay(b, nil, true) })
	b.Run("c2s/passhooks", func(b *testing.B) { benchRelay(b, passHooks{}, true) })
	// A 20-row INSERT of 384-dim vectors as psycopg2 sends it (~75 KB):
	// larger than the framer keeps, so its text takes the body's buffer.
	big := "INSERT INTO items (embedding) VALUES " + strings.Repeat("('[0.123456,"+strings.Repeat("0.123456,", 382)+"0.123456]'),", 19) + "('[0.1]')"
	b.Run("c2s/passhooks-75KB", func(b *testing.B) { benchRelayQuery(b, passHooks{}, true, big) })
	b.Run("s2c/nohooks", func(b *testing.B) { benchRelay(b, nil, false) })
	b.Run("s2c/passhooks", func(b *testing.B) { benchRelay(b, passHooks{}, false) })
}

// TestRelayPairRoundTrip checks the benchmark harness relays both ways.
func TestRelayPairRoundTrip(t *testing.T) {
	for _, h := range []Hooks{nil, passHooks{}} {
		client, upstream, stop := relayPair(t, h)
		q, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
		if _, err := client.Write(q); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(q))
		_ = upstream.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(upstream, got); err != nil || string(got) != string(q) {
			t.Fatalf("c2s: %q %v", got, err)
		}
		z, _ := (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(nil)
		if _, err := upstream.Write(z); err != nil {
			t.Fatal(err)
		}
		_ = client.SetDeadline(time.Now().Add(5 * time.Second))
		got = make([]byte, len(z))
		if _, err := io.ReadFull(client, got); err != nil || string(got) != string(z) {
			t.Fatalf("s2c: %q %v", got, err)
		}
		stop()
	}
}

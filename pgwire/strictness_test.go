package pgwire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// invalidFrontendTypes are type bytes a client may not send after startup
// (PostgreSQL: FATAL 08P01 "invalid frontend message type %d").
var invalidFrontendTypes = []byte{0x00, 0x01, 'A', 'Z', 'y', 'p'}

// invalidTypeResponse is the exact ErrorResponse a client must receive for
// type byte b, built here rather than by the code under test.
func invalidTypeResponse(t testing.TB, b byte) []byte {
	t.Helper()
	msg, err := (&pgproto3.ErrorResponse{
		Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "08P01",
		Message: fmt.Sprintf("pgwarden: invalid frontend message type %d", b),
	}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// invalidMessage is a well-framed message of type b followed by a valid
// Query: neither may reach the upstream.
func invalidMessage(b byte) []byte {
	var out []byte
	if b == 'p' {
		out, _ = (&pgproto3.PasswordMessage{Password: "good-after-login"}).Encode(nil)
	} else {
		out = append([]byte{b, 0, 0, 0, 8}, "abcd"...)
	}
	out, _ = (&pgproto3.Query{String: "SELECT 'after'"}).Encode(out)
	return out
}

// closeRecorder is a pass-through Hooks (wants every message) recording Close.
type closeRecorder struct {
	passHooks
	mu     sync.Mutex
	reason []string
	err    error
}

func (h *closeRecorder) Close(reason string, err error) {
	h.mu.Lock()
	h.reason = append(h.reason, reason)
	h.err = err
	h.mu.Unlock()
}

// readAll reads r until EOF (bounded by a deadline).
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until the gateway closes: %v (after %q)", err, b)
	}
	return b
}

// TestInvalidFrontendType: after startup, a type byte that is not a
// frontend message type gets FATAL 08P01 at once (a lone type byte is
// enough: no length is waited for), the session ends, and nothing of the
// message, nor anything after it, reaches the upstream — which sees only
// pgwarden's own Terminate.
func TestInvalidFrontendType(t *testing.T) {
	terminate := []byte{'X', 0, 0, 0, 4}
	for _, hooked := range []bool{false, true} {
		for _, b := range invalidFrontendTypes {
			for _, framed := range []bool{false, true} {
				name := fmt.Sprintf("hooks=%v/type=%d/framed=%v", hooked, b, framed)
				t.Run(name, func(t *testing.T) {
					var h *closeRecorder
					var hooks Hooks
					if hooked {
						h = &closeRecorder{}
						hooks = h
					}
					client, upstream, stop := relayPair(t, hooks)
					defer stop()
					fe := pgproto3.NewFrontend(client, client)
					be := pgproto3.NewBackend(upstream, upstream)

					// A normal round trip first: the session is relaying.
					fe.Send(&pgproto3.Query{String: "SELECT 1"})
					if err := fe.Flush(); err != nil {
						t.Fatal(err)
					}
					_ = upstream.SetReadDeadline(time.Now().Add(5 * time.Second))
					if m, err := be.Receive(); err != nil || m.(*pgproto3.Query).String != "SELECT 1" {
						t.Fatalf("upstream received %#v, %v", m, err)
					}
					be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
					if err := be.Flush(); err != nil {
						t.Fatal(err)
					}
					_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
					if m, err := fe.Receive(); err != nil {
						t.Fatal(err)
					} else if _, ok := m.(*pgproto3.ReadyForQuery); !ok {
						t.Fatalf("client received %#v", m)
					}

					in := []byte{b}
					if framed {
						in = invalidMessage(b)
					}
					if _, err := client.Write(in); err != nil {
						t.Fatal(err)
					}
					// The client keeps its side open: the gateway answers and
					// closes on its own.
					if got, want := readAll(t, client), invalidTypeResponse(t, b); !bytes.Equal(got, want) {
						t.Fatalf("client received %q, want exactly %q", got, want)
					}
					if got := readAll(t, upstream); !bytes.Equal(got, terminate) {
						t.Fatalf("upstream received %q after the round trip, want only Terminate %q", got, terminate)
					}
					stop()
					if h != nil {
						h.mu.Lock()
						defer h.mu.Unlock()
						pe, ok := pgerr.As(h.err)
						if len(h.reason) != 1 || h.reason[0] != reasonError || !ok || pe.Code != pgerr.ProtocolViolation {
							t.Fatalf("Hooks.Close(%q, %v)", h.reason, h.err)
						}
					}
				})
			}
		}
	}
}

// TestInvalidFrontendTypeEndsSession: through a whole gateway (real
// PostgreSQL), the refusal ends the session like every other FATAL one:
// the hooks are closed, the credential is revoked, the end is counted,
// and the gateway keeps serving.
func TestInvalidFrontendTypeEndsSession(t *testing.T) {
	c := needPG(t)
	var mu sync.Mutex
	var hooks []*closeRecorder
	g := startGateway(t, c, func(cfg *Config) {
		cfg.Hooks = func(context.Context, Session) (Hooks, error) {
			h := &closeRecorder{}
			mu.Lock()
			hooks = append(hooks, h)
			mu.Unlock()
			return h, nil
		}
	})
	for i, b := range invalidFrontendTypes {
		t.Run(fmt.Sprintf("type=%d", b), func(t *testing.T) {
			conn := g.connect(t, "quinn", "")
			if _, err := conn.Exec(tctx(t), "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			raw := conn.PgConn().Conn()
			if _, err := raw.Write(invalidMessage(b)); err != nil {
				t.Fatal(err)
			}
			if got, want := readAll(t, raw), invalidTypeResponse(t, b); !bytes.Equal(got, want) {
				t.Fatalf("client received %q, want exactly %q", got, want)
			}
			eventually(t, 5*time.Second, "lease revoked", func() bool { return g.prov.liveCount() == 0 })
			eventually(t, 5*time.Second, "session ended", func() bool { return g.srv.ActiveSessions() == 0 })
			eventually(t, 5*time.Second, "end counted", func() bool {
				return value(t, g.srv.m.ended.WithLabelValues(reasonError)) == float64(i+1)
			})
			mu.Lock()
			h := hooks[len(hooks)-1]
			mu.Unlock()
			h.mu.Lock()
			defer h.mu.Unlock()
			if pe, ok := pgerr.As(h.err); len(h.reason) != 1 || h.reason[0] != reasonError || !ok || pe.Code != pgerr.ProtocolViolation {
				t.Fatalf("Hooks.Close(%q, %v)", h.reason, h.err)
			}
		})
	}
	stillServes(t, g, "")
	eventually(t, 5*time.Second, "every lease revoked", func() bool { return g.prov.minted.Load() == g.prov.revoked.Load() })
}

package pgwire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// countingReader counts the bytes a decoder consumed.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzStartup(f *testing.F) {
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "a", "database": "b"}},
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32, Parameters: map[string]string{"user": "a", "_pq_.x": "1"}},
		&pgproto3.SSLRequest{}, &pgproto3.GSSEncRequest{},
		&pgproto3.CancelRequest{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}},
	} {
		b, _ := m.Encode(nil)
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 3})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0})
	f.Add([]byte{0, 0, 0, 9, 0, 3, 0, 0, 'u'})
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		p, err := readStartupPacket(cr)
		if len(data) >= 4 {
			claimed := int64(int32(binary.BigEndian.Uint32(data)))
			if claimed-4 > maxStartupPacket || claimed-4 < 4 {
				if err == nil || cr.n != 4 {
					t.Fatalf("claimed length %d: err %v after reading %d bytes", claimed, err, cr.n)
				}
				return
			}
			if int64(cr.n) > claimed {
				t.Fatalf("read %d bytes beyond the packet's %d", cr.n, claimed)
			}
		}
		if err != nil {
			return
		}
		switch p.kind {
		case kindStartup:
			if p.major != 3 {
				t.Fatalf("accepted protocol %d", p.major)
			}
			for _, kv := range p.params {
				if kv.key == "" || bytes.IndexByte([]byte(kv.key+kv.value), 0) >= 0 {
					t.Fatalf("bad parameter %q=%q", kv.key, kv.value)
				}
			}
		case kindCancel:
			if len(p.cancel.SecretKey) < 4 {
				t.Fatalf("short cancel key accepted")
			}
		}
	})
}

func FuzzFrames(f *testing.F) {
	var seed []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Query{String: "SELECT 1"},
		&pgproto3.Parse{Name: "s", Query: "SELECT $1", ParameterOIDs: []uint32{23}},
		&pgproto3.Bind{PreparedStatement: "s", Parameters: [][]byte{[]byte("1"), nil}},
		&pgproto3.Execute{}, &pgproto3.Sync{}, &pgproto3.CopyData{Data: []byte("x")},
	} {
		seed, _ = m.Encode(seed)
	}
	f.Add(seed)
	f.Add([]byte{'Q', 0, 0, 0, 3})
	f.Add([]byte{'Q', 0x7f, 0xff, 0xff, 0xff, 'x'})
	er, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", Code: "42601", Message: "pgwarden_refused_00_1"}).Encode(nil)
	f.Add(er)
	f.Add([]byte{'A', 0, 0, 0, 4})
	f.Add(append(append([]byte(nil), seed...), 'p', 0, 0, 0, 5, 0))
	f.Add([]byte{0})
	const max = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		checkClientFramer(t, data, max)
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		fr := newFramer(r, max)
		var out bytes.Buffer
		w := newLazyWriter(&out, 16)
		var fm frontendMsgs
		var bm backendMsgs
		ss := &session{marker: "pgwarden_refused_00_", tr: NewTracker()}
		for i := 0; i < 1000; i++ {
			typ, n, err := fr.next()
			if err != nil {
				if errors.Is(err, errBadLength) && len(data) < 5 {
					t.Fatalf("bad length without a header")
				}
				return
			}
			if n < 0 {
				t.Fatalf("negative body length %d", n)
			}
			if i%2 == 0 {
				before := out.Len() + w.Buffered()
				if err := fr.forward(w); err != nil {
					return
				}
				if got := out.Len() + w.Buffered() - before; got != 5+n {
					t.Fatalf("forwarded %d bytes of a %d-byte message", got, 5+n)
				}
				continue
			}
			body, err := fr.body()
			if n > max {
				if err != errTooLarge {
					t.Fatalf("message of %d bytes not refused: %v", n, err)
				}
				return
			}
			if err != nil {
				return
			}
			if len(body) != n {
				t.Fatalf("body %d bytes, header says %d", len(body), n)
			}
			_, _ = decodeFrontend(&fm, typ, body, false)
			if typ == 'Q' {
				// The zero-copy decode of an owned body agrees with pgproto3's.
				var want pgproto3.Query
				werr := want.Decode(body)
				var om frontendMsgs
				got, gerr := decodeFrontend(&om, 'Q', append([]byte(nil), body...), true)
				if (werr == nil) != (gerr == nil) || (gerr == nil && got.(*pgproto3.Query).String != want.String) {
					t.Fatalf("owned Query decode %v / %v differs from pgproto3's %q / %v", got, gerr, want.String, werr)
				}
			}
			_, _ = decodeBackend(&bm, typ, body)
			_ = fatalSeverity(body)
			_ = ss.matchRefusal(body)
		}
	})
}

// checkClientFramer: the client framer reads the same frames as the plain
// one until a type byte no client may send after startup, which it refuses
// with PostgreSQL's message.
func checkClientFramer(t *testing.T, data []byte, max int) {
	fr := newClientFramer(bufio.NewReaderSize(bytes.NewReader(data), 16), max)
	off := int64(0)
	for i := 0; i < 1000; i++ {
		typ, n, err := fr.next()
		if off < int64(len(data)) && strings.IndexByte(validClientTypes, data[off]) < 0 {
			checkInvalidType(t, err, data[off])
			return
		}
		if err != nil {
			if pe, ok := pgerr.As(err); ok && strings.Contains(pe.Message, "invalid frontend message type") {
				t.Fatalf("valid type refused: %v", err)
			}
			return
		}
		if typ != data[off] {
			t.Fatalf("type %q at offset %d, framer says %q", data[off], off, typ)
		}
		off += 5 + int64(n)
		if err := fr.skip(); err != nil {
			return
		}
	}
}

// validClientTypes are the frontend message types of protocol 3.0 after
// startup, written out independently of frontendTypes.
const validClientTypes = "QPBEDCHSFXdcf"

func checkInvalidType(t *testing.T, err error, typ byte) {
	t.Helper()
	pe, ok := pgerr.As(err)
	want := fmt.Sprintf("pgwarden: invalid frontend message type %d", typ)
	if !ok || pe.Severity != pgerr.SeverityFatal || pe.Code != pgerr.ProtocolViolation || pe.Message != want {
		t.Fatalf("type byte %d: got %v, want FATAL 08P01 %q", typ, err, want)
	}
}

// FuzzClientLoop runs the client->upstream relay loop over arbitrary
// client bytes, with and without (pass-through) hooks: what reaches the
// upstream writer is always a prefix of the client's bytes that stops
// before the first message of an invalid type, and that message ends the
// loop with FATAL 08P01.
func FuzzClientLoop(f *testing.F) {
	var seed []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Query{String: "SELECT 1"},
		&pgproto3.Parse{Query: "SELECT $1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
	} {
		seed, _ = m.Encode(seed)
	}
	for _, b := range []byte{0, 1, 'A', 'Z', 'y', 'p'} {
		f.Add(append(append([]byte(nil), seed...), b, 0, 0, 0, 4), false)
		f.Add(append(append([]byte(nil), seed...), b), true)
	}
	f.Add(seed, false)
	m, _ := newMetrics(nil)
	srv := &Server{cfg: Config{MaxMessageBytes: 1024}, m: m, log: zerolog.Nop()}
	f.Fuzz(func(t *testing.T, data []byte, hooked bool) {
		var out bytes.Buffer
		cr := bufio.NewReaderSize(bytes.NewReader(data), 16)
		ss := &session{
			srv: srv, log: zerolog.Nop(), cr: cr, cf: newClientFramer(cr, srv.cfg.MaxMessageBytes),
			uw: newLazyWriter(&out, 16), idle: make(chan struct{}, 1), marker: "pgwarden_refused_00_", tr: NewTracker(),
		}
		if hooked {
			ss.hooks = passHooks{}
		}
		ss.ctx, ss.cancel = context.WithCancel(context.Background())
		defer ss.cancel()
		ss.hookCtx, ss.hookCancel = context.WithCancelCause(ss.ctx)
		err := ss.clientLoopErr()
		_ = ss.uw.Flush() // count even what end() would have dropped
		fwd := out.Bytes()

		// Where the loop must stop, by an independent walk over the frames.
		off, invalid := int64(0), false
		for off < int64(len(data)) {
			if strings.IndexByte(validClientTypes, data[off]) < 0 {
				invalid = true
				break
			}
			if off+5 > int64(len(data)) {
				break
			}
			n := int64(int32(binary.BigEndian.Uint32(data[off+1:])))
			if n < 4 || n-4 > int64(srv.cfg.MaxMessageBytes) {
				break
			}
			end := off + 1 + n
			if data[off] == 'X' {
				off = min(end, int64(len(data)))
				break
			}
			if end > int64(len(data)) {
				// A truncated last message: pass-through streams what
				// arrived before the client's EOF, which ends the session.
				off = int64(len(data))
				break
			}
			off = end
		}
		if !bytes.HasPrefix(data, fwd) || int64(len(fwd)) > off {
			t.Fatalf("forwarded %d bytes (%q); the first %d of the input may be", len(fwd), fwd, off)
		}
		if invalid {
			if !hooked {
				checkInvalidType(t, err, data[off])
				if int64(len(fwd)) != off {
					t.Fatalf("forwarded %d bytes, want the %d before the invalid message", len(fwd), off)
				}
			} else if pe, ok := pgerr.As(err); ok && strings.Contains(pe.Message, "invalid frontend message type") {
				checkInvalidType(t, err, data[off])
			}
		} else if pe, ok := pgerr.As(err); ok && strings.Contains(pe.Message, "invalid frontend message type") {
			t.Fatalf("refused without an invalid type: %v", err)
		}
	})
}

func TestFramerStreamsLargeMessages(t *testing.T) {
	big := (&pgproto3.CopyData{Data: bytes.Repeat([]byte("abcdefgh"), 100000)})
	msg, _ := big.Encode(nil)
	r := bufio.NewReaderSize(bytes.NewReader(msg), 64)
	fr := newFramer(r, 1024) // limit applies to body(), not to streaming
	var out bytes.Buffer
	w := newLazyWriter(&out, 64)
	if _, _, err := fr.next(); err != nil {
		t.Fatal(err)
	}
	if err := fr.forward(w); err != nil {
		t.Fatal(err)
	}
	_ = w.Flush()
	if !bytes.Equal(out.Bytes(), msg) {
		t.Fatalf("forwarded %d bytes, want %d identical", out.Len(), len(msg))
	}
	if fr.buf != nil {
		t.Fatalf("forward allocated a body buffer of %d", cap(fr.buf))
	}
	// body() refuses it before allocating.
	fr = newFramer(bufio.NewReader(bytes.NewReader(msg)), 1024)
	_, _, _ = fr.next()
	if _, err := fr.body(); err != errTooLarge || fr.buf != nil {
		t.Fatalf("err %v, buffer %d", err, cap(fr.buf))
	}
}

func TestFatalSeverityAndMarker(t *testing.T) {
	enc := func(e *pgproto3.ErrorResponse) []byte { b, _ := e.Encode(nil); return b[5:] }
	if !fatalSeverity(enc(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01"})) {
		t.Fatal("FATAL not seen")
	}
	if fatalSeverity(enc(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42601", Message: "FATAL"})) {
		t.Fatal("ERROR seen as FATAL")
	}
	ss := &session{marker: "pgwarden_refused_ab_", tr: NewTracker()}
	ss.tr.refusals = []refusal{{seq: 1, rfq: 1, err: errForbidden}, {seq: 12, rfq: 2, err: errExpired}}
	ss.nRefusals.Store(2)
	body := enc(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: `syntax error at or near "pgwarden_refused_ab_12"`})
	if e := ss.matchRefusal(body); e != errExpired {
		t.Fatalf("matched %v", e)
	}
	if e := ss.matchRefusal(body); e != nil {
		t.Fatalf("matched twice: %v", e)
	}
	if ss.nRefusals.Load() != 1 {
		t.Fatalf("refusals left %d", ss.nRefusals.Load())
	}
}

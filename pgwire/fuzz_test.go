package pgwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
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
	const max = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		fr := newFramer(r, max)
		var out bytes.Buffer
		w := newLazyWriter(&out, 16)
		var fm frontendMsgs
		var bm backendMsgs
		ss := &session{marker: "pgwarden_refused_00_"}
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
			_, _ = decodeFrontend(&fm, typ, body)
			_, _ = decodeBackend(&bm, typ, body)
			_ = fatalSeverity(body)
			_ = ss.matchRefusal(body)
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
	ss := &session{marker: "pgwarden_refused_ab_"}
	ss.st.refusals = []refusal{{seq: 1, rfq: 1, err: errForbidden}, {seq: 12, rfq: 2, err: errExpired}}
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

package pgwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// errTooLarge and errBadLength are the framer's protocol violations. They
// are *pgerr.Error values so the relay can send them to the client as is.
var (
	errTooLarge  = pgerr.Fatal(pgerr.ProtocolViolation, "message too large")
	errBadLength = pgerr.Fatal(pgerr.ProtocolViolation, "invalid message length")
)

// frontendTypes are the message types a client may send once startup is
// done (protocol 3.0): Query, Parse, Bind, Execute, Describe, Close, Flush,
// Sync, FunctionCall, Terminate, CopyData, CopyDone, CopyFail. PostgreSQL
// ends a session sending any other type byte (a PasswordMessage 'p' after
// login included) with FATAL 08P01 "invalid frontend message type %d";
// the client framer does the same before reading the rest of the header.
var frontendTypes = [256]bool{
	'Q': true, 'P': true, 'B': true, 'E': true, 'D': true, 'C': true, 'H': true,
	'S': true, 'F': true, 'X': true, 'd': true, 'c': true, 'f': true,
}

// errInvalidType is the FATAL 08P01 for a type byte the framer does not accept.
func errInvalidType(typ byte) *pgerr.Error {
	return pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ)
}

// keepBodyCap is the largest body buffer a framer keeps between messages;
// a bigger one (for one large wanted message) is dropped after use so an
// idle session holds only small buffers.
const keepBodyCap = 64 << 10

// framer reads typed protocol messages (type byte, int32 length, body)
// from a bufio.Reader. It validates the length before anything is
// allocated and either streams the body to a writer without copying it
// into a buffer of its own (forward) or reads it into a reused buffer
// (body). One framer belongs to one goroutine.
type framer struct {
	r     *bufio.Reader
	max   int        // largest accepted body length for body(); <=0: no limit
	types *[256]bool // accepted type bytes; nil: any (the upstream's)

	typ     byte
	bodyLen int  // body length of the current message
	pending bool // header read, body not yet consumed
	read    bool // the current message's body was read by body()
	hdr     [5]byte
	buf     []byte
	taken   bool // buf belongs to a decoded message now (take): body allocates anew
}

func newFramer(r *bufio.Reader, max int) *framer { return &framer{r: r, max: max} }

// newClientFramer returns the framer of a session's client messages: it
// accepts only frontendTypes.
func newClientFramer(r *bufio.Reader, max int) *framer {
	return &framer{r: r, max: max, types: &frontendTypes}
}

// next reads the next message header. The caller must then call body,
// forward or skip before calling next again. A type byte the framer does
// not accept is refused (errInvalidType) as soon as it arrives, without
// waiting for the length that should follow it.
func (f *framer) next() (typ byte, bodyLen int, err error) {
	if f.pending {
		if err := f.skip(); err != nil {
			return 0, 0, err
		}
	}
	if f.r.Buffered() >= len(f.hdr) {
		_, _ = f.r.Read(f.hdr[:]) // copies from the buffer: all 5 bytes
		if f.types != nil && !f.types[f.hdr[0]] {
			return 0, 0, errInvalidType(f.hdr[0])
		}
	} else {
		c, err := f.r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		f.hdr[0] = c
		if f.types != nil && !f.types[c] {
			return 0, 0, errInvalidType(c)
		}
		if _, err := io.ReadFull(f.r, f.hdr[1:]); err != nil {
			return 0, 0, unexpectedEOF(err)
		}
	}
	n := int32(binary.BigEndian.Uint32(f.hdr[1:]))
	if n < 4 {
		return 0, 0, errBadLength
	}
	f.typ, f.bodyLen, f.pending, f.read = f.hdr[0], int(n)-4, true, false
	return f.typ, f.bodyLen, nil
}

// checkMax reports errTooLarge when the current message exceeds the limit.
func (f *framer) checkMax() error {
	if f.max > 0 && f.bodyLen > f.max {
		return errTooLarge
	}
	return nil
}

// body reads the current message's body into the framer's buffer, which
// is valid until the next call to next/body. It enforces max first.
func (f *framer) body() ([]byte, error) {
	if err := f.checkMax(); err != nil {
		return nil, err
	}
	if f.taken || cap(f.buf) < f.bodyLen {
		f.buf, f.taken = make([]byte, f.bodyLen), false
	} else if cap(f.buf) > keepBodyCap && f.bodyLen <= keepBodyCap {
		f.buf = make([]byte, keepBodyCap)
	}
	b := f.buf[:f.bodyLen]
	f.pending = false
	if _, err := io.ReadFull(f.r, b); err != nil {
		return nil, unexpectedEOF(err)
	}
	f.read = true
	return b, nil
}

// lastBody returns the current message's body if body() read it (nil
// otherwise); valid until the next call to next/body.
func (f *framer) lastBody() []byte {
	if !f.read {
		return nil
	}
	return f.buf[:f.bodyLen]
}

// release drops an oversized body buffer (call when going idle).
func (f *framer) release() {
	if f.taken || cap(f.buf) > keepBodyCap {
		f.buf, f.taken = nil, false
	}
}

// take hands the current body's buffer over to its caller for good: the
// framer never writes into it again (the next body gets a new buffer).
// It returns false for a body of at most keepBodyCap bytes, whose buffer
// the framer keeps reusing; a larger one would be dropped after this
// message anyway, so taking it costs nothing.
func (f *framer) take() bool {
	if !f.read || f.bodyLen <= keepBodyCap {
		return false
	}
	f.taken = true
	return true
}

// forward writes the current message (header and body) to w, streaming
// the body through the reader's buffer: nothing is allocated and a body of
// any size passes with bounded memory.
func (f *framer) forward(w *lazyWriter) error {
	if _, err := w.Write(f.hdr[:]); err != nil {
		return writeErr{err}
	}
	f.pending = false
	n := f.bodyLen
	for n > 0 {
		if f.r.Buffered() == 0 {
			if _, err := f.r.Peek(1); err != nil {
				return unexpectedEOF(err)
			}
		}
		k := min(n, f.r.Buffered())
		b, _ := f.r.Peek(k)
		if _, err := w.Write(b); err != nil {
			return writeErr{err}
		}
		_, _ = f.r.Discard(k)
		n -= k
	}
	return nil
}

// skip discards the current message's body.
func (f *framer) skip() error {
	f.pending = false
	if _, err := f.r.Discard(f.bodyLen); err != nil {
		return unexpectedEOF(err)
	}
	return nil
}

// header returns the header of the current message (valid until next).
func (f *framer) header() []byte { return f.hdr[:] }

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

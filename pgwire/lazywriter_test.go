package pgwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// TestLazyWriterMatchesBufio: random sequences of writes (empty, small,
// exactly the buffer size, larger) and flushes produce the same bytes, in
// the same underlying writes, as bufio.Writer; a flushed writer holds no
// buffer.
func TestLazyWriterMatchesBufio(t *testing.T) {
	for _, size := range []int{16, poolBufSize} {
		rng := rand.New(rand.NewPCG(uint64(size), 7))
		for iter := 0; iter < 200; iter++ {
			var got, want recWriter
			lw, bw := newLazyWriter(&got, size), bufio.NewWriterSize(&want, size)
			for op := 0; op < 50; op++ {
				if rng.IntN(4) == 0 {
					must(t, lw.Flush())
					must(t, bw.Flush())
					if lw.buf != nil || lw.bp != nil {
						t.Fatal("a flushed lazyWriter still holds its buffer")
					}
					continue
				}
				var n int
				switch rng.IntN(4) {
				case 0:
					n = rng.IntN(8)
				case 1:
					n = rng.IntN(size)
				case 2:
					n = size
				default:
					n = size + rng.IntN(3*size)
				}
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				n1, err1 := lw.Write(p)
				n2, err2 := bw.Write(p)
				if n1 != n2 || err1 != nil || err2 != nil {
					t.Fatalf("Write(%d) = %d, %v; bufio %d, %v", len(p), n1, err1, n2, err2)
				}
				if lw.Buffered() != bw.Buffered() {
					t.Fatalf("Buffered %d, bufio %d", lw.Buffered(), bw.Buffered())
				}
			}
			must(t, lw.Flush())
			must(t, bw.Flush())
			if !bytes.Equal(got.b.Bytes(), want.b.Bytes()) || got.writes != want.writes {
				t.Fatalf("size %d: %d bytes in %d writes, bufio %d bytes in %d writes",
					size, got.b.Len(), got.writes, want.b.Len(), want.writes)
			}
		}
	}
}

type recWriter struct {
	b      bytes.Buffer
	writes int
}

func (w *recWriter) Write(p []byte) (int, error) { w.writes++; return w.b.Write(p) }

// shortWriter accepts at most n bytes in all, then fails.
type shortWriter struct{ n int }

func (w *shortWriter) Write(p []byte) (int, error) {
	k := min(len(p), w.n)
	w.n -= k
	if k < len(p) {
		return k, errors.New("broken pipe")
	}
	return k, nil
}

// TestLazyWriterErrorSticky: a failed or short write is reported and every
// later Write/Flush returns the same error without touching the writer.
func TestLazyWriterErrorSticky(t *testing.T) {
	sw := &shortWriter{n: 10}
	lw := newLazyWriter(sw, 16)
	if _, err := lw.Write(make([]byte, 12)); err != nil {
		t.Fatal(err)
	}
	err := lw.Flush()
	if err == nil || lw.Buffered() != 2 {
		t.Fatalf("Flush after a short write = %v, buffered %d", err, lw.Buffered())
	}
	if _, err2 := lw.Write([]byte("x")); err2 != err {
		t.Fatalf("Write after error = %v", err2)
	}
	if err2 := lw.Flush(); err2 != err {
		t.Fatalf("Flush after error = %v", err2)
	}
	big := newLazyWriter(&shortWriter{n: 5}, 16)
	if n, err := big.Write(make([]byte, 40)); err == nil || n != 5 {
		t.Fatalf("large direct write = %d, %v", n, err)
	}
	if _, err := newLazyWriter(io.Discard, 16).Write(nil); err != nil {
		t.Fatal(err)
	}
}

// TestLazyWriterFlushAllocs: a write and flush of a small message takes a
// pooled buffer and gives it back without allocating.
func TestLazyWriterFlushAllocs(t *testing.T) {
	lw := newLazyWriter(io.Discard, clientWriteBuf)
	msg := make([]byte, 100)
	if a := testing.AllocsPerRun(1000, func() {
		_, _ = lw.Write(msg)
		_ = lw.Flush()
	}); a >= 0.1 { // a GC may empty the pool once
		t.Fatalf("%v allocs per write+flush", a)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

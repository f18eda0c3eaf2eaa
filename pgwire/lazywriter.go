package pgwire

import (
	"io"
	"sync"
)

// lazyWriter is a buffered writer (the subset of bufio.Writer the relay
// uses: Write, Flush, Buffered) that holds its buffer only while it holds
// data: the buffer comes from a pool at the first Write after a Flush and
// goes back when a Flush empties it. An idle session then holds no write
// buffers (two 8 KiB bufio.Writers were a third of an idle session's
// memory). Like bufio.Writer, a write larger than the free space of an
// empty buffer goes straight to the underlying writer, and the first write
// error is sticky. Not safe for concurrent use.
type lazyWriter struct {
	w    io.Writer
	size int
	bp   *[]byte // from bufPool (size == poolBufSize) while buf holds data
	buf  []byte  // nil when released
	n    int
	err  error
}

// poolBufSize is the size of pooled write buffers (clientWriteBuf, upWriteBuf).
const poolBufSize = 8 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, poolBufSize); return &b }}

func newLazyWriter(w io.Writer, size int) *lazyWriter {
	if size <= 0 {
		size = poolBufSize
	}
	return &lazyWriter{w: w, size: size}
}

func (b *lazyWriter) grab() {
	if b.buf != nil {
		return
	}
	if b.size == poolBufSize {
		b.bp = bufPool.Get().(*[]byte)
		b.buf = *b.bp
		return
	}
	b.buf = make([]byte, b.size) // odd sizes (tests) are not pooled
}

func (b *lazyWriter) release() {
	if b.bp != nil {
		bufPool.Put(b.bp)
	}
	b.bp, b.buf = nil, nil
}

// Buffered returns the number of bytes written but not yet flushed.
func (b *lazyWriter) Buffered() int { return b.n }

// Write buffers p, flushing as the buffer fills.
func (b *lazyWriter) Write(p []byte) (nn int, err error) {
	if b.err != nil {
		return 0, b.err
	}
	for len(p) > b.size-b.n {
		var n int
		if b.n == 0 {
			n, b.err = b.w.Write(p) // large write, empty buffer: no copy
			if n < len(p) && b.err == nil {
				b.err = io.ErrShortWrite
			}
		} else {
			b.grab()
			n = copy(b.buf[b.n:], p)
			b.n += n
			b.flush()
		}
		nn += n
		p = p[n:]
		if b.err != nil {
			return nn, b.err
		}
	}
	if len(p) == 0 {
		return nn, nil
	}
	b.grab()
	n := copy(b.buf[b.n:], p)
	b.n += n
	return nn + n, nil
}

// Flush writes the buffered data; an emptied buffer goes back to the pool.
func (b *lazyWriter) Flush() error {
	b.flush()
	return b.err
}

func (b *lazyWriter) flush() {
	if b.err != nil {
		return
	}
	if b.n == 0 {
		b.release()
		return
	}
	n, err := b.w.Write(b.buf[:b.n])
	if n < b.n && err == nil {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 && n < b.n {
			copy(b.buf, b.buf[n:b.n])
		}
		b.n -= n
		b.err = err
		return
	}
	b.n = 0
	b.release()
}

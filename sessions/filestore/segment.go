package filestore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Store layout under <store.dir>/sessions:
//
//	<first seq, 20 digits>.jsonl   segments, in seq order
//	head.json                      {"seq":N,"hash":"..."} of the last fsynced event
//	torn-<unix ns>.bin             a partial last line cut off at recovery (kept for forensics)
const (
	SegExt   = ".jsonl"
	HeadFile = "head.json"
)

// SegName is the name of the segment whose first event is firstSeq.
func SegName(firstSeq int64) string { return fmt.Sprintf("%020d%s", firstSeq, SegExt) }

// ListSegments returns segment file names in seq order.
func ListSegments(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, SegExt) && len(n) == 20+len(SegExt) {
			if _, err := strconv.ParseInt(strings.TrimSuffix(n, SegExt), 10, 64); err == nil {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out) // zero-padded: lexical order is numeric order
	return out, nil
}

// SegFirstSeq is the first seq of segment name (from its name).
func SegFirstSeq(name string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(name, SegExt), 10, 64)
	return n
}

// Head is head.json: the seq and hash of the last fsynced event.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// ReadHead reads dir's head.json; ok is false when there is none.
func ReadHead(dir string) (h Head, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, HeadFile))
	if os.IsNotExist(err) {
		return h, false, nil
	}
	if err != nil {
		return h, false, err
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, true, fmt.Errorf("%s: %v", HeadFile, err)
	}
	return h, true, nil
}

// WriteFileAtomic writes data to path via a synced temp file and rename.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LineReader yields complete lines ('\n'-terminated) of one segment and
// remembers the offset after the last complete line, so a tail can resume.
// The data ends at end of file or at the first NUL byte, whichever comes
// first: the active segment is written through a mapping into space
// allocated ahead, so its file ends in zeros (segfile_linux.go, Appender), and no
// event line contains a NUL (JSON escapes it).
type LineReader struct {
	r      io.Reader
	buf    []byte
	start  int   // start of unconsumed data in buf
	end    int   // with eof: end of the data in buf (a NUL or len(buf))
	off    int64 // file offset of buf[start]
	lineNo int
	eof    bool
	zero   bool // the data ended at a NUL (a zero tail follows)
}

const maxLine = 64 << 20 // a line longer than this is corrupt

// NewLineReader reads r, whose first byte is at file offset off.
func NewLineReader(r io.Reader, off int64) *LineReader {
	return &LineReader{r: r, buf: make([]byte, 0, 64<<10), off: off}
}

// Next returns the next complete line without its '\n' (valid until the
// next call), or io.EOF; Rest reports an incomplete trailing fragment.
func (lr *LineReader) Next() ([]byte, error) {
	for {
		if lr.zero {
			return nil, io.EOF
		}
		if i := bytes.IndexByte(lr.buf[lr.start:], '\n'); i >= 0 {
			line := lr.buf[lr.start : lr.start+i]
			if z := bytes.IndexByte(line, 0); z >= 0 {
				lr.stopAt(lr.start + z)
				return nil, io.EOF
			}
			lr.start += i + 1
			lr.off += int64(i + 1)
			lr.lineNo++
			return line, nil
		}
		if z := bytes.IndexByte(lr.buf[lr.start:], 0); z >= 0 {
			lr.stopAt(lr.start + z)
			return nil, io.EOF
		}
		if lr.eof {
			lr.end = len(lr.buf)
			return nil, io.EOF
		}
		if len(lr.buf)-lr.start > maxLine {
			return nil, fmt.Errorf("line %d longer than %d bytes", lr.lineNo+1, maxLine)
		}
		// compact and read more
		n := copy(lr.buf, lr.buf[lr.start:])
		lr.buf = lr.buf[:n]
		lr.start = 0
		if cap(lr.buf)-len(lr.buf) < 32<<10 {
			nb := make([]byte, len(lr.buf), 2*cap(lr.buf)+64<<10)
			copy(nb, lr.buf)
			lr.buf = nb
		}
		m, err := lr.r.Read(lr.buf[len(lr.buf):cap(lr.buf)])
		lr.buf = lr.buf[:len(lr.buf)+m]
		if err == io.EOF {
			lr.eof = true
		} else if err != nil {
			return nil, err
		}
	}
}

// stopAt ends the data at buf[i], a NUL: what follows is unwritten space.
func (lr *LineReader) stopAt(i int) {
	lr.eof, lr.zero, lr.end = true, true, i
}

// Rest returns the unterminated fragment after the last complete line (up
// to a NUL that ends the data). Valid after Next returned io.EOF.
func (lr *LineReader) Rest() []byte {
	if !lr.eof {
		return lr.buf[lr.start:]
	}
	return lr.buf[lr.start:lr.end]
}

// Off is the file offset after the last complete line returned.
func (lr *LineReader) Off() int64 { return lr.off }

// Lines ranges over the complete lines as Next returns them, until the
// end of the data (io.EOF is not passed on); a read error is the last pair.
func (lr *LineReader) Lines() iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		for {
			line, err := lr.Next()
			if err == io.EOF || !yield(line, err) || err != nil {
				return
			}
		}
	}
}

// LineNo is the number of complete lines returned (the last one's, 1-based).
func (lr *LineReader) LineNo() int { return lr.lineNo }

// Zero reports whether the data ended at a NUL (a zero tail follows).
func (lr *LineReader) Zero() bool { return lr.zero }

// TailAfter returns f's bytes from off to its end without trailing NULs
// (nil when there are only NULs or nothing).
func TailAfter(f *os.File, off int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil || st.Size() <= off {
		return nil, err
	}
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return nil, err
	}
	return bytes.TrimRight(b, "\x00"), nil
}

package sessions

import (
	"io"
	"os"

	"github.com/pgwarden/pgwarden/sessions/filestore"
)

// The file store's segment layout lives in sessions/filestore; these are
// the recorder's short names for it.
const headFile = filestore.HeadFile

type lineReader = filestore.LineReader

func segName(firstSeq int64) string                     { return filestore.SegName(firstSeq) }
func segFirstSeq(name string) int64                     { return filestore.SegFirstSeq(name) }
func listSegments(dir string) ([]string, error)         { return filestore.ListSegments(dir) }
func readHead(dir string) (filestore.Head, bool, error) { return filestore.ReadHead(dir) }
func writeFileAtomic(path string, data []byte) error    { return filestore.WriteFileAtomic(path, data) }
func newLineReader(r io.Reader, off int64) *lineReader  { return filestore.NewLineReader(r, off) }
func tailAfter(f *os.File, off int64) ([]byte, error)   { return filestore.TailAfter(f, off) }

package sessions

import (
	"os"
	"strings"
	"testing"
)

// BenchmarkSegmentWrite compares one 850-byte event line written through
// the segment mapping with a write(2) to an appending file.
func BenchmarkSegmentWrite(b *testing.B) {
	line := []byte(strings.Repeat("x", 849) + "\n")
	b.Run("mapped", func(b *testing.B) {
		f, err := openMappedSeg(b.TempDir() + "/s.jsonl")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if _, err := f.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		f, err := os.OpenFile(b.TempDir()+"/s.jsonl", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if _, err := f.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package filestore

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkSegmentWrite compares one event line (850 bytes: a -S
// statement; 75 KiB: an insert-batch statement) written through
// the segment mapping with a write(2) to an appending file.
func BenchmarkSegmentWrite(b *testing.B) {
	for _, n := range []int{850, 3 << 10, 6 << 10, 16 << 10, 75 << 10} {
		b.Run(strconv.Itoa(n), func(b *testing.B) { benchSegmentWrite(b, n) })
	}
}

func benchSegmentWrite(b *testing.B, n int) {
	line := []byte(strings.Repeat("x", n-1) + "\n")
	opens := map[string]func(string) (segFile, error){
		"mapped": openMappedSeg,
		"write": func(p string) (segFile, error) {
			return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		},
	}
	for _, name := range []string{"mapped", "write"} {
		b.Run(name, func(b *testing.B) {
			f, err := opens[name](b.TempDir() + "/s.jsonl")
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
}

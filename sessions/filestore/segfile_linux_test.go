package filestore

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestMappedSegmentKillLeavesZeroTail: a gateway killed while running
// leaves the zero tail; the next Open cuts it off silently (no torn
// fragment: nothing was torn), and a store with data after a zero-filled
// gap fails verify.
func TestMappedSegmentKillLeavesZeroTail(t *testing.T) {
	dir := t.TempDir()
	a, _ := openT(t, testOpts(), dir)
	writeSession(t, a, "k", false)
	a.halt() // kill -9: no Shutdown, the mapping's pages stay in the page cache
	a2, h2 := openT(t, testOpts(), dir)
	a2.Shutdown()
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("verify after recovery: %v %s", p, out)
	}
	if torn, _ := os.ReadDir(dir); hasPrefix(torn, "torn-") || h2.torn.Load() != 0 {
		t.Fatal("a zero tail was kept as a torn fragment")
	}

	// a gap: data behind zeros in the last segment
	path := segPath(t, dir)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write(append(make([]byte, 4096), `{"seq":99}`+"\n"...))
	must(t, err)
	f.Close()
	ok, p, _ := verifyT(t, dir)
	if ok || !strings.Contains(p.Msg, "zero-filled gap") {
		t.Fatalf("verify with data after a zero gap: ok=%v %v", ok, p)
	}
}

func hasPrefix(ents []os.DirEntry, prefix string) bool {
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			return true
		}
	}
	return false
}

// TestMappedSegmentGrows: events beyond the first allocation and the
// first mapping extend the file and remap, and every line is intact.
func TestMappedSegmentGrows(t *testing.T) {
	path := t.TempDir() + "/seg.jsonl"
	f, err := openMappedSeg(path)
	must(t, err)
	line := []byte(strings.Repeat("x", 999) + "\n")
	total := segMapping + 3*segGrow
	for w := 0; w < total; w += len(line) {
		if _, err := f.Write(line); err != nil {
			t.Fatalf("write at %d: %v", w, err)
		}
	}
	written := f.(*mappedSeg).size
	must(t, f.Truncate(written-int64(len(line)))) // cut the last line back
	must(t, f.Close())
	data, err := os.ReadFile(path)
	must(t, err)
	want := int(written) - len(line)
	if len(data) != want {
		t.Fatalf("file %d bytes, want %d", len(data), want)
	}
	lr := NewLineReader(bytes.NewReader(data), 0)
	n := 0
	for {
		l, err := lr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if len(l) != 999 {
			t.Fatalf("line %d: %d bytes", n, len(l))
		}
		n++
	}
	if n*len(line) != want || len(lr.Rest()) != 0 {
		t.Fatalf("%d lines, rest %d", n, len(lr.Rest()))
	}
	// reopened, it resumes at its data's end
	f, err = openMappedSeg(path)
	must(t, err)
	if got := f.(*mappedSeg).size; got != int64(want) {
		t.Fatalf("reopened at %d, want %d", got, want)
	}
	must(t, f.Close())
}

// TestLineReaderStopsAtNUL: the data ends at the first NUL.
func TestLineReaderStopsAtNUL(t *testing.T) {
	for _, c := range []struct {
		in    string
		lines []string
		rest  string
		zero  bool
	}{
		{"a\nb\n", []string{"a", "b"}, "", false},
		{"a\nb", []string{"a"}, "b", false},
		{"a\nb\n\x00\x00\x00", []string{"a", "b"}, "", true},
		{"a\npart\x00\x00", []string{"a"}, "part", true},
		{"a\nb\x00\x00c\n", []string{"a"}, "b", true},
		{"\x00a\n", nil, "", true},
		{"a\n" + strings.Repeat("\x00", 200<<10) + "b\n", []string{"a"}, "", true},
	} {
		lr := NewLineReader(strings.NewReader(c.in), 0)
		var got []string
		for {
			l, err := lr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			got = append(got, string(l))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.lines) || string(lr.Rest()) != c.rest || lr.Zero() != c.zero {
			t.Errorf("%q: lines %q rest %q zero %v; want %q %q %v", c.in[:min(len(c.in), 20)], got, lr.Rest(), lr.Zero(), c.lines, c.rest, c.zero)
		}
	}
}

// TestMappedSegmentMixedWrites: small events copied into the mapping and
// large ones written with pwrite(2) interleave into one intact file, as
// the mapping and a reader see it.
func TestMappedSegmentMixedWrites(t *testing.T) {
	path := t.TempDir() + "/seg.jsonl"
	f, err := openMappedSeg(path)
	must(t, err)
	var want bytes.Buffer
	for i := 0; i < 300; i++ {
		n := 100 + i%7*50
		if i%5 == 0 {
			n = segPwrite + i*37
		}
		line := []byte(strings.Repeat(string(rune('a'+i%26)), n) + "\n")
		_, err := f.Write(line)
		must(t, err)
		want.Write(line)
	}
	ms := f.(*mappedSeg)
	if !bytes.Equal(ms.mem[:ms.size], want.Bytes()) {
		t.Fatal("the mapping differs from what was written")
	}
	data, err := os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(data[:ms.size], want.Bytes()) || len(bytes.Trim(data[ms.size:], "\x00")) != 0 {
		t.Fatal("the file differs from what was written, or its tail is not zeros")
	}
	must(t, f.Close())
	data, err = os.ReadFile(path)
	must(t, err)
	if !bytes.Equal(data, want.Bytes()) {
		t.Fatalf("after Close: %d bytes, want %d", len(data), want.Len())
	}
}

// TestMappedSegmentShortPwriteLeavesNoFragment: a large event whose
// pwrite(2) stops part-way (here at a file size limit) fails, and the part
// it wrote is zeroed again: readers see the data end where it did.
func TestMappedSegmentShortPwriteLeavesNoFragment(t *testing.T) {
	path := t.TempDir() + "/seg.jsonl"
	f, err := openMappedSeg(path)
	must(t, err)
	defer f.Close()
	first := []byte(`{"seq":1}` + "\n")
	_, err = f.Write(first)
	must(t, err)
	var old syscall.Rlimit
	must(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	lim := old
	lim.Cur = uint64(len(first) + 100)
	must(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim))
	_, err = f.Write(bytes.Repeat([]byte("y"), segPwrite*2))
	must(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	if err == nil {
		t.Fatal("a pwrite past the file size limit succeeded")
	}
	data, err := os.ReadFile(path)
	must(t, err)
	if !bytes.HasPrefix(data, first) || len(bytes.Trim(data[len(first):], "\x00")) != 0 {
		t.Fatalf("after the short write the file holds %q… beyond its first line", bytes.Trim(data[len(first):], "\x00")[:8])
	}
}

package sessions

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestResultRowsMatchRows: an event whose rows came as ResultRows encodes
// to exactly the bytes of the same event with Rows (text values with
// control characters, invalid UTF-8 and U+2028; binary values as \x hex;
// NULLs; per-column, single and absent format codes), and reads back as
// those Rows.
func TestResultRowsMatchRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	var rr ResultRows
	for i := 0; i < 5000; i++ {
		ev := randEvent(r)
		ncol := 1 + r.IntN(5)
		var formats []int16
		switch r.IntN(3) {
		case 1:
			formats = []int16{int16(r.IntN(2))}
		case 2:
			formats = make([]int16, ncol)
			for j := range formats {
				formats[j] = int16(r.IntN(2))
			}
		}
		rr.Reset()
		nrows := r.IntN(4)
		var rows [][]*string
		for k := 0; k < nrows; k++ {
			vals := make([][]byte, ncol)
			row := make([]*string, ncol)
			for j := range vals {
				if r.IntN(5) == 0 {
					continue // NULL
				}
				vals[j] = []byte(randString(r))
				s := string(vals[j])
				if binaryFormat(formats, j) {
					s = `\x` + hex.EncodeToString(vals[j])
				}
				row[j] = &s
			}
			rr.AppendRow(vals, formats)
			rows = append(rows, row)
		}
		ev.Rows = rows
		want := appendCanonical(nil, &ev, true)
		ev.Rows = nil
		ev.SetRowsJSON(rr.upTo(nrows))
		got := appendCanonical(nil, &ev, true)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
		if rr.Len() != nrows {
			t.Fatalf("Len %d, want %d", rr.Len(), nrows)
		}
		if nrows > 1 { // a prefix is a prefix of rows
			ev.Rows = rows[:1]
			ev.SetRowsJSON(nil)
			want = appendCanonical(nil, &ev, true)
			ev.Rows = nil
			ev.SetRowsJSON(rr.upTo(1))
			if got = appendCanonical(nil, &ev, true); !bytes.Equal(got, want) {
				t.Fatalf("case %d, first row:\n got %s\nwant %s", i, got, want)
			}
		}
		var back Event
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, got)
		}
	}
}

func TestResultRowsRecorded(t *testing.T) {
	dir := t.TempDir()
	cfg := testCfg()
	cfg.MaxRows = 2
	r := openT(t, cfg, dir)
	s := r.Start(StartInfo{ID: "s1", User: "u"})
	var rr ResultRows
	rr.AppendRow([][]byte{[]byte("1"), nil, []byte("a\"b")}, nil)
	rr.AppendRow([][]byte{[]byte("2"), {0xde, 0xad}, []byte("c")}, []int16{0, 1, 0})
	rr.AppendRow([][]byte{[]byte("3"), nil, nil}, nil)
	must(t, s.Statement(StatementEvent{SQL: "SELECT", Columns: []string{"a", "b", "c"}, Rows: &rr}))
	rr.Reset() // the recorder keeps nothing of it
	rr.AppendRow([][]byte{[]byte("overwritten")}, nil)
	must(t, s.End("client_closed"))
	must(t, r.Close())
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("verify failed: %v %s", p, out)
	}
	st, _ := OpenStore(dir)
	evs, err := st.Get("s1")
	must(t, err)
	if len(evs) != 3 || evs[1].Type != TypeStatement {
		t.Fatalf("events %+v", evs)
	}
	ev := evs[1]
	if ev.RowsTotal != 3 || len(ev.Rows) != 2 { // max_rows 2
		t.Fatalf("rows_total %d, %d rows recorded: %v", ev.RowsTotal, len(ev.Rows), ev.Rows)
	}
	if *ev.Rows[0][2] != `a"b` || ev.Rows[0][1] != nil || *ev.Rows[1][1] != `\xdead` || *ev.Rows[1][0] != "2" {
		t.Fatalf("rows %v", ev.Rows)
	}
}

// The type's claim: no allocation per row once the buffers have grown,
// binary values (a 384-d vector) included.
func TestResultRowsAllocs(t *testing.T) {
	vals := [][]byte{[]byte("abc"), nil, {0x01, 0xff, 0x10}, []byte("z\n\"q"), make([]byte, 1536)}
	formats := []int16{0, 0, 1, 0, 1}
	var rr ResultRows
	for i := 0; i < 10; i++ {
		rr.AppendRow(vals, formats)
	}
	if n := testing.AllocsPerRun(100, func() {
		rr.Reset()
		for i := 0; i < 10; i++ {
			rr.AppendRow(vals, formats)
		}
	}); n != 0 {
		t.Fatalf("AppendRow: %v allocations per 10 rows, want 0", n)
	}
}

// FuzzResultRows: whatever bytes a server sends as row values (invalid
// UTF-8, control characters, quotes, NUL), the streamed JSON is exactly
// what Event.Rows encodes to and decodes back to the same values.
func FuzzResultRows(f *testing.F) {
	f.Add([]byte("abc"), []byte("\x00\"\\\u2028"), []byte{0xff, 0xfe}, uint8(0))
	f.Add([]byte(""), []byte("x"), []byte(nil), uint8(5))
	f.Fuzz(func(t *testing.T, a, b, c []byte, mode uint8) {
		vals := [][]byte{a, b, c}
		if mode&8 != 0 {
			vals[1] = nil // NULL
		}
		var formats []int16
		switch mode & 3 {
		case 1:
			formats = []int16{1}
		case 2:
			formats = []int16{0, 1, 0}
		case 3:
			formats = []int16{1, 0}
		}
		var rr ResultRows
		rr.AppendRow(vals, formats)
		rr.AppendRow(vals[:2], formats)
		rows := make([][]*string, 2)
		for k, n := range []int{3, 2} {
			rows[k] = make([]*string, n)
			for j := 0; j < n; j++ {
				if vals[j] == nil {
					continue
				}
				s := string(vals[j])
				if binaryFormat(formats, j) {
					s = `\x` + hex.EncodeToString(vals[j])
				}
				rows[k][j] = &s
			}
		}
		want := appendCanonical(nil, &Event{Rows: rows}, false)
		var withRows Event
		withRows.SetRowsJSON(rr.upTo(2))
		got := appendCanonical(nil, &withRows, false)
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
		var back Event
		if err := json.Unmarshal(got, &back); err != nil || len(back.Rows) != 2 {
			t.Fatalf("does not decode: %v %s", err, got)
		}
	})
}

// textRows builds ResultRows from text values (nil = NULL), for tests.
func textRows(rows ...[]*string) *ResultRows {
	var rr ResultRows
	for _, row := range rows {
		vals := make([][]byte, len(row))
		for i, v := range row {
			if v != nil {
				vals[i] = []byte(*v)
			}
		}
		rr.AppendRow(vals, nil)
	}
	return &rr
}

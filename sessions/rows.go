package sessions

import "unsafe"

// ResultRows is a statement's result rows for its record, kept as they
// stream in the record's canonical JSON form: appending a row copies its
// values into one reused buffer instead of allocating a string per row, so
// recording a result costs no allocation per row once the buffer has grown.
// The bytes are exactly what Event.Rows would encode to (the same escaping,
// the same \x hex for binary values), so a record written from ResultRows
// reads back as Event.Rows and verifies like any other.
//
// The zero value is empty and ready to use; Reset empties it for reuse.
type ResultRows struct {
	b    []byte // the rows' JSON arrays, comma separated
	ends []int  // end offset in b of each row
}

// Len is the number of rows appended (0 for a nil r).
func (r *ResultRows) Len() int {
	if r == nil {
		return 0
	}
	return len(r.ends)
}

// Reset empties r, keeping its buffers.
func (r *ResultRows) Reset() {
	r.b, r.ends = r.b[:0], r.ends[:0]
}

// Cap is the capacity of r's buffers in bytes (to decide whether to keep
// it for reuse).
func (r *ResultRows) Cap() int { return cap(r.b) + 8*cap(r.ends) }

// AppendRow appends one row: a nil value is NULL; a value whose format code
// is 1 (binary) is recorded as \x followed by its bytes in hex, every other
// value as text. formats are the result format codes as a Bind carries
// them: none means all text, one applies to every column, else one per
// column.
func (r *ResultRows) AppendRow(values [][]byte, formats []int16) {
	b := r.b
	if len(r.ends) > 0 {
		b = append(b, ',')
	}
	b = append(b, '[')
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case v == nil:
			b = append(b, "null"...)
		case binaryFormat(formats, i):
			b = append(b, `"\\x`...)
			for _, c := range v {
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			b = append(b, '"')
		default:
			// appendJSONString copies v into b and keeps no reference:
			// viewing it as a string without a copy is safe.
			b = appendJSONString(b, unsafe.String(unsafe.SliceData(v), len(v)))
		}
	}
	r.b = append(b, ']')
	r.ends = append(r.ends, len(r.b))
}

// upTo is the JSON of the first n rows (all when n >= Len(); nil for a nil r).
func (r *ResultRows) upTo(n int) []byte {
	if r == nil || n <= 0 || len(r.ends) == 0 {
		return nil
	}
	if n >= len(r.ends) {
		return r.b
	}
	return r.b[:r.ends[n-1]]
}

func binaryFormat(formats []int16, i int) bool {
	switch len(formats) {
	case 0:
		return false
	case 1:
		return formats[0] == 1
	}
	return i < len(formats) && formats[i] == 1
}

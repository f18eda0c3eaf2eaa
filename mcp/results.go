package mcp

import (
	"bytes"
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Result is what query and similarity_search return.
type Result struct {
	Columns []string          `json:"columns"`
	Rows    []json.RawMessage `json:"rows"` // each an array of values in column order
	// RowCount is the number of rows in Rows.
	RowCount int `json:"row_count"`
	// Truncated: the statement produced more rows than Rows holds;
	// TruncatedBy says which bound cut them (max_rows, max_bytes,
	// rows_per_hour). CommandTag still counts every row (SELECT 2000).
	Truncated   bool   `json:"truncated"`
	TruncatedBy string `json:"truncated_by,omitempty"`
	CommandTag  string `json:"command_tag"`
	// MaskedColumns are the result columns pgwarden masked (by a rule, or
	// derived from a masked column); ScannedColumns those the PII detectors
	// looked into.
	MaskedColumns  []string `json:"masked_columns,omitempty"`
	ScannedColumns []string `json:"scanned_columns,omitempty"`
	// Notices are the session's notices during the call (e.g. a wait-mode
	// approval hold), other than pgwarden's masking notice.
	Notices []string `json:"notices,omitempty"`
}

// bounds cut a result: rows (at most) and bytes of row JSON.
type bounds struct {
	rows, bytes int
	rowsBy      string // what the row bound is: max_rows or rows_per_hour
}

// readRows reads rows (requested in text format) into a Result within b.
// Rows past a bound are not kept; Close reads them to the end, so the
// command tag is complete and the connection ready for the next call.
func readRows(rows pgx.Rows, b bounds) (*Result, error) {
	defer rows.Close()
	fds := rows.FieldDescriptions()
	res := &Result{Columns: make([]string, len(fds)), Rows: []json.RawMessage{}}
	for i, fd := range fds {
		res.Columns[i] = fd.Name
	}
	size := 0
	var buf bytes.Buffer
	for rows.Next() {
		if res.Truncated {
			continue
		}
		if len(res.Rows) >= b.rows {
			res.Truncated, res.TruncatedBy = true, b.rowsBy
			continue
		}
		row := encodeRow(&buf, fds, rows.RawValues())
		if size+len(row) > b.bytes {
			res.Truncated, res.TruncatedBy = true, "max_bytes"
			continue
		}
		size += len(row)
		res.Rows = append(res.Rows, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	res.RowCount = len(res.Rows)
	res.CommandTag = rows.CommandTag().String()
	return res, nil
}

// encodeRow is one row as a JSON array. Values come in text format:
// booleans, integers, floats, numerics and json/jsonb become JSON values
// when their text is one (a masked value of such a column is a string);
// everything else is its PostgreSQL text (timestamps, uuids, vectors '[1,2]').
func encodeRow(buf *bytes.Buffer, fds []pgconn.FieldDescription, vals [][]byte) json.RawMessage {
	buf.Reset()
	buf.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			buf.WriteByte(',')
		}
		var oid uint32
		if i < len(fds) {
			oid = fds[i].DataTypeOID
		}
		appendValue(buf, oid, v)
	}
	buf.WriteByte(']')
	return json.RawMessage(bytes.Clone(buf.Bytes()))
}

// Type OIDs (pg_type.h) whose text becomes a JSON value.
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidOID     = 26
	oidJSON    = 114
	oidFloat4  = 700
	oidFloat8  = 701
	oidNumeric = 1700
	oidJSONB   = 3802
)

func appendValue(buf *bytes.Buffer, oid uint32, v []byte) {
	switch {
	case v == nil:
		buf.WriteString("null")
		return
	case oid == oidBool && len(v) == 1 && (v[0] == 't' || v[0] == 'f'):
		if v[0] == 't' {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
		return
	case oid == oidInt2 || oid == oidInt4 || oid == oidInt8 || oid == oidOID || oid == oidFloat4 || oid == oidFloat8 || oid == oidNumeric:
		if isJSONNumber(v) {
			buf.Write(v)
			return
		}
	case oid == oidJSON || oid == oidJSONB:
		if json.Valid(v) {
			if err := json.Compact(buf, v); err == nil {
				return
			}
		}
	}
	appendString(buf, v)
}

// isJSONNumber reports whether v is a number in JSON's grammar (so NaN,
// Infinity and masked text are not).
func isJSONNumber(v []byte) bool {
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case i < len(v) && v[i] >= '1' && v[i] <= '9':
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(v)
}

// appendString writes v as a JSON string (invalid UTF-8 becomes U+FFFD).
func appendString(buf *bytes.Buffer, v []byte) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(string(v))   // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode's newline
}

package masking

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/config"
)

func FuzzApply(f *testing.F) {
	rd := custRD(0)
	rd.Fields = append(rd.Fields, fd("metadata", oidDocuments, 3, oidJSONB, 1), fd("x", 0, 0, oidText, 0))
	rdb, _ := rd.Encode(nil)
	dr := row("1", "Al", "a@b.co", "123-45-6789", "555", "n", "\x01{\"email\": 1}", "x")
	drb, _ := dr.Encode(nil)
	f.Add(rdb[5:], drb[5:], []byte{0})
	f.Add(rdb[5:], drb[5:], []byte{1})
	f.Add([]byte{0, 1, 'a', 0, 0, 0, 0x40, 0x10, 0, 3, 0, 0, 0, 25, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0, 1, 0, 0, 0, 2, 'h', 'i'}, []byte{})
	e := testEngine(f, func(c *config.Masking) { c.Detectors = []string{"email", "phone", "credit_card", "ssn"} })
	f.Fuzz(func(t *testing.T, rdBody, drBody, formats []byte) {
		var rd pgproto3.RowDescription
		if rd.Decode(rdBody) != nil {
			return
		}
		var dr pgproto3.DataRow
		if dr.Decode(drBody) != nil {
			return
		}
		p, err := e.Plan(ctx, &rd, &Query{SQL: "SELECT lower(email), metadata->'a', x FROM customers, documents"})
		if err != nil || p == nil {
			return
		}
		fm := make([]int16, len(formats))
		for i, b := range formats {
			fm[i] = int16(b & 1)
		}
		out, err := p.Apply(&dr, fm)
		if err != nil {
			return
		}
		if len(out.Values) != len(dr.Values) {
			t.Fatalf("width changed")
		}
		roundTrip(t, out)
	})
}

func FuzzJSONMask(f *testing.F) {
	for _, s := range []string{`{"email": "a@b.co", "x": [1, 2, {"phone": "1"}]}`, `[]`, `"s"`, `{"em\u0061il": {"deep": [1]}}`, `{"a":"\ud83d\ude00"}`, `-1.5e3`} {
		f.Add([]byte(s))
	}
	m := &jsonMasker{keys: []jsonKey{{key: "email", method: MethodRedact}, {key: "phone", method: MethodPartial, keepLast: 2}, {key: "name", method: MethodNull}}, det: detAll}
	var sc jsonScratch
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changed, err := m.appendMasked(nil, in, &sc)
		valid := json.Valid(in)
		if err != nil {
			if valid && bytes.Count(in, []byte("[")) < maxJSONDepth/2 && bytes.Count(in, []byte("{")) < maxJSONDepth/2 {
				t.Fatalf("valid JSON refused: %q", in)
			}
			return
		}
		if !valid {
			t.Fatalf("invalid JSON accepted: %q", in)
		}
		if !changed {
			out = in
		}
		if !json.Valid(out) {
			t.Fatalf("output not JSON: %q -> %q", in, out)
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			return
		}
		var check func(any)
		check = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, val := range x {
					switch lower(k) {
					case "email":
						if val != Redacted {
							t.Fatalf("email not masked: %q -> %q", in, out)
						}
					case "name":
						if val != nil {
							t.Fatalf("name not nulled: %q -> %q", in, out)
						}
					default:
						check(val)
					}
				}
			case []any:
				for _, e := range x {
					check(e)
				}
			}
		}
		check(v)
	})
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func FuzzCopyMask(f *testing.F) {
	e := testEngine(f, nil)
	text, err := e.PlanCopy(ctx, "COPY customers (id, name, email, notes) TO STDOUT")
	if err != nil {
		f.Fatal(err)
	}
	csv, err := e.PlanCopy(ctx, "COPY customers (id, name, email, notes) TO STDOUT (FORMAT csv)")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("1\tAl\\tx\tal@ex.com\t\\N\n"))
	f.Add([]byte("1,\"A,\"\"l\",al@ex.com,\"x\ny\"\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, cp := range []*CopyPlan{text, csv} {
			out, err := cp.Apply(in)
			if err != nil {
				continue
			}
			// the output must itself parse as a row of the same width
			again, err := cp.Apply(append([]byte(nil), out...))
			if err != nil {
				t.Fatalf("masked row does not parse: %q -> %q: %v", in, out, err)
			}
			_ = again
		}
	})
}

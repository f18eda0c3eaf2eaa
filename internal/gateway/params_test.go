package gateway

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// refTextParams is textParams as it was before the parameters shared one
// copy (a string and a pointer per parameter): the reference.
func refTextParams(h *hooks, m *pgproto3.Bind, oids []uint32) []*string {
	out := make([]*string, len(m.Parameters))
	for i, v := range m.Parameters {
		if v == nil {
			continue
		}
		var s string
		if formatOf(m.ParameterFormatCodes, i) == 1 {
			var ok bool
			if i < len(oids) && oids[i] != 0 {
				s, ok = h.binaryToText(oids[i], v)
			}
			if !ok {
				s = `\x` + hex.EncodeToString(v)
			}
		} else {
			s = string(v)
		}
		out[i] = &s
	}
	return out
}

func showParams(ps []*string) string {
	var b bytes.Buffer
	for _, p := range ps {
		if p == nil {
			b.WriteString("NULL|")
		} else {
			fmt.Fprintf(&b, "%q|", *p)
		}
	}
	return b.String()
}

// TestTextParamsMatchesReference: random Binds (0–9 parameters, NULLs,
// empty values, text and binary formats, known and unknown types) give the
// reference's values; the values stay intact after the message buffer is
// reused, and a parameter's value is not changed by another's.
func TestTextParamsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	h := &hooks{}
	for i := 0; i < 5000; i++ {
		n := r.IntN(10)
		m := &pgproto3.Bind{}
		var oids []uint32
		for j := 0; j < n; j++ {
			switch r.IntN(5) {
			case 0:
				m.Parameters = append(m.Parameters, nil)
			case 1:
				m.Parameters = append(m.Parameters, []byte{})
			default:
				v := make([]byte, r.IntN(40))
				for k := range v {
					v[k] = byte(r.IntN(256))
				}
				m.Parameters = append(m.Parameters, v)
			}
			oids = append(oids, []uint32{0, 23, 20, 25}[r.IntN(4)]) // unknown, int4, int8, text
		}
		switch r.IntN(3) {
		case 1:
			m.ParameterFormatCodes = []int16{int16(r.IntN(2))}
		case 2:
			for j := 0; j < n; j++ {
				m.ParameterFormatCodes = append(m.ParameterFormatCodes, int16(r.IntN(2)))
			}
		}
		want := showParams(refTextParams(h, m, oids))
		got := (&hooks{}).textParams(m, oids, &portal{})
		for _, v := range m.Parameters { // the message buffer is reused
			for k := range v {
				v[k] = 'Z'
			}
		}
		if s := showParams(got); s != want || len(got) != n {
			t.Fatalf("bind %d: got %s want %s", i, s, want)
		}
	}
}

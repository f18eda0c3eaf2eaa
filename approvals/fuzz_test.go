package approvals

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// FuzzDecodeDecision: the approve/deny body is untrusted input.
func FuzzDecodeDecision(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"comment":"ok"}`, `{"reason":"no"}`, `{"comment":1}`, `{"x":1}`, `{} {}`, "\xff", `{"comment":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeDecision(bytes.NewReader(data))
		if err != nil {
			if kindOf(err) != ErrInvalid {
				t.Fatalf("error of kind %v: %v", kindOf(err), err)
			}
			if d != (decisionBody{}) {
				t.Fatal("error with a non-empty result")
			}
			return
		}
		if len(d.Comment)+len(d.Reason) > len(data) {
			t.Fatal("decoded more text than the input holds")
		}
	})
}

// FuzzDecodeApproval: store records are read back from disk.
func FuzzDecodeApproval(f *testing.F) {
	f.Add([]byte(`{"id":"abcdefghijklmnop","state":"pending","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"x","state":"nope"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			return
		}
		if a.ID == "" || !a.State.Valid() {
			t.Fatalf("accepted an invalid record: %+v", a)
		}
		_ = a.Clone()
	})
}

// FuzzDecodeAPIError: the CLI reads error bodies from a server.
func FuzzDecodeAPIError(f *testing.F) {
	f.Add(403, []byte(`{"error":"four eyes"}`))
	f.Add(500, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, data []byte) {
		e := decodeAPIError(status, data)
		if e.Status != status || len(e.Message) > 1000 {
			t.Fatalf("bad APIError %+v", e)
		}
	})
}

// FuzzCLIArgs: command lines never panic and usage errors exit 2 without
// any request (the client points nowhere).
func FuzzCLIArgs(f *testing.F) {
	f.Add("list --state pending")
	f.Add("deny abc --reason=x")
	f.Add("approve --comment")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		var out, errb bytes.Buffer
		c := &Client{BaseURL: "http://127.0.0.1:1"}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // never wait on the network
		code := RunCLI(ctx, args, &out, &errb, c)
		if code < 0 || code > 2 {
			t.Fatalf("exit %d", code)
		}
	})
}

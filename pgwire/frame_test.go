package pgwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func queryMsg(text string) []byte {
	b := []byte{'Q', 0, 0, 0, 0}
	b = append(b, text...)
	b = append(b, 0)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	return b
}

// A large Query's text shares the body's memory (no copy); the framer then
// never writes into that memory again, even when the next large message
// arrives before the session goes idle (a pipelined client).
func TestTakenQueryBodyIsNotReused(t *testing.T) {
	big1 := strings.Repeat("a", keepBodyCap+100)
	big2 := strings.Repeat("b", keepBodyCap+100)
	var in bytes.Buffer
	in.Write(queryMsg(big1))
	in.Write(queryMsg(big2))
	in.Write(queryMsg("SELECT 1"))
	in.Write(queryMsg("SELECT 2"))
	f := newClientFramer(bufio.NewReader(&in), 1<<20)

	var fm frontendMsgs
	var texts []string
	for range 4 {
		typ, _, err := f.next()
		if err != nil || typ != 'Q' {
			t.Fatalf("next: %q %v", typ, err)
		}
		body, err := f.body()
		if err != nil {
			t.Fatal(err)
		}
		owned := f.take()
		if want := len(body) > keepBodyCap; owned != want {
			t.Fatalf("take() = %v for a %d-byte body", owned, len(body))
		}
		msg, err := decodeFrontend(&fm, typ, body, owned)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, msg.(*pgproto3.Query).String)
	}
	for i, want := range []string{big1, big2, "SELECT 1", "SELECT 2"} {
		if i < 2 && texts[i] != want {
			t.Fatalf("query %d changed after later reads (starts %.10q)", i, texts[i])
		}
	}
	if texts[2] != "SELECT 1" || texts[3] != "SELECT 2" {
		t.Fatalf("small queries: %q %q", texts[2], texts[3])
	}
}

// An owned body is validated like pgproto3 does: one NUL, at the end.
func TestOwnedQueryDecodeRefusesMalformed(t *testing.T) {
	for _, body := range [][]byte{{}, []byte("no terminator"), []byte("two\x00nuls\x00")} {
		var fm frontendMsgs
		if _, err := decodeFrontend(&fm, 'Q', body, true); err == nil {
			t.Fatalf("%q accepted", body)
		}
	}
}

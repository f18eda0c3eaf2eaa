package pgwire

import (
	"bytes"
	"encoding/binary"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Startup-phase packet codes (no type byte; int32 length, int32 code).
const (
	sslRequestCode    = 80877103 // 1234.5679
	gssEncRequestCode = 80877104 // 1234.5680
	cancelRequestCode = 80877102 // 1234.5678
	// maxStartupPacket is PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
	maxStartupPacket = 10000
)

type packetKind int

const (
	kindStartup packetKind = iota
	kindSSL
	kindGSS
	kindCancel
)

// startupPacket is one decoded startup-phase packet.
type startupPacket struct {
	kind   packetKind
	major  uint16
	minor  uint16
	params []param // StartupMessage parameters in order (duplicates: last wins on lookup)
	cancel pgproto3.CancelRequest
}

type param struct{ key, value string }

func (p *startupPacket) get(key string) (string, bool) {
	v, ok := "", false
	for _, kv := range p.params {
		if kv.key == key {
			v, ok = kv.value, true
		}
	}
	return v, ok
}

var (
	errStartupLength   = pgerr.Fatal(pgerr.ProtocolViolation, "invalid length of startup packet")
	errStartupFormat   = pgerr.Fatal(pgerr.ProtocolViolation, "invalid startup packet layout")
	errStartupProtocol = pgerr.Fatal(pgerr.FeatureNotSupported, "unsupported frontend protocol")
)

// readStartupPacket reads exactly one startup-phase packet from r. It never
// reads beyond the packet (so no plaintext can hide behind an SSLRequest)
// and never allocates more than maxStartupPacket bytes, whatever length
// the client claims. Errors are *pgerr.Error values for malformed input,
// or the reader's error (io.EOF when the client went away).
func readStartupPacket(r io.Reader) (startupPacket, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return startupPacket{}, err
	}
	n := int64(int32(binary.BigEndian.Uint32(hdr[:]))) - 4
	if n < 4 || n > maxStartupPacket {
		return startupPacket{}, errStartupLength
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return startupPacket{}, unexpectedEOF(err)
	}
	return decodeStartupPacket(body)
}

// decodeStartupPacket decodes the body (after the length) of a startup packet.
func decodeStartupPacket(body []byte) (startupPacket, error) {
	var p startupPacket
	if len(body) < 4 {
		return p, errStartupLength
	}
	code := binary.BigEndian.Uint32(body)
	switch code {
	case sslRequestCode:
		if len(body) != 4 {
			return p, errStartupLength
		}
		p.kind = kindSSL
		return p, nil
	case gssEncRequestCode:
		if len(body) != 4 {
			return p, errStartupLength
		}
		p.kind = kindGSS
		return p, nil
	case cancelRequestCode:
		if err := p.cancel.Decode(body); err != nil {
			return p, errStartupLength
		}
		p.kind = kindCancel
		return p, nil
	}
	p.kind = kindStartup
	p.major, p.minor = uint16(code>>16), uint16(code)
	if p.major != 3 {
		return p, errStartupProtocol
	}
	rest := body[4:]
	for {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return p, errStartupFormat
		}
		if i == 0 { // terminator
			if len(rest) != 1 {
				return p, errStartupFormat
			}
			return p, nil
		}
		key := string(rest[:i])
		rest = rest[i+1:]
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return p, errStartupFormat
		}
		p.params = append(p.params, param{key, string(rest[:j])})
		rest = rest[j+1:]
	}
}

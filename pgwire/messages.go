package pgwire

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

	"github.com/jackc/pgx/v5/pgproto3"
)

// frontendMsgs are per-session flyweights for decoding wanted client
// messages (reused: hooks copy what they keep).
type frontendMsgs struct {
	query        pgproto3.Query
	parse        pgproto3.Parse
	bind         pgproto3.Bind
	describe     pgproto3.Describe
	execute      pgproto3.Execute
	close        pgproto3.Close
	sync         pgproto3.Sync
	flush        pgproto3.Flush
	functionCall pgproto3.FunctionCall
	copyData     pgproto3.CopyData
	copyDone     pgproto3.CopyDone
	copyFail     pgproto3.CopyFail
	terminate    pgproto3.Terminate
}

// decodeFrontend decodes a client message body of type typ. owned says
// that body is never written again (framer.take): a Query's text then
// shares its memory instead of being copied (a 75 KB INSERT of vectors
// would otherwise be allocated twice per statement).
func decodeFrontend(m *frontendMsgs, typ byte, body []byte, owned bool) (pgproto3.FrontendMessage, error) {
	var msg pgproto3.FrontendMessage
	switch typ {
	case 'Q':
		if owned {
			// pgproto3's Query.Decode, without the copy: exactly one NUL,
			// at the end.
			if i := bytes.IndexByte(body, 0); len(body) == 0 || i != len(body)-1 {
				return nil, errors.New("invalid Query message format")
			}
			m.query.String = unsafe.String(&body[0], len(body)-1)
			return &m.query, nil
		}
		msg = &m.query
	case 'P':
		msg = &m.parse
	case 'B':
		msg = &m.bind
	case 'D':
		msg = &m.describe
	case 'E':
		msg = &m.execute
	case 'C':
		msg = &m.close
	case 'S':
		msg = &m.sync
	case 'H':
		msg = &m.flush
	case 'F':
		msg = &m.functionCall
	case 'd':
		msg = &m.copyData
	case 'c':
		msg = &m.copyDone
	case 'f':
		msg = &m.copyFail
	case 'X':
		msg = &m.terminate
	default:
		return nil, fmt.Errorf("unknown client message type %q", typ)
	}
	if err := msg.Decode(body); err != nil {
		return nil, err
	}
	return msg, nil
}

// backendMsgs are per-session flyweights for wanted server messages.
type backendMsgs struct {
	authOK          pgproto3.AuthenticationOk
	backendKeyData  pgproto3.BackendKeyData
	bindComplete    pgproto3.BindComplete
	closeComplete   pgproto3.CloseComplete
	commandComplete pgproto3.CommandComplete
	copyBoth        pgproto3.CopyBothResponse
	copyData        pgproto3.CopyData
	copyDone        pgproto3.CopyDone
	copyIn          pgproto3.CopyInResponse
	copyOut         pgproto3.CopyOutResponse
	dataRow         pgproto3.DataRow
	emptyQuery      pgproto3.EmptyQueryResponse
	errorResponse   pgproto3.ErrorResponse
	functionCallRes pgproto3.FunctionCallResponse
	noData          pgproto3.NoData
	notice          pgproto3.NoticeResponse
	notification    pgproto3.NotificationResponse
	paramDesc       pgproto3.ParameterDescription
	paramStatus     pgproto3.ParameterStatus
	parseComplete   pgproto3.ParseComplete
	portalSuspended pgproto3.PortalSuspended
	readyForQuery   pgproto3.ReadyForQuery
	rowDescription  pgproto3.RowDescription
	negotiate       pgproto3.NegotiateProtocolVersion
}

// decodeBackend decodes a server message body of type typ.
func decodeBackend(m *backendMsgs, typ byte, body []byte) (pgproto3.BackendMessage, error) {
	var msg pgproto3.BackendMessage
	switch typ {
	case 'R':
		msg = &m.authOK // only AuthenticationOk can follow a hijacked startup
	case 'K':
		msg = &m.backendKeyData
	case '2':
		msg = &m.bindComplete
	case '3':
		msg = &m.closeComplete
	case 'C':
		msg = &m.commandComplete
	case 'W':
		msg = &m.copyBoth
	case 'd':
		msg = &m.copyData
	case 'c':
		msg = &m.copyDone
	case 'G':
		msg = &m.copyIn
	case 'H':
		msg = &m.copyOut
	case 'D':
		msg = &m.dataRow
	case 'I':
		msg = &m.emptyQuery
	case 'E':
		msg = &m.errorResponse
	case 'V':
		msg = &m.functionCallRes
	case 'n':
		msg = &m.noData
	case 'N':
		msg = &m.notice
	case 'A':
		msg = &m.notification
	case 't':
		msg = &m.paramDesc
	case 'S':
		msg = &m.paramStatus
	case '1':
		msg = &m.parseComplete
	case 's':
		msg = &m.portalSuspended
	case 'Z':
		msg = &m.readyForQuery
	case 'T':
		msg = &m.rowDescription
	case 'v':
		msg = &m.negotiate
	default:
		return nil, fmt.Errorf("unknown server message type %q", typ)
	}
	if err := msg.Decode(body); err != nil {
		return nil, err
	}
	return msg, nil
}

// msgName names a message type byte for error messages.
func msgName(typ byte) string {
	if typ >= 0x20 && typ < 0x7f {
		return fmt.Sprintf("%q", typ)
	}
	return fmt.Sprintf("0x%02x", typ)
}

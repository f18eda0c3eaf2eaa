package gateway

import (
	"time"

	"github.com/pgwarden/pgwarden/masking"
)

// The protocol tracker: which server response belongs to which client
// request. Every client message that PostgreSQL answers is pushed on a FIFO
// when it is forwarded; server messages are matched against its head. This
// is what lets a RowDescription find its SQL (for derived-value tracing), a
// DataRow find its masking plan, and a CommandComplete close its statement's
// record.

type expectKind uint8

const (
	expQuery   expectKind = iota // simple Query: results per statement, then ReadyForQuery
	expParse                     // ParseComplete
	expBind                      // BindComplete
	expDescS                     // ParameterDescription, then RowDescription | NoData
	expDescP                     // RowDescription | NoData
	expExecute                   // DataRow* then CommandComplete | EmptyQueryResponse | PortalSuspended (or Copy*)
	expClose                     // CloseComplete
	expSync                      // ReadyForQuery
	expFunc                      // FunctionCallResponse, then ReadyForQuery
)

// run is one statement being executed: where its rows come from and what
// gets recorded about it.
type run struct {
	sql      string   // statement text (for masking traces and the record)
	full     string   // the whole query string it belongs to
	idx      int      // index of the statement inside full
	actions  []string // for the record
	decision string
	params   []*string
	approval string
	start    time.Time

	// set when the RowDescription arrives (or from a prepared statement/portal)
	described bool          // a RowDescription is known for the rows
	plan      *masking.Plan // what the client receives (nil: pass through)
	recPlan   *masking.Plan // what the record receives (always masked)
	formats   []int16
	columns   []string
	rows      [][]*string
	copyPlan  *masking.CopyPlan
}

// expect is one pending server response.
type expect struct {
	kind expectKind
	name string // statement (Parse/DescS/Close S) or portal (Bind/DescP/Execute) name
	// expQuery: its statements in order and the one currently answering
	runs []*run
	cur  int
	// expExecute: the statement run
	run *run
	// expDescS / expDescP: where the RowDescription is stored
	stmt   *prepared
	portal *portal
}

// prepared is an extended-protocol prepared statement as the gateway knows it.
type prepared struct {
	name     string
	sql      string
	actions  []string
	deferred bool // needs an approval or planner estimate at Execute time
	rd       *rowDesc
}

// portal is a bound portal.
type portal struct {
	name    string
	stmt    *prepared
	params  []*string
	formats []int16 // result format codes as the client asked
	rd      *rowDesc
}

// rowDesc is a remembered RowDescription with the plans built from it.
type rowDesc struct {
	columns []string
	plan    *masking.Plan
	recPlan *masking.Plan
	formats []int16 // from the RowDescription (Describe of a portal knows them)
}

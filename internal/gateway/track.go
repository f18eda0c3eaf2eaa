package gateway

import (
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/sessions"
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
	rows      *sessions.ResultRows // recorded rows (from rowsPool), nil before the first
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
	name    string
	sql     string
	maskSQL string // for a Parse of EXECUTE: the PREPARE masking traces
	// parameter types from Parse, then from the server's ParameterDescription
	// (written by the server goroutine before the Bind that reads it is answered)
	paramOIDs []uint32
	actions   []string
	deferred  bool // needs an approval or planner estimate at Execute time
	rd        *rowDesc
	// lastRD is the plans built for the last RowDescription of a Describe
	// of this statement or of one of its portals: drivers (libpq's
	// PQexecPrepared, pgbench -M prepared) describe the portal on every
	// execution, and the answer is the same each time. Reused only while
	// the fields are identical and the catalog generation has not changed,
	// so it is exactly what describe would build again. Server goroutine only.
	lastRD *rdCache
}

// rdCache is a RowDescription (its fields copied) and the rowDesc built from it.
type rdCache struct {
	fields []pgproto3.FieldDescription // names copied out of the message buffer
	gen    uint64                      // catalog generation it was built in
	rd     *rowDesc
}

// matches reports whether m has exactly the cached fields.
func (c *rdCache) matches(m *pgproto3.RowDescription, gen uint64) bool {
	if c == nil || c.gen != gen || len(c.fields) != len(m.Fields) {
		return false
	}
	for i := range m.Fields {
		a, b := &c.fields[i], &m.Fields[i]
		if a.TableOID != b.TableOID || a.TableAttributeNumber != b.TableAttributeNumber ||
			a.DataTypeOID != b.DataTypeOID || a.DataTypeSize != b.DataTypeSize ||
			a.TypeModifier != b.TypeModifier || a.Format != b.Format || string(a.Name) != string(b.Name) {
			return false
		}
	}
	return true
}

func newRDCache(m *pgproto3.RowDescription, gen uint64, rd *rowDesc) *rdCache {
	c := &rdCache{fields: make([]pgproto3.FieldDescription, len(m.Fields)), gen: gen, rd: rd}
	for i, f := range m.Fields {
		f.Name = append([]byte(nil), f.Name...)
		c.fields[i] = f
	}
	return c
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
}

// traceSQL is the SQL masking traces for the statement's rows.
func (p *prepared) traceSQL() string {
	if p.maskSQL != "" {
		return p.maskSQL
	}
	return p.sql
}

package gateway

import (
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/pgwire"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

// What the gateway keeps about requests, prepared statements and portals.
// Which server response belongs to which client request, and which
// statements and portals exist, is pgwire's protocol tracker
// (pgwire.Tracker); the gateway hangs its own data on it: a *run on each
// Execute request and on each statement of a Query (Verdict.Data,
// QueryStatement.Data), a *prepared on each pgwire.Statement, a *portal on
// each pgwire.Portal. This is what lets a RowDescription find its SQL (for
// derived-value tracing), a DataRow find its masking plan, and a
// CommandComplete close its statement's record.

// run is one statement being executed: where its rows come from and what
// gets recorded about it.
type run struct {
	sql  string // statement text (for masking traces and the record)
	full string // the whole query string it belongs to
	idx  int    // index of the statement inside full
	// execName is the prepared statement an EXECUTE runs: its rows are
	// traced with the PREPARE the server has when they arrive.
	execName string
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

// prepared is the gateway's data of a prepared statement (pgwire.Statement.Data):
// a protocol-level Parse or a SQL PREPARE.
type prepared struct {
	// policy is the statement as classified (an EXECUTE unresolved: it is
	// resolved against the prepared statements of the moment at every Execute).
	policy sqlpolicy.Statement
	// parameter types from Parse, then from the server's ParameterDescription
	// (written by the server goroutine before the Bind that reads it is answered)
	paramOIDs []uint32
	actions   []string
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
	trace  string                      // the SQL masking traced
	rd     *rowDesc
}

// matches reports whether m has exactly the cached fields.
func (c *rdCache) matches(m *pgproto3.RowDescription, gen uint64, trace string) bool {
	if c == nil || c.gen != gen || c.trace != trace || len(c.fields) != len(m.Fields) {
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

func newRDCache(m *pgproto3.RowDescription, gen uint64, trace string, rd *rowDesc) *rdCache {
	c := &rdCache{fields: make([]pgproto3.FieldDescription, len(m.Fields)), gen: gen, trace: trace, rd: rd}
	for i, f := range m.Fields {
		f.Name = append([]byte(nil), f.Name...)
		c.fields[i] = f
	}
	return c
}

// portal is the gateway's data of a portal (pgwire.Portal.Data): a Bind,
// or a SQL DECLARE (cursor: its rows are traced with the DECLARE).
type portal struct {
	params []*string
	// inline holds up to four parameters' values (params points into it)
	inline    [4]string
	inlinePtr [4]*string
	formats   []int16 // result format codes as the client asked
	actions   []string
	rd        *rowDesc
}

// rowDesc is a remembered RowDescription with the plans built from it.
type rowDesc struct {
	columns []string
	plan    *masking.Plan
	recPlan *masking.Plan
	// target is, for a statement whose text is an EXECUTE, the prepared
	// statement it ran when described: rows of another one (DEALLOCATE
	// and PREPARE since) do not fit this description.
	target *pgwire.Statement
}

package gateway

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func TestRowDescCacheMatches(t *testing.T) {
	m := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("email"), TableOID: oidCustomers, TableAttributeNumber: 3, DataTypeOID: oidText, DataTypeSize: -1, TypeModifier: -1},
	}}
	c := newRDCache(m, 7, "q", &rowDesc{})
	if !c.matches(m, 7, "q") {
		t.Fatal("identical description does not match")
	}
	if c.matches(m, 8, "q") {
		t.Fatal("matches across a catalog generation change")
	}
	m.Fields[0].Name[0] = 'E' // the message buffer is reused: the cache keeps its own copy
	if c.matches(m, 7, "q") {
		t.Fatal("matches a renamed column")
	}
	m.Fields[0].Name[0] = 'e'
	for _, change := range []func(f *pgproto3.FieldDescription){
		func(f *pgproto3.FieldDescription) { f.TableOID++ },
		func(f *pgproto3.FieldDescription) { f.TableAttributeNumber++ },
		func(f *pgproto3.FieldDescription) { f.DataTypeOID++ },
		func(f *pgproto3.FieldDescription) { f.Format = 1 },
	} {
		m2 := &pgproto3.RowDescription{Fields: append([]pgproto3.FieldDescription(nil), m.Fields...)}
		change(&m2.Fields[0])
		if c.matches(m2, 7, "q") {
			t.Fatalf("matches a changed field %+v", m2.Fields[0])
		}
	}
	if c.matches(&pgproto3.RowDescription{}, 7, "q") || (*rdCache)(nil).matches(m, 7, "q") {
		t.Fatal("matches a different width / nil cache")
	}
}

// A prepared statement executed twice with a portal Describe each time
// reuses its masking plan, and still masks; a different description of
// the same statement gets a fresh plan.
func TestPreparedDescribeReusesPlan(t *testing.T) {
	g := benchGateway(t, true, false)
	h := ingestHooks(t, g)
	client(t, h, &pgproto3.Parse{Name: "s", Query: "SELECT id, email FROM customers"})
	server(t, h, &pgproto3.ParseComplete{})
	rd := func(name string) *pgproto3.RowDescription {
		return &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
			{Name: []byte("id"), TableOID: oidCustomers, TableAttributeNumber: 1, DataTypeOID: oidInt4, DataTypeSize: 4, TypeModifier: -1},
			{Name: []byte(name), TableOID: oidCustomers, TableAttributeNumber: 3, DataTypeOID: oidText, DataTypeSize: -1, TypeModifier: -1},
		}}
	}
	var plans []any
	for i, name := range []string{"email", "email", "mail"} {
		client(t, h, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
		server(t, h, &pgproto3.BindComplete{}, rd(name))
		if !h.WantServer('D') {
			t.Fatalf("run %d: rows not inspected", i)
		}
		out, err := h.OnServer(&pgproto3.DataRow{Values: [][]byte{[]byte("1"), []byte("someone@example.com")}})
		if err != nil {
			t.Fatal(err)
		}
		if v := string(out.(*pgproto3.DataRow).Values[1]); v == "someone@example.com" {
			t.Fatalf("run %d: email not masked", i)
		}
		plans = append(plans, h.active.plan)
		server(t, h, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	if plans[0] != plans[1] {
		t.Fatal("same description: plan rebuilt")
	}
	if plans[1] == plans[2] {
		t.Fatal("different description: plan reused")
	}
}

// The read-only fast path of maskRefusal never lets a write of masked
// values through: the write is refused, the plain read is not checked.
func TestMaskRefusalFastPathKeepsWriteCheck(t *testing.T) {
	g := benchGateway(t, true, false)
	ctx := context.Background()
	h := ingestHooks(t, g)
	for sql, refused := range map[string]bool{
		"SELECT id, email FROM customers WHERE id = 1":                                                   false,
		"INSERT INTO ingest (title) SELECT email FROM customers":                                         true,
		"WITH x AS (INSERT INTO ingest (title) SELECT email FROM customers RETURNING 1) SELECT * FROM x": true,
		"SELECT email INTO copied FROM customers":                                                        true,
	} {
		v := h.OnClient(ctx, &pgproto3.Query{String: sql})
		if (v.Refuse != nil) != refused {
			t.Errorf("%s: refused=%v (%v), want %v", sql, v.Refuse != nil, v.Refuse, refused)
		}
		h.OnServer(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
}

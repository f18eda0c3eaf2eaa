package masking

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/config"
)

// fakeCatalog is a unit-test Catalog (integration tests use PGCatalog).
type fakeCatalog struct {
	cols  map[uint32]map[int16]ColumnRef
	views map[string][]string
	tabs  map[string][]string
}

func (f *fakeCatalog) Column(_ context.Context, oid uint32, att int16) (ColumnRef, bool, error) {
	c, ok := f.cols[oid][att]
	return c, ok, nil
}

func (f *fakeCatalog) ViewsNamed(_ context.Context, schema, name string) ([]string, error) {
	return f.views[name], nil
}

func (f *fakeCatalog) TableColumns(_ context.Context, schema, name string) ([]string, error) {
	return f.tabs[name], nil
}

const (
	oidCustomers = 16400
	oidDocuments = 16500
	oidVCust     = 16600
	oidInt4      = 23
	oidInt8      = 20
	oidVector    = 17000
	oidFloat8    = 701
)

func testCatalog() *fakeCatalog {
	cust := map[int16]ColumnRef{}
	for i, c := range []struct {
		n string
		t uint32
	}{{"id", oidInt4}, {"name", oidText}, {"email", oidText}, {"ssn", oidText}, {"phone", oidVarchar}, {"card", oidText}, {"notes", oidText}} {
		cust[int16(i+1)] = ColumnRef{Schema: "public", Table: "customers", Column: c.n, TypeOID: c.t, Attnum: int16(i + 1)}
	}
	docs := map[int16]ColumnRef{
		1: {Schema: "public", Table: "documents", Column: "id", TypeOID: oidInt4},
		2: {Schema: "public", Table: "documents", Column: "title", TypeOID: oidText},
		3: {Schema: "public", Table: "documents", Column: "metadata", TypeOID: oidJSONB},
		4: {Schema: "public", Table: "documents", Column: "embedding", TypeOID: oidVector},
	}
	vdef := "SELECT customers.id, customers.email, upper(customers.name) AS uname FROM customers"
	vc := map[int16]ColumnRef{
		1: {Schema: "public", Table: "v_cust", Column: "id", ViewDef: vdef, Attnum: 1},
		2: {Schema: "public", Table: "v_cust", Column: "email", ViewDef: vdef, Attnum: 2},
		3: {Schema: "public", Table: "v_cust", Column: "uname", ViewDef: vdef, Attnum: 3},
	}
	return &fakeCatalog{
		cols:  map[uint32]map[int16]ColumnRef{oidCustomers: cust, oidDocuments: docs, oidVCust: vc},
		views: map[string][]string{"v_cust": {vdef}},
		tabs: map[string][]string{
			"customers": {"id", "name", "email", "ssn", "phone", "card", "notes"},
			"documents": {"id", "title", "metadata", "embedding"},
			"orders":    {"id", "cid", "note"},
		},
	}
}

func testConfig() config.Masking {
	return config.Masking{
		HMACKey: "k3y",
		Rules: []config.MaskRule{
			{Table: "public.customers", Column: "email", Method: "email"},
			{Table: "public.customers", Column: "ssn", Method: "partial", KeepLast: 4},
			{Table: "customers", Column: "name", Method: "redact"},
			{Table: "public.documents", Column: "metadata", JSONKeys: []string{"email", "phone", "name"}, Method: "redact"},
			{Table: "public.documents", Column: "embedding", Method: "null"},
			{Column: "phone", Method: "hash"},
		},
		Derived: "mask",
	}
}

func testEngine(t testing.TB, mut func(*config.Masking)) *Engine {
	t.Helper()
	cfg := testConfig()
	if mut != nil {
		mut(&cfg)
	}
	e, err := New(cfg, testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fd(name string, table uint32, att uint16, typ uint32, format int16) pgproto3.FieldDescription {
	return pgproto3.FieldDescription{Name: []byte(name), TableOID: table, TableAttributeNumber: att, DataTypeOID: typ, Format: format}
}

func row(vals ...any) *pgproto3.DataRow {
	r := &pgproto3.DataRow{}
	for _, v := range vals {
		switch x := v.(type) {
		case nil:
			r.Values = append(r.Values, nil)
		case string:
			r.Values = append(r.Values, []byte(x))
		case []byte:
			r.Values = append(r.Values, x)
		}
	}
	return r
}

// roundTrip encodes the row as a wire message and decodes it again, so
// tests check the framing the client sees.
func roundTrip(t testing.TB, r *pgproto3.DataRow) *pgproto3.DataRow {
	t.Helper()
	buf, err := r.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if buf[0] != 'D' {
		t.Fatalf("type %c", buf[0])
	}
	n := int(buf[1])<<24 | int(buf[2])<<16 | int(buf[3])<<8 | int(buf[4])
	if n != len(buf)-1 {
		t.Fatalf("length field %d, message %d", n, len(buf)-1)
	}
	var out pgproto3.DataRow
	if err := out.Decode(buf[5:]); err != nil {
		t.Fatal(err)
	}
	return &out
}

package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/pgwire"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

// The hooks' per-transaction cost, without sockets: what pgwarden adds to
// a prepared-statement round trip (pgbench -M prepared: Bind, Describe
// portal, Execute, Sync) on top of relaying bytes.

const (
	oidCustomers = 16400
	oidText      = 25
	oidInt4      = 23
)

type fakeCatalog struct{}

func (fakeCatalog) Column(_ context.Context, table uint32, attnum int16) (masking.ColumnRef, bool, error) {
	if table != oidCustomers {
		return masking.ColumnRef{}, false, nil
	}
	cols := []string{"", "id", "name", "email", "phone", "ssn", "credit_card", "address", "notes"}
	if int(attnum) >= len(cols) || attnum < 1 {
		return masking.ColumnRef{}, false, nil
	}
	typ := uint32(oidText)
	if attnum == 1 {
		typ = oidInt4
	}
	return masking.ColumnRef{Schema: "public", Table: "customers", Column: cols[attnum], TypeOID: typ}, true, nil
}

type fakeSession struct {
	info pgwire.SessionInfo
	tr   *pgwire.Tracker
}

func (s *fakeSession) Tracker() *pgwire.Tracker { return s.tr }
func (s *fakeSession) WatchClient() func()      { return func() {} }

func (s *fakeSession) Info() pgwire.SessionInfo              { return s.info }
func (s *fakeSession) Notice(*pgproto3.NoticeResponse) error { return nil }
func (s *fakeSession) Terminate(*pgerr.Error)                {}
func (s *fakeSession) Query(context.Context, string, ...string) ([][]string, error) {
	return nil, nil
}

func benchGateway(b testing.TB, mask, record bool) *Gateway {
	b.Helper()
	cfg := config.Default()
	cfg.Policy.Roles = map[string]config.Role{"ingest": {Actions: []string{"search", "read", "insert"}, DBRole: "vector_writer"}}
	if mask {
		cfg.Masking.HMACKey = "bench-key"
		cfg.Masking.Rules = []config.MaskRule{
			{Table: "public.customers", Column: "email", Method: "email"},
			{Table: "public.customers", Column: "ssn", Method: "partial", KeepLast: 4},
			{Table: "public.customers", Column: "name", Method: "redact"},
		}
		cfg.Masking.Detectors = []string{"email", "phone", "credit_card", "ssn"}
	}
	cfg.Recording.Results = record
	g := &Gateway{cfg: cfg, log: zerolog.Nop(), live: map[string]*hooks{}}
	g.classifier = sqlpolicy.NewClassifier(4096)
	p := &profile{name: config.DefaultProfile, policy: sqlpolicy.NewPolicy(cfg.Policy), maskCfg: cfg.Masking, maskActive: mask, dbs: map[string]*dbView{}}
	v := &dbView{}
	var err error
	if v.masker, err = masking.New(cfg.Masking, fakeCatalog{}); err != nil {
		b.Fatal(err)
	}
	p.dbs["vectors"] = v
	g.profiles = map[string]*profile{p.name: p}
	if record {
		if g.recorder, err = sessions.Open(cfg.Recording, config.Store{Dir: b.TempDir()}, zerolog.Nop(), nil); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = g.recorder.Close() })
	}
	return g
}

// ingestHooks opens the hooks of a session of the ingest group on g.
func ingestHooks(tb testing.TB, g *Gateway) *hooks {
	tb.Helper()
	s := &fakeSession{tr: pgwire.NewTracker(), info: pgwire.SessionInfo{ID: "bench", Principal: identity.Principal{User: "bench@example.com", Groups: []string{"ingest"}}, Database: "vectors", Profile: config.DefaultProfile, BackendUser: "pgw_bench"}}
	hk, err := g.newHooks(context.Background(), s)
	if err != nil {
		tb.Fatal(err)
	}
	return hk.(*hooks)
}

// benchPrepared runs one prepared statement returning rows rows of the
// customers' (id, name, email, ssn) per iteration.
func benchPrepared(b *testing.B, mask, record bool, rows int) {
	g := benchGateway(b, mask, record)
	h := ingestHooks(b, g)
	defer h.Close("client_closed", nil)
	sql := "SELECT id, name, email, ssn FROM customers WHERE id > $1 LIMIT 10"
	client(b, h, &pgproto3.Parse{Name: "P0_1", Query: sql}, &pgproto3.Sync{})
	server(b, h, &pgproto3.ParseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'})

	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("id"), TableOID: oidCustomers, TableAttributeNumber: 1, DataTypeOID: oidInt4, DataTypeSize: 4, TypeModifier: -1},
		{Name: []byte("name"), TableOID: oidCustomers, TableAttributeNumber: 2, DataTypeOID: oidText, DataTypeSize: -1, TypeModifier: -1},
		{Name: []byte("email"), TableOID: oidCustomers, TableAttributeNumber: 3, DataTypeOID: oidText, DataTypeSize: -1, TypeModifier: -1},
		{Name: []byte("ssn"), TableOID: oidCustomers, TableAttributeNumber: 5, DataTypeOID: oidText, DataTypeSize: -1, TypeModifier: -1},
	}}
	row := &pgproto3.DataRow{Values: [][]byte{[]byte("12345"), []byte("Customer 12345"), []byte("customer12345@example.com"), []byte("123-45-6789")}}
	bind := &pgproto3.Bind{PreparedStatement: "P0_1", Parameters: [][]byte{[]byte("42")}}
	desc := &pgproto3.Describe{ObjectType: 'P'}
	exec := &pgproto3.Execute{}
	sync := &pgproto3.Sync{}
	cc := &pgproto3.CommandComplete{CommandTag: []byte("SELECT 10")}
	rfq := &pgproto3.ReadyForQuery{TxStatus: 'I'}
	bindComplete := &pgproto3.BindComplete{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		client(b, h, bind, desc, exec, sync)
		server(b, h, bindComplete, rd)
		for r := 0; r < rows; r++ {
			if h.WantServer('D') {
				out, err := h.OnServer(row)
				if err != nil {
					b.Fatal(err)
				}
				if mask && string(out.(*pgproto3.DataRow).Values[2]) == "customer12345@example.com" {
					b.Fatal("email not masked")
				}
			}
		}
		server(b, h, cc, rfq)
	}
	b.StopTimer()
	if n := h.tr.Pending(); n != 0 {
		b.Fatalf("%d requests left", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
	_ = time.Now
}

// client passes msgs through the hooks and the tracker as the relay does.
func client(tb testing.TB, h *hooks, msgs ...pgproto3.FrontendMessage) {
	tb.Helper()
	for _, m := range msgs {
		var v pgwire.Verdict
		if h.WantClient(frontendType(m)) {
			v = h.OnClient(context.Background(), m)
		}
		if v.Refuse != nil {
			tb.Fatal(v.Refuse)
		}
		h.tr.Client(m, v)
	}
}

// server passes msgs through the hooks (if wanted) and the tracker as the relay does.
func server(tb testing.TB, h *hooks, msgs ...pgproto3.BackendMessage) {
	tb.Helper()
	for _, m := range msgs {
		if h.WantServer(typeOf(m)) {
			if _, err := h.OnServer(m); err != nil {
				tb.Fatal(err)
			}
		}
		h.tr.Server(m)
	}
}

func frontendType(m pgproto3.FrontendMessage) byte {
	switch m.(type) {
	case *pgproto3.Query:
		return 'Q'
	case *pgproto3.Parse:
		return 'P'
	case *pgproto3.Bind:
		return 'B'
	case *pgproto3.Describe:
		return 'D'
	case *pgproto3.Execute:
		return 'E'
	case *pgproto3.Close:
		return 'C'
	case *pgproto3.Sync:
		return 'S'
	}
	return 0
}

func typeOf(m pgproto3.BackendMessage) byte {
	switch m.(type) {
	case *pgproto3.ParseComplete:
		return '1'
	case *pgproto3.BindComplete:
		return '2'
	case *pgproto3.RowDescription:
		return 'T'
	case *pgproto3.CommandComplete:
		return 'C'
	case *pgproto3.ReadyForQuery:
		return 'Z'
	}
	return 0
}
func BenchmarkHooksPrepared10RowsPlain(b *testing.B)          { benchPrepared(b, false, false, 10) }
func BenchmarkHooksPrepared10RowsMasked(b *testing.B)         { benchPrepared(b, true, false, 10) }
func BenchmarkHooksPrepared10RowsMaskedRecorded(b *testing.B) { benchPrepared(b, true, true, 10) }
func BenchmarkHooksPrepared1RowRecorded(b *testing.B)         { benchPrepared(b, false, true, 1) }

package masking

import (
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/config"
)

func benchApply(b *testing.B, p *Plan, r *pgproto3.DataRow) {
	size := 0
	for _, v := range r.Values {
		size += len(v) + 4
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Apply(r, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// 10 columns, one masked (email method).
func BenchmarkApply10Cols1Masked(b *testing.B) {
	e := testEngine(b, nil)
	rd := &pgproto3.RowDescription{}
	r := &pgproto3.DataRow{}
	for i := 0; i < 10; i++ {
		if i == 3 {
			rd.Fields = append(rd.Fields, fd("email", oidCustomers, 3, oidText, 0))
			r.Values = append(r.Values, []byte("zelda.quartermaine@example.com"))
			continue
		}
		rd.Fields = append(rd.Fields, fd("c"+strconv.Itoa(i), oidDocuments, 1, oidInt4, 0))
		r.Values = append(r.Values, []byte("1234567"+strconv.Itoa(i)))
	}
	p, err := e.Plan(ctx, rd, &Query{SQL: "SELECT * FROM t"})
	if err != nil || p == nil {
		b.Fatal(p, err)
	}
	benchApply(b, p, r)
}

// One jsonb document (binary format) with 3 masked keys among others.
func BenchmarkApplyJSONB3Keys(b *testing.B) {
	e := testEngine(b, nil)
	p := jsonPlanB(b, e)
	doc := `{"title": "Quarterly report on vector search", "author": {"name": "Wilhelmina Fairweather", "email": "wil.f@corp.example", "dept": "research"}, "contacts": [{"phone": "+1 202 555 0147", "role": "owner"}], "tags": ["finance", "q3", "internal"], "pages": 42, "summary": "` + strings.Repeat("lorem ipsum ", 20) + `"}`
	benchApply(b, p, row("\x01"+doc))
}

func jsonPlanB(b *testing.B, e *Engine) *Plan {
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{fd("metadata", oidDocuments, 3, oidJSONB, 1)}}
	p, err := e.Plan(ctx, rd, &Query{SQL: "SELECT metadata FROM documents"})
	if err != nil || p == nil {
		b.Fatal(p, err)
	}
	return p
}

func vector384() []byte {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := 0; i < 384; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatFloat(float64(i%97)/97.0-0.5, 'g', 8, 64))
	}
	sb.WriteByte(']')
	return []byte(sb.String())
}

// A 384-dim vector column left alone next to a masked email column: the
// vector bytes are referenced, not copied.
func BenchmarkApplyVector384PassThrough(b *testing.B) {
	e := testEngine(b, func(c *config.Masking) { c.Rules = c.Rules[:1] })
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		fd("id", oidDocuments, 1, oidInt4, 0), fd("embedding", oidDocuments, 4, oidVector, 0), fd("email", oidCustomers, 3, oidText, 0)}}
	p, err := e.Plan(ctx, rd, &Query{SQL: "SELECT d.id, d.embedding, c.email FROM documents d, customers c"})
	if err != nil || p == nil || p.Masked(1) {
		b.Fatal(p, err)
	}
	benchApply(b, p, row("7", vector384(), "zelda@example.com"))
}

// Detectors on 10 text columns no rule covers.
func BenchmarkApplyDetectors10Text(b *testing.B) {
	e := testEngine(b, func(c *config.Masking) { c.Detectors = []string{"email", "phone", "credit_card", "ssn"} })
	rd := &pgproto3.RowDescription{}
	r := &pgproto3.DataRow{}
	for i := 0; i < 10; i++ {
		rd.Fields = append(rd.Fields, fd("t"+strconv.Itoa(i), oidDocuments, 2, oidText, 0))
		v := "an ordinary sentence of text with no personal data in it, number 12345"
		if i == 5 {
			v = "reach me at zelda@example.com or 555-010-1234"
		}
		r.Values = append(r.Values, []byte(v))
	}
	p, err := e.Plan(ctx, rd, &Query{SQL: "SELECT * FROM documents"})
	if err != nil || p == nil {
		b.Fatal(p, err)
	}
	benchApply(b, p, r)
}

func BenchmarkPlan(b *testing.B) {
	e := testEngine(b, nil)
	rd := custRD(0)
	rd.Fields = append(rd.Fields, fd("x", 0, 0, oidText, 0))
	q := &Query{SQL: "SELECT id, name, email, ssn, phone, notes, lower(email) AS x FROM customers WHERE id = $1"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := e.Plan(ctx, rd, q); err != nil {
			b.Fatal(err)
		}
	}
}

// maskedReadEngine mirrors the masked-read benchmark workload's rules:
// customers.email (email), ssn and card (partial keep 4), name and address
// (redact), phone (hash), documents.metadata json_keys [email, phone, name,
// author] (redact), and every detector over the other text columns.
func maskedReadEngine(b *testing.B) *Engine {
	cat := testCatalog()
	cat.cols[oidCustomers][8] = ColumnRef{Schema: "public", Table: "customers", Column: "address", TypeOID: oidText, Attnum: 8}
	cat.cols[oidDocuments][5] = ColumnRef{Schema: "public", Table: "documents", Column: "body", TypeOID: oidText, Attnum: 5}
	cfg := config.Masking{
		HMACKey: "k3y",
		Rules: []config.MaskRule{
			{Table: "customers", Column: "email", Method: "email"},
			{Table: "customers", Column: "ssn", Method: "partial", KeepLast: 4},
			{Table: "customers", Column: "card", Method: "partial", KeepLast: 4},
			{Table: "customers", Column: "name", Method: "redact"},
			{Table: "customers", Column: "address", Method: "redact"},
			{Table: "documents", Column: "metadata", JSONKeys: []string{"email", "phone", "name", "author"}, Method: "redact"},
			{Column: "phone", Method: "hash"},
		},
		Detectors: []string{"email", "phone", "credit_card", "ssn"},
		Derived:   "mask",
	}
	e, err := New(cfg, cat)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// One customers row of the masked-read workload (text format).
func BenchmarkApplyMaskedReadCustomer(b *testing.B) {
	e := maskedReadEngine(b)
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		fd("id", oidCustomers, 1, oidInt4, 0), fd("name", oidCustomers, 2, oidText, 0), fd("email", oidCustomers, 3, oidText, 0),
		fd("ssn", oidCustomers, 4, oidText, 0), fd("phone", oidCustomers, 5, oidVarchar, 0), fd("card", oidCustomers, 6, oidText, 0),
		fd("notes", oidCustomers, 7, oidText, 0), fd("address", oidCustomers, 8, oidText, 0)}}
	p, err := e.Plan(ctx, rd, &Query{SQL: "SELECT * FROM customers"})
	if err != nil || p == nil {
		b.Fatal(p, err)
	}
	benchApply(b, p, row("48213", "Wilhelmina Fairweather", "wilhelmina.fairweather48213@example.com", "123-45-6789",
		"+1 202 555 0147", "4111 1111 1111 1111", "prefers contact by mail; account opened in 2019 after referral",
		"1742 Evergreen Terrace, Springfield, OR 97403"))
}

// One documents row of the masked-read workload: a title, a ~300-byte
// prose body (detectors) and a binary jsonb metadata document.
func BenchmarkApplyMaskedReadDocument(b *testing.B) {
	e := maskedReadEngine(b)
	rd := &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		fd("id", oidDocuments, 1, oidInt4, 0), fd("title", oidDocuments, 2, oidText, 0),
		fd("body", oidDocuments, 5, oidText, 0), fd("metadata", oidDocuments, 3, oidJSONB, 1)}}
	p, err := e.Plan(ctx, rd, &Query{SQL: "SELECT id, title, body, metadata FROM documents"})
	if err != nil || p == nil {
		b.Fatal(p, err)
	}
	body := "The quarterly review covers retention across all regions. Churn fell in the second half " +
		"after the onboarding changes shipped, and support volume dropped by a fifth. Questions about " +
		"the methodology go to the analytics team; the raw tables are in the warehouse under the usual " +
		"names. Next review is scheduled for the first week of the new quarter, room 4B."
	meta := `{"author": "Wilhelmina Fairweather", "email": "wil.f@corp.example", "phone": "+1 202 555 0147", "name": "Q3 retention review", "tags": ["finance", "q3", "internal", "retention"], "source": "warehouse export 2024-09-30", "pages": 12}`
	benchApply(b, p, row("1042", "Quarterly retention review, all regions", body, "\x01"+meta))
}

package analysis

import (
	"bytes"
	"fmt"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// shapeSeeds are texts whose lexing has a trap in it: every quoting form
// the lexer knows, nested comments, continuation, junk after numbers.
var shapeSeeds = []string{
	"SELECT id FROM documents ORDER BY embedding <-> '[0.1,0.2,0.3]' LIMIT 10",
	"SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
	"INSERT INTO t (a, b, c) VALUES (1, 'x', 2.5), (-3, E'y\\'z', 1e10)",
	"SELECT 'a'\n 'b', 'c' 'd'",
	"SELECT 'a' -- c\n 'b'",
	"SELECT 'a'\n-- c\n'b'",
	"SELECT 'a' /* c */ 'b'",
	"SELECT N'x', U&'d!0061' UESCAPE '!', U&\"a\"",
	"SELECT -5, - 7, 2147483648, 2147483647, 02147483648, 1_000, 0x1F, 0o7, 0b1",
	"SELECT 123abc", "SELECT 1.5e3, .5, 1., 1e", "SELECT 1e+", "SELECT 1.e5, 1..2, 1.2.3",
	"SELECT $1, $$a$$, $q$b$q$, a$1, $q$x$a$q$, $1a, $ a, $a",
	"SELECT $a$ $b$ $a$, $a$$$a$",
	"SELECT e'\\'x', E'a' \n 'b', E'\\u0041', E'\\x41', E'\\101'",
	"SELECT B'01', X'1F', x'zz', b'1''0'",
	"SELECT 1::float(24), 'x'::regclass, interval '1 day'",
	"SELECT 1/*c/*d*/e*/+2 -- x\n", "SELECT 1 /* open",
	"SELECT \"a\"\"b\", \"x'\" FROM \"t\" WHERE c = 'it''s'",
	"SELECT 'x", "SELECT E'x\\", "DO $$BEGIN PERFORM 1; END$$",
	"SELECT set_config('application_name', 'x', false)",
	"SELECT metadata->>'author' FROM documents WHERE id = 7",
	"SET work_mem = '64MB'; SELECT 1; SELECT 'a'",
	"SELECT be'x', ex'y', xe'z', nb'q'",
	"SELECT 1+-2, 3--4\n, 5/-6",
	"select 'café', 'naïve' from t",
	"FETCH 5 FROM c", "COPY t TO '/tmp/x'", "SELECT 1 LIMIT 5 OFFSET 2",
}

func constTokens(t *testing.T, sql string) ([]Const, error) {
	t.Helper()
	res, err := pg.Scan(sql)
	if err != nil {
		return nil, err
	}
	var out []Const
	for _, tk := range res.GetTokens() {
		var k ConstKind
		switch tk.GetToken() {
		case pg.Token_ICONST:
			k = ConstInteger
		case pg.Token_FCONST:
			k = ConstNumeric
		case pg.Token_SCONST:
			k = ConstString
		case pg.Token_BCONST:
			k = ConstBits
		case pg.Token_XCONST:
			k = ConstHex
		case pg.Token_USCONST:
			k = 100 // never shaped: any agreement with it is a bug
		default:
			continue
		}
		out = append(out, Const{Start: tk.GetStart(), End: tk.GetEnd(), Kind: k})
	}
	return out, nil
}

// checkShape: whenever AppendShape shapes a text, PostgreSQL's lexer
// (pg_query.Scan) lexes it and agrees on every constant's bounds and kind.
func checkShape(t *testing.T, sql string) {
	key, consts, ok := AppendShape(nil, nil, sql)
	if !ok {
		return
	}
	want, err := constTokens(t, sql)
	if err != nil {
		t.Fatalf("%q: shaped, but the lexer rejects it: %v", sql, err)
	}
	if fmt.Sprint(consts) != fmt.Sprint(want) {
		t.Fatalf("%q: constants %v, the lexer's %v", sql, consts, want)
	}
	// the key is the text without the constants' bytes, each replaced by NUL+kind
	var b []byte
	last := 0
	for _, c := range consts {
		b = append(b, sql[last:c.Start]...)
		b = append(b, 0, byte(c.Kind))
		last = int(c.End)
	}
	b = append(b, sql[last:]...)
	if !bytes.Equal(b, key) {
		t.Fatalf("%q: key %q, want %q", sql, key, b)
	}
}

func TestShapeMatchesLexer(t *testing.T) {
	shaped := 0
	for _, s := range shapeSeeds {
		checkShape(t, s)
		if _, _, ok := AppendShape(nil, nil, s); ok {
			shaped++
		}
	}
	if shaped < len(shapeSeeds)/3 {
		t.Fatalf("only %d of %d seeds shaped", shaped, len(shapeSeeds))
	}
}

func TestShapeCases(t *testing.T) {
	for _, tc := range []struct {
		sql    string
		ok     bool
		consts int
	}{
		{"SELECT id FROM documents ORDER BY embedding <-> '[1,2]' LIMIT 10", true, 2},
		{"SELECT 'a'\n 'b'", false, 0},      // one constant to the lexer: continuation
		{"SELECT 'a' /* c */ 'b'", true, 2}, // not a continuation
		{"SELECT U&'x'", false, 0},
		{"SELECT N'x'", false, 0},
		{"SELECT 1_000", false, 0},
		{"SELECT 0x1F", false, 0},
		{"SELECT E'\\u0041'", false, 0},
		{"SELECT $q$ 'not a quote $q$, 1", true, 2},
		{"SELECT \"it's\" FROM t", true, 0},
		{"SELECT 1 -- ' 2\n", true, 1},
		{"SELECT /* ' /* ' */ */ 3", true, 1},
	} {
		_, consts, ok := AppendShape(nil, nil, tc.sql)
		if ok != tc.ok || (ok && len(consts) != tc.consts) {
			t.Errorf("%q: ok %v with %d constants, want %v with %d", tc.sql, ok, len(consts), tc.ok, tc.consts)
		}
		checkShape(t, tc.sql)
	}
	// same shape, other values; other kinds, other shapes
	k1, _, _ := AppendShape(nil, nil, "SELECT 1, 'a' FROM t WHERE x = 2.5")
	k2, _, _ := AppendShape(nil, nil, "SELECT 99, $$zz$$ FROM t WHERE x = 7.25")
	k3, _, _ := AppendShape(nil, nil, "SELECT 1.0, 'a' FROM t WHERE x = 2.5")
	k4, _, _ := AppendShape(nil, nil, "SELECT 3000000000, 'a' FROM t WHERE x = 2.5")
	if !bytes.Equal(k1, k2) || bytes.Equal(k1, k3) || bytes.Equal(k1, k4) {
		t.Fatalf("keys: %q %q %q %q", k1, k2, k3, k4)
	}
}

func TestShaped(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"SELECT id FROM documents ORDER BY embedding <-> '[1,2]' LIMIT 10", true},
		{"SELECT -5, - 7, 3 - 4", true},
		{"INSERT INTO t VALUES (1, 'x'), (2, 'y')", true},
		{"DO $$BEGIN PERFORM 1; END$$", false}, // the body is not an A_Const
		{"FETCH 5 FROM c", false},
		{"COPY t TO '/tmp/x'", false},
		{"SELECT 1::float(24)", false},    // the typmod picks the type
		{"SELECT 'x'::varchar(10)", true}, // a typmod is an A_Const the decision does not read
	} {
		_, consts, ok := AppendShape(nil, nil, tc.sql)
		if !ok {
			t.Fatalf("%q not shaped", tc.sql)
		}
		tree, err := pg.Parse(tc.sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := Shaped(tree, tc.sql, consts); got != tc.want {
			t.Errorf("%q: Shaped %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// revalue returns sql with every constant given other contents of the
// same length: digits become 1 (an int32 stays one), letters and digits
// in strings become q. Its shape may differ (a dollar body that now
// contains its delimiter); the caller checks.
func revalue(sql string, consts []Const) string {
	b := []byte(sql)
	for _, c := range consts {
		for i := c.Start; i < c.End; i++ {
			ch := b[i]
			switch c.Kind {
			case ConstInteger, ConstNumeric:
				if isDigit(ch) {
					b[i] = '1'
				}
			case ConstString:
				if (ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || isDigit(ch)) && i > c.Start+1 && b[i-1] != '\\' && b[i-1] != '$' {
					b[i] = 'q'
				}
			case ConstBits:
				if ch == '0' {
					b[i] = '1'
				}
			case ConstHex:
				if isDigit(ch) {
					b[i] = 'a'
				}
			}
		}
	}
	return string(b)
}

// blankConsts clears every A_Const value so two trees can be compared
// but for them.
func blankConsts(m protoreflect.Message) {
	if c, ok := m.Interface().(*pg.A_Const); ok {
		c.Val = nil
		c.Isnull = false
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				blankConsts(l.Get(i).Message())
			}
		case fd.Kind() == protoreflect.MessageKind && !fd.IsMap():
			blankConsts(v.Message())
		}
		return true
	})
}

// checkSameTree: two texts of one shape that Shaped accepts parse to the
// same tree but for the values of their A_Const nodes.
func checkSameTree(t *testing.T, sql string) {
	key, consts, ok := AppendShape(nil, nil, sql)
	if !ok || len(consts) == 0 {
		return
	}
	tree, err := pg.Parse(sql)
	if err != nil || !Shaped(tree, sql, consts) {
		return
	}
	other := revalue(sql, consts)
	key2, consts2, ok := AppendShape(nil, nil, other)
	if !ok || !bytes.Equal(key, key2) {
		return
	}
	tree2, err := pg.Parse(other)
	if err != nil {
		t.Fatalf("%q parses, %q of the same shape does not: %v", sql, other, err)
	}
	if !Shaped(tree2, other, consts2) {
		t.Fatalf("%q is shaped, %q of the same shape is not", sql, other)
	}
	blankConsts(tree.ProtoReflect())
	blankConsts(tree2.ProtoReflect())
	if !proto.Equal(tree, tree2) {
		t.Fatalf("%q and %q have one shape but different trees", sql, other)
	}
}

func TestShapeSameTree(t *testing.T) {
	for _, s := range shapeSeeds {
		checkSameTree(t, s)
	}
}

// FuzzShape: the scanner never disagrees with PostgreSQL's lexer on a
// text it shapes, and two texts of one shape that Shaped accepts parse to
// one tree but for constant values. This is what lets a decision made for
// one text be reused for another of its shape.
func FuzzShape(f *testing.F) {
	for _, s := range shapeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 4096 {
			return
		}
		checkShape(t, sql)
		checkSameTree(t, sql)
	})
}

func BenchmarkAppendShape(b *testing.B) {
	vec := make([]byte, 0, 4096)
	vec = append(vec, "SELECT id FROM documents ORDER BY embedding <-> '["...)
	for i := 0; i < 384; i++ {
		if i > 0 {
			vec = append(vec, ',')
		}
		vec = fmt.Appendf(vec, "%.6f", float64(i%97)/97)
	}
	vec = append(vec, "]' LIMIT 10"...)
	for _, tc := range []struct{ name, sql string }{
		{"knn384", string(vec)},
		{"pgbench", "SELECT abalance FROM pgbench_accounts WHERE aid = 123456;"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			key := make([]byte, 0, 256)
			consts := make([]Const, 0, 16)
			b.SetBytes(int64(len(tc.sql)))
			b.ReportAllocs()
			for b.Loop() {
				var ok bool
				key, consts, ok = AppendShape(key[:0], consts[:0], tc.sql)
				if !ok {
					b.Fatal("not shaped")
				}
			}
		})
	}
}

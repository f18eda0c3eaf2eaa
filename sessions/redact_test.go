package sessions

import (
	"strings"
	"testing"
)

func TestRedactSQL(t *testing.T) {
	cases := []struct {
		sql    string
		secret string // must not survive
		want   string // exact output when non-empty
	}{
		{sql: "CREATE ROLE x PASSWORD 'secret'", secret: "secret", want: "CREATE ROLE x PASSWORD " + RedactedLiteral},
		{sql: "ALTER USER x WITH ENCRYPTED PASSWORD $$s3cr3t$$", secret: "s3cr3t"},
		{sql: "alter role x with password $tag$it's$tag$ valid until 'infinity'", secret: "it's", want: "alter role x with password " + RedactedLiteral + " valid until 'infinity'"},
		{sql: `CREATE USER x PASSWORD E'sec\'ret'`, secret: "ret"},
		{sql: `CREATE ROLE x LOGIN PASSWORD U&'d\0061t\+000061'`, secret: `d\0061t`},
		{sql: `CREATE ROLE x PASSWORD U&'d!0061t' UESCAPE '!'`, secret: "d!0061t", want: "CREATE ROLE x PASSWORD " + RedactedLiteral},
		{sql: "CREATE ROLE x PASSWORD /* c */ 'hidden'", secret: "hidden"},
		{sql: "CREATE ROLE x PASSWORD -- c\n 'hidden2'", secret: "hidden2"},
		{sql: "CREATE ROLE a PASSWORD 'one'; CREATE ROLE b PASSWORD 'two'", secret: "two"},
		{sql: "CREATE ROLE a PASSWORD 'one'; CREATE ROLE b PASSWORD 'two'", secret: "one"},
		{sql: "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'mapsecret')", secret: "mapsecret"},
		{sql: "CREATE ROLE x PASSWORD 'unterminated", secret: "unterminated", want: UnscannableSQL},
		{sql: "SELECT 'password'", want: "SELECT 'password'"},
		{sql: "SELECT * FROM docs ORDER BY embedding <-> '[1,2]' LIMIT 3", want: "SELECT * FROM docs ORDER BY embedding <-> '[1,2]' LIMIT 3"},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			got := RedactSQL(c.sql)
			if c.secret != "" && strings.Contains(got, c.secret) {
				t.Fatalf("secret %q survived: %q", c.secret, got)
			}
			if c.want != "" && got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestRedactSecretStatementDropsParams(t *testing.T) {
	if _, secret := redactSQL("ALTER ROLE x PASSWORD NULL"); !secret {
		t.Fatal("ALTER ROLE ... PASSWORD NULL is a role statement: params must be dropped")
	}
	if _, secret := redactSQL("SELECT password FROM users WHERE id = $1"); secret {
		t.Fatal("a plain SELECT is not secret-bearing")
	}
	if s, secret := redactSQL("SELECT 1"); secret || s != "SELECT 1" {
		t.Fatal("no password: unchanged")
	}
}

func BenchmarkRedactNoPassword(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		RedactSQL("SELECT id, title FROM documents ORDER BY embedding <-> $1 LIMIT 10")
	}
}

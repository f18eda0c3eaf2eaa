package sqlpolicy

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/analysis/shapetest"
)

func vectorLiteral(n int) string {
	var b strings.Builder
	b.WriteString("'[")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%.6f", float64(i%97)/97-0.5)
	}
	b.WriteString("]'")
	return b.String()
}

const analytic50 = `WITH recent AS (
    SELECT d.id, d.category, d.created_at, d.author_id
    FROM documents d
    WHERE d.created_at > now() - interval '30 days'
),
authors AS (
    SELECT a.id, a.name, a.team_id
    FROM authors a
    WHERE a.active
      AND a.name IS NOT NULL
      AND a.team_id IS NOT NULL
      AND a.id > 0
),
team_stats AS (
    SELECT t.id AS team_id,
           count(*) AS docs,
           avg(length(r.category)) AS avg_cat
    FROM teams t
    JOIN authors au ON au.team_id = t.id
    JOIN recent r ON r.author_id = au.id
    GROUP BY t.id
),
ranked AS (
    SELECT r.id,
           r.category,
           au.name,
           ts.docs,
           row_number() OVER (PARTITION BY r.category ORDER BY r.created_at DESC) AS rn,
           lag(r.created_at) OVER (PARTITION BY au.id ORDER BY r.created_at) AS prev_at,
           sum(1) OVER (PARTITION BY au.team_id) AS team_total
    FROM recent r
    JOIN authors au ON au.id = r.author_id
    LEFT JOIN team_stats ts ON ts.team_id = au.team_id
)
SELECT category,
       name,
       docs,
       count(*) FILTER (WHERE rn <= 10) AS top10,
       max(prev_at) AS last_prev,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY team_total) AS median_team,
       CASE WHEN docs > 100 THEN 'large'
            WHEN docs > 10 THEN 'medium'
            ELSE 'small' END AS size
FROM ranked
WHERE rn <= 100
  AND category IN ('news', 'blog', 'paper')
GROUP BY category, name, docs
HAVING count(*) > 1
ORDER BY category, top10 DESC
LIMIT 50`

// knnVector is a vector literal of dim components that differs per seed.
func knnVector(dim, seed int) string {
	var b strings.Builder
	b.WriteString("'[")
	for i := 0; i < dim; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%.6f", float64((seed*7919+i*104729)%2000000)/1e6-1)
	}
	b.WriteString("]'")
	return b.String()
}

var benchQueries = []struct{ name, sql string }{
	{"knn384", "SELECT id, content FROM documents ORDER BY embedding <-> " + vectorLiteral(384) + " LIMIT 10"},
	{"knn1536", "SELECT id, content FROM documents ORDER BY embedding <=> " + vectorLiteral(1536) + " LIMIT 10"},
	{"pgbench", "SELECT abalance FROM pgbench_accounts WHERE aid = $1"},
	{"analytic50", analytic50},
}

// BenchmarkClassifyCold classifies texts never seen before: each
// iteration takes one of 4096 variants (a trailing comment differs), more
// than the shared parse cache (internal/analysis) holds, so every one is
// parsed.
func BenchmarkClassifyCold(b *testing.B) {
	for _, q := range benchQueries {
		variants := make([]string, 4096)
		for i := range variants {
			variants[i] = q.sql + " -- " + strconv.Itoa(i)
		}
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for i := 0; i < b.N; i++ {
				a, err := Classify(variants[i%len(variants)])
				if err != nil || len(a.Statements) != 1 {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkClassifyCached(b *testing.B) {
	c := NewClassifier(1024)
	for _, q := range benchQueries {
		c.Classify(q.sql)
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for i := 0; i < b.N; i++ {
				if _, err := c.Classify(q.sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	p := NewPolicy(specPolicy())
	a, _ := Classify(benchQueries[2].sql)
	groups := []string{"analyst"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if d := p.Decide(groups, a.Statements[0]); !d.Allowed {
			b.Fatal("denied")
		}
	}
}

func TestBenchQueriesClassify(t *testing.T) {
	want := []Action{ActionSearch, ActionSearch, ActionRead, ActionRead}
	for i, q := range benchQueries {
		if st := stmt(t, q.sql); st.Action != want[i] {
			t.Errorf("%s: %s (%s)", q.name, st.Action, st.Reason)
		}
	}
	if n := strings.Count(analytic50, "\n") + 1; n < 50 {
		t.Fatalf("analytic query has %d lines", n)
	}
}

// BenchmarkClassifyShape classifies texts that differ from a cached one
// only in constants (a notebook's kNN search with a fresh vector literal,
// pgbench -S -M simple): each iteration takes one of 4096 revalued
// variants, so the exact-text level misses and the shape level answers.
func BenchmarkClassifyShape(b *testing.B) {
	qs := []struct {
		name, sql string
		dim       int // a kNN query: variants carry another vector of this dimension
	}{
		{benchQueries[0].name, benchQueries[0].sql, 384},
		{benchQueries[1].name, benchQueries[1].sql, 1536},
		{"pgbench-simple", "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", 0},
		{benchQueries[3].name, benchQueries[3].sql, 0},
	}
	for _, q := range qs {
		variants := make([]string, 4096)
		for i := range variants {
			if q.dim > 0 {
				variants[i] = strings.Replace(q.sql, vectorLiteral(q.dim), knnVector(q.dim, i), 1)
				continue
			}
			v, ok := shapetest.Revalue(q.sql, uint64(i))
			if !ok {
				b.Fatalf("%s: not shaped", q.name)
			}
			variants[i] = v
		}
		c := NewClassifier(1024)
		c.Classify(q.sql)
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for i := 0; i < b.N; i++ {
				a, err := c.Classify(variants[i%len(variants)])
				if err != nil || len(a.Statements) != 1 {
					b.Fatal(err)
				}
			}
		})
	}
}

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/devstack"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// Sizes of the seeded benchmark database.
const (
	numDocs      = 100_000
	numCustomers = 10_000
	numQVecs     = 1000 // precomputed random kNN query vectors
	dim          = 384
	pgbenchScale = 10
	seedVersion  = "pgwbench-seed-v1" // bump when the seed changes: the cached cluster is rebuilt
)

// Roles and names the bench uses.
const (
	directUser = "bench_direct" // password role with vector_writer's privileges (direct and pgbouncer)
	benchUser  = "bench@example.com"
)

// seed builds the bench database in c once (marker table bench_meta): the
// devstack schema and roles, 100k documents with clustered random 384-dim
// embeddings and jsonb metadata holding PII keys, an HNSW index, 10k
// customers with synthetic PII, the query vectors, an ingest table, the
// pgbench tables, and the direct-connection role. It returns the admin DSN
// for pgwarden's native credential provider.
func seed(ctx context.Context, c *pgtest.Cluster, adminPW, directPW string, logf func(string, ...any)) (string, error) {
	if err := c.CreateDB(ctx, devstack.Database); err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, c.SuperDSN(devstack.Database))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var have string
	_ = conn.QueryRow(ctx, "SELECT v FROM bench_meta WHERE k = 'seed'").Scan(&have)
	if have != seedVersion {
		start := time.Now()
		logf("seeding %d documents, %d customers (first run only; cached in the data dir)", numDocs, numCustomers)
		for _, s := range devstack.SchemaSQL {
			if _, err := conn.Exec(ctx, s); err != nil {
				return "", fmt.Errorf("schema: %w", err)
			}
		}
		steps := []string{
			`DROP TABLE IF EXISTS bench_meta, qvecs, ingest`,
			`TRUNCATE documents, customers RESTART IDENTITY`,
			`DROP INDEX IF EXISTS documents_embedding_hnsw`,
			// 100 cluster centres; each document is a centre plus noise, so
			// the HNSW graph has structure like real embeddings.
			`CREATE TEMP TABLE centres AS SELECT c, (SELECT array_agg(random()::real) FROM generate_series(1, 384) WHERE c >= 0) AS v FROM generate_series(0, 99) c`,
			fmt.Sprintf(`INSERT INTO documents (title, body, metadata, embedding)
			 SELECT 'Document ' || g || ' on topic ' || (g %% 100),
			        'Notes about topic ' || (g %% 100) || ' written for the benchmark; row ' || g ||
			          CASE WHEN g %% 4 = 0 THEN '. Contact user' || g || '@example.com or +1-202-555-01' || lpad((g %% 100)::text, 2, '0') ELSE '' END,
			        jsonb_build_object('author', 'Author ' || g, 'name', 'Person ' || g, 'email', 'person' || g || '@example.org',
			                           'phone', '+1-303-555-01' || lpad((g %% 100)::text, 2, '0'), 'source', 'bench', 'tags', jsonb_build_array('t' || (g %% 100))),
			        (SELECT array_agg(ce.v[i] + (random()::real - 0.5) * 0.3 ORDER BY i) FROM generate_series(1, 384) i)::vector
			   FROM generate_series(1, %d) g JOIN centres ce ON ce.c = g %% 100`, numDocs),
			fmt.Sprintf(`INSERT INTO customers (name, email, phone, ssn, credit_card, address, notes)
			 SELECT 'Customer ' || g, 'customer' || g || '@example.com', '+1-404-555-01' || lpad((g %% 100)::text, 2, '0'),
			        lpad((100 + g %% 500)::text, 3, '0') || '-' || lpad((1 + g %% 98)::text, 2, '0') || '-' || lpad((1 + g %% 9998)::text, 4, '0'),
			        '4111 1111 1111 1111', g || ' Elm St, Springfield, IL 62701',
			        CASE WHEN g %% 2 = 0 THEN 'Prefers email: customer' || g || '@example.com' ELSE 'Renewal due next quarter' END
			   FROM generate_series(1, %d) g`, numCustomers),
			// Query vectors: near a random centre, never equal to a document.
			fmt.Sprintf(`CREATE TABLE qvecs AS SELECT g AS id,
			        (SELECT array_agg(ce.v[i] + (random()::real - 0.5) * 0.3 ORDER BY i) FROM generate_series(1, 384) i)::vector(384) AS v
			   FROM generate_series(1, %d) g JOIN centres ce ON ce.c = (g * 37) %% 100`, numQVecs),
			`ALTER TABLE qvecs ADD PRIMARY KEY (id)`,
			`CREATE TABLE ingest (id bigserial PRIMARY KEY, title text NOT NULL, body text NOT NULL, metadata jsonb NOT NULL DEFAULT '{}', embedding vector(384))`,
			`SET maintenance_work_mem = '1GB'`,
			`SET max_parallel_maintenance_workers = 2`,
			`CREATE INDEX documents_embedding_hnsw ON documents USING hnsw (embedding vector_l2_ops) WITH (m = 16, ef_construction = 40)`,
			`ANALYZE documents, customers, qvecs`,
		}
		for _, s := range steps {
			t := time.Now()
			if _, err := conn.Exec(ctx, s); err != nil {
				return "", fmt.Errorf("seed: %.60s: %w", s, err)
			}
			if d := time.Since(t); d > 2*time.Second {
				logf("  %.50s… %s", s, d.Round(time.Millisecond))
			}
		}
		// pgbench tables in the same database (pgwarden serves one database list).
		if out, err := runCmd(ctx, nil, pgbenchBin(), "-i", "-q", "-s", fmt.Sprint(pgbenchScale), "-h", c.Host, "-p", fmt.Sprint(c.Port), "-U", "postgres", devstack.Database); err != nil {
			return "", fmt.Errorf("pgbench -i: %v: %s", err, out)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE bench_meta (k text PRIMARY KEY, v text); INSERT INTO bench_meta VALUES ('seed', '`+seedVersion+`')`); err != nil {
			return "", err
		}
		logf("seeded in %s", time.Since(start).Round(time.Second))
	}
	grants := []string{
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO vector_reader, vector_writer`,
		`GRANT INSERT ON ingest TO vector_writer`,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO vector_writer`,
		`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_direct') THEN CREATE ROLE bench_direct LOGIN IN ROLE vector_writer; END IF; END $$`,
		`ALTER ROLE bench_direct PASSWORD '` + directPW + `'`, // random hex, no quote
		`ALTER DATABASE vectors SET hnsw.ef_search = 40`,
		`TRUNCATE ingest`,
	}
	for _, s := range grants {
		if _, err := conn.Exec(ctx, s); err != nil {
			return "", fmt.Errorf("grants: %w", err)
		}
	}
	// The kNN workload must really be an HNSW index scan (the query vector
	// comes from a scalar subquery on qvecs, evaluated once as an InitPlan).
	rows, err := conn.Query(ctx, "EXPLAIN SELECT id FROM documents ORDER BY embedding <-> (SELECT v FROM qvecs WHERE id = 1) LIMIT 10")
	if err != nil {
		return "", err
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	if !strings.Contains(strings.Join(plan, "\n"), "documents_embedding_hnsw") {
		return "", fmt.Errorf("the kNN query does not use the HNSW index:\n%s", strings.Join(plan, "\n"))
	}
	// pgwarden_admin (native provider). Seed inside Provision leaves the
	// loaded tables alone (they have rows).
	return devstack.Provision(ctx, c, adminPW)
}

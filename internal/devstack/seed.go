package devstack

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// Names used by the demo database.
const (
	Database    = "vectors"
	AdminRole   = "pgwarden_admin"
	ReaderRole  = "vector_reader"
	WriterRole  = "vector_writer"
	AdminDBRole = "vector_admin"
)

// SchemaSQL creates (idempotently, as a superuser, in the demo database)
// the extension, the three NOLOGIN database roles, the tables, their HNSW
// index, ownership and grants. Seed runs it before loading data.
var SchemaSQL = []string{
	`CREATE EXTENSION IF NOT EXISTS vector`,
	`DO $$ BEGIN
	   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vector_reader') THEN CREATE ROLE vector_reader NOLOGIN; END IF;
	   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vector_writer') THEN CREATE ROLE vector_writer NOLOGIN; END IF;
	   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vector_admin') THEN CREATE ROLE vector_admin NOLOGIN; END IF;
	 END $$`,
	`CREATE TABLE IF NOT EXISTS documents (
	   id bigserial PRIMARY KEY,
	   title text NOT NULL,
	   body text NOT NULL,
	   metadata jsonb NOT NULL DEFAULT '{}',
	   embedding vector(384)
	 )`,
	`CREATE TABLE IF NOT EXISTS customers (
	   id bigserial PRIMARY KEY,
	   name text NOT NULL,
	   email text,
	   phone text,
	   ssn text,
	   credit_card text,
	   address text,
	   notes text
	 )`,
	`ALTER TABLE documents OWNER TO vector_admin`,
	`ALTER TABLE customers OWNER TO vector_admin`,
	`GRANT USAGE ON SCHEMA public TO vector_reader, vector_writer, vector_admin`,
	`GRANT CREATE ON SCHEMA public TO vector_admin`,
	`GRANT SELECT ON ALL TABLES IN SCHEMA public TO vector_reader`,
	`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO vector_writer`,
	`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO vector_writer`,
	`GRANT ALL ON ALL TABLES IN SCHEMA public TO vector_admin`,
	`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO vector_admin`,
	`ALTER DEFAULT PRIVILEGES FOR ROLE vector_admin IN SCHEMA public GRANT SELECT ON TABLES TO vector_reader`,
	`ALTER DEFAULT PRIVILEGES FOR ROLE vector_admin IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO vector_writer`,
	`ALTER DEFAULT PRIVILEGES FOR ROLE vector_admin IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO vector_writer`,
}

// indexSQL runs after the data is loaded (building HNSW on a full table is faster).
const indexSQL = `CREATE INDEX IF NOT EXISTS documents_embedding_hnsw ON documents USING hnsw (embedding vector_l2_ops)`

// Seed prepares the demo schema in the database of dsn (a superuser DSN;
// the database must exist) and loads the documents and customers once: a
// table that already has rows is left alone. Loading runs in one
// transaction, so an interrupted seed leaves no partial table behind.
func Seed(ctx context.Context, dsn string) error {
	return seed(ctx, dsn, seedPlan{
		name: "", schema: SchemaSQL, index: indexSQL, analyze: "ANALYZE documents, customers",
		fill: func(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
			var nd, nc int
			if err := tx.QueryRow(ctx, "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM customers)").Scan(&nd, &nc); err != nil {
				return err
			}
			if nd == 0 {
				for _, d := range Documents() {
					b.Queue("INSERT INTO documents (title, body, metadata, embedding) VALUES ($1, $2, $3, $4::vector)",
						d.Title, d.Body, d.Metadata, VectorLiteral(Embed(d.Title+" "+d.Body)))
				}
			}
			if nc == 0 {
				for _, c := range Customers() {
					b.Queue("INSERT INTO customers (name, email, phone, ssn, credit_card, address, notes) VALUES ($1, $2, $3, $4, $5, $6, $7)",
						c.Name, c.Email, c.Phone, c.SSN, c.CreditCard, c.Address, c.Notes)
				}
			}
			return nil
		},
	})
}

// seedPlan is one demo database's schema and data.
type seedPlan struct {
	name    string   // in error messages ("" for vectors)
	schema  []string // idempotent statements run first
	index   string   // built after the load (HNSW on a full table is faster)
	analyze string   // run after a load: planner estimates (bulk_delete detection) need statistics
	// fill queues the inserts for the tables that are still empty.
	fill func(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error
}

// seed runs p on the database of dsn (a superuser DSN): the schema, then in
// one transaction the load of empty tables and the index, so an interrupted
// seed leaves no partial table behind.
func seed(ctx context.Context, dsn string, p seedPlan) error {
	step := func(what string) string {
		if p.name == "" {
			return "devstack: " + what
		}
		return "devstack: " + p.name + ": " + what
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("%s: %w", step("seed"), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range p.schema {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", step("schema"), err)
		}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", step("seed"), err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	b := &pgx.Batch{}
	if err := p.fill(ctx, tx, b); err != nil {
		return fmt.Errorf("%s: %w", step("seed (count)"), err)
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("%s: %w", step("load"), err)
		}
	}
	if _, err := tx.Exec(ctx, p.index); err != nil {
		return fmt.Errorf("%s: %w", step("index"), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", step("seed (commit)"), err)
	}
	if b.Len() > 0 {
		if _, err := conn.Exec(ctx, p.analyze); err != nil {
			return fmt.Errorf("%s: %w", step("analyze"), err)
		}
	}
	return nil
}

// Provision makes c a complete demo upstream: database vectors seeded by
// Seed, and the pgwarden_admin role (LOGIN CREATEROLE, member WITH ADMIN
// OPTION of the three database roles) with adminPassword, sent as a SCRAM
// verifier. It returns the admin DSN for the native credential provider;
// the DSN carries the password, so it must never be logged.
func Provision(ctx context.Context, c *pgtest.Cluster, adminPassword string) (string, error) {
	if adminPassword == "" {
		return "", fmt.Errorf("devstack: empty admin password")
	}
	if err := c.CreateDB(ctx, Database); err != nil {
		return "", fmt.Errorf("devstack: create database: %w", err)
	}
	if err := Seed(ctx, c.SuperDSN(Database)); err != nil {
		return "", err
	}
	verifier, err := credentials.SCRAMSHA256Verifier(adminPassword)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, c.SuperDSN(Database))
	if err != nil {
		return "", fmt.Errorf("devstack: admin role: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Errors name the step, never the statement: it carries the verifier.
	for _, step := range []struct{ what, sql string }{
		{"create", `DO $$ BEGIN
		   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgwarden_admin') THEN CREATE ROLE pgwarden_admin; END IF;
		 END $$`},
		{"set password", "ALTER ROLE pgwarden_admin WITH LOGIN CREATEROLE NOSUPERUSER NOCREATEDB NOREPLICATION PASSWORD '" + verifier + "'"}, // base64, '$' and ':' only
		{"grant", "GRANT vector_reader, vector_writer, vector_admin TO pgwarden_admin WITH ADMIN OPTION"},
	} {
		if _, err := conn.Exec(ctx, step.sql); err != nil {
			return "", fmt.Errorf("devstack: admin role (%s): %w", step.what, err)
		}
	}
	return c.DSN(AdminRole, adminPassword, Database), nil
}

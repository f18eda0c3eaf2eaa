package devstack

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// Names used by the second demo database, a support-ticket RAG store.
const (
	SupportDatabase    = "support"
	SupportReaderRole  = "support_reader"
	SupportAgentRole   = "support_agent"
	SupportAdminDBRole = "support_admin"
)

// SupportSchemaSQL creates (idempotently, as a superuser, in the support
// database) the extension, the three NOLOGIN database roles, the tickets
// table, ownership and grants. SeedSupport runs it before loading data and
// builds the HNSW index after. tickets is the first user table created in
// the database (as documents is in vectors): put nothing before it.
var SupportSchemaSQL = []string{
	`CREATE EXTENSION IF NOT EXISTS vector`,
	`DO $$ BEGIN
	   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'support_reader') THEN CREATE ROLE support_reader NOLOGIN; END IF;
	   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'support_agent') THEN CREATE ROLE support_agent NOLOGIN; END IF;
	   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'support_admin') THEN CREATE ROLE support_admin NOLOGIN; END IF;
	 END $$`,
	`CREATE TABLE IF NOT EXISTS tickets (
	   id bigserial PRIMARY KEY,
	   customer_email text,
	   customer_phone text,
	   subject text NOT NULL,
	   body text NOT NULL,
	   metadata jsonb NOT NULL DEFAULT '{}',
	   embedding vector(384)
	 )`,
	`ALTER TABLE tickets OWNER TO support_admin`,
	`GRANT USAGE ON SCHEMA public TO support_reader, support_agent, support_admin`,
	`GRANT CREATE ON SCHEMA public TO support_admin`,
	`GRANT SELECT ON ALL TABLES IN SCHEMA public TO support_reader`,
	`GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO support_agent`,
	`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO support_agent`,
	`GRANT ALL ON ALL TABLES IN SCHEMA public TO support_admin`,
	`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO support_admin`,
	`ALTER DEFAULT PRIVILEGES FOR ROLE support_admin IN SCHEMA public GRANT SELECT ON TABLES TO support_reader`,
	`ALTER DEFAULT PRIVILEGES FOR ROLE support_admin IN SCHEMA public GRANT SELECT, INSERT, UPDATE ON TABLES TO support_agent`,
	`ALTER DEFAULT PRIVILEGES FOR ROLE support_admin IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO support_agent`,
}

const supportIndexSQL = `CREATE INDEX IF NOT EXISTS tickets_embedding_hnsw ON tickets USING hnsw (embedding vector_l2_ops)`

// SeedSupport prepares the support schema in the database of dsn (a
// superuser DSN; the database must exist) and loads the tickets once: a
// table that already has rows is left alone. Loading runs in one
// transaction, so an interrupted seed leaves no partial table behind.
func SeedSupport(ctx context.Context, dsn string) error {
	return seed(ctx, dsn, seedPlan{
		name: "support", schema: SupportSchemaSQL, index: supportIndexSQL, analyze: "ANALYZE tickets",
		fill: func(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM tickets").Scan(&n); err != nil || n > 0 {
				return err
			}
			for _, t := range Tickets() {
				b.Queue("INSERT INTO tickets (customer_email, customer_phone, subject, body, metadata, embedding) VALUES ($1, $2, $3, $4, $5, $6::vector)",
					t.CustomerEmail, t.CustomerPhone, t.Subject, t.Body, t.Metadata, VectorLiteral(Embed(t.Subject+" "+t.Body)))
			}
			return nil
		},
	})
}

// ProvisionSupport adds the support database to c: it creates it, seeds it
// with SeedSupport, and makes pgwarden_admin a member WITH ADMIN OPTION of
// support_reader, support_agent and support_admin (so the native provider
// can mint logins for every DemoSupportRoles db_role), and grants CONNECT
// on the database to it and the three roles (not only through PUBLIC). pgwarden_admin is cluster-wide and created by Provision, so
// ProvisionSupport must run after Provision; without the role it fails
// before creating anything. The admin DSN for the support profile is
// Provision's DSN with database support. Idempotent.
func ProvisionSupport(ctx context.Context, c *pgtest.Cluster) error {
	conn, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return fmt.Errorf("devstack: support provision: %w", err)
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", AdminRole).Scan(&exists)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("devstack: support provision (admin role): %w", err)
	}
	if !exists {
		return fmt.Errorf("devstack: support provision: role %s does not exist; call Provision first", AdminRole)
	}
	if err := c.CreateDB(ctx, SupportDatabase); err != nil {
		return fmt.Errorf("devstack: create database %s: %w", SupportDatabase, err)
	}
	if err := SeedSupport(ctx, c.SuperDSN(SupportDatabase)); err != nil {
		return err
	}
	for _, step := range []struct{ what, sql string }{
		{"grant roles", "GRANT support_reader, support_agent, support_admin TO pgwarden_admin WITH ADMIN OPTION"},
		{"grant connect", "GRANT CONNECT ON DATABASE support TO pgwarden_admin, support_reader, support_agent, support_admin"},
	} {
		if err := c.Exec(ctx, SupportDatabase, step.sql); err != nil {
			return fmt.Errorf("devstack: support admin role (%s): %w", step.what, err)
		}
	}
	return nil
}

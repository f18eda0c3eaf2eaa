#!/usr/bin/env bash
# Runs once, when the upstream container initialises its data directory
# (/docker-entrypoint-initdb.d of the postgres image): the pgvector extension,
# the three NOLOGIN database roles the policy's groups map to, a documents
# table, and pgwarden_admin, the LOGIN CREATEROLE role the native credential
# provider mints per-session roles with (member WITH ADMIN OPTION of the
# three, as PostgreSQL 16 requires to grant them).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname vectors \
  -v admin_password="$PGWARDEN_ADMIN_PASSWORD" <<'SQL'
CREATE EXTENSION IF NOT EXISTS vector;
CREATE ROLE vector_reader NOLOGIN;
CREATE ROLE vector_writer NOLOGIN;
CREATE ROLE vector_admin NOLOGIN;
CREATE TABLE documents (
  id bigserial PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  embedding vector(3)
);
INSERT INTO documents (title, body, embedding) VALUES
  ('first', 'a document', '[1,0,0]'),
  ('second', 'another document', '[0,1,0]');
ALTER TABLE documents OWNER TO vector_admin;
GRANT USAGE ON SCHEMA public TO vector_reader, vector_writer, vector_admin;
GRANT CREATE ON SCHEMA public TO vector_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO vector_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO vector_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO vector_writer;
GRANT ALL ON ALL TABLES IN SCHEMA public TO vector_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO vector_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE vector_admin IN SCHEMA public GRANT SELECT ON TABLES TO vector_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE vector_admin IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO vector_writer;
CREATE ROLE pgwarden_admin LOGIN CREATEROLE PASSWORD :'admin_password';
GRANT vector_reader, vector_writer, vector_admin TO pgwarden_admin WITH ADMIN OPTION;
ANALYZE documents;
SQL

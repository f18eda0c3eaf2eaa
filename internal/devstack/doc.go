// Package devstack is the database half of `pgwarden dev`: it starts a
// local PostgreSQL 15 + pgvector on a private data directory (reused across
// runs), provisions the demo `vectors` database and its roles, and seeds it
// once with deterministic synthetic data.
//
// What it creates (idempotently):
//   - database vectors with extension vector;
//   - NOLOGIN roles vector_reader (SELECT), vector_writer (SELECT, INSERT,
//     UPDATE, DELETE, sequences) and vector_admin (owns the demo tables);
//   - pgwarden_admin: LOGIN CREATEROLE, member WITH ADMIN OPTION of the three,
//     with a random password kept in <data>/admin-password (0600) — the
//     native credential provider's admin_dsn;
//   - documents(id, title, body, metadata jsonb, embedding vector(384)) with
//     2000 rows over ten topics and an HNSW index (vector_l2_ops), and
//     customers(id, name, email, phone, ssn, credit_card, address, notes)
//     with 200 rows of synthetic PII.
//
// A second demo database, support (a support-ticket RAG store, a second
// connection profile), is added by ProvisionSupport, after Provision:
//   - NOLOGIN roles support_reader (SELECT), support_agent (SELECT, INSERT,
//     UPDATE, sequences) and support_admin (owns tickets); pgwarden_admin
//     becomes a member WITH ADMIN OPTION of the three and gets CONNECT;
//   - tickets(id, customer_email, customer_phone, subject, body, metadata
//     jsonb, embedding vector(384)) with 300 synthetic tickets over six
//     categories and an HNSW index (vector_l2_ops); tickets is the first
//     user table of its database, as documents is of vectors.
//
// Its policy is DemoSupportRoles (support/analyst/dba over
// support_agent/reader/admin) and DemoSupportMaskRules.
//
// The demo database's own policy lives next to its schema: DemoRoles (the
// SPEC's analyst/ingest/dba roles over vector_reader/writer/admin) and
// DemoMaskRules (the seed's PII columns), used by `pgwarden dev` and by the
// integration tests' base configuration.
//
// Embeddings come from Embed: feature hashing of word unigrams and bigrams
// into 384 dimensions, L2-normalised, so texts sharing words are near and
// tests can compute query vectors without a model.
//
// Lifecycle: Start → use Stack.AdminDSN / Stack.PG → Stop. Integration tests
// that run their own pgtest cluster call Provision (or Seed) to get the same
// database. It never listens on anything but 127.0.0.1, never runs a second
// server on a data directory that is in use, and never writes PII that is
// not synthetic (example.com/org/net addresses, 555-01xx phone numbers).
package devstack

// Package integration holds pgwarden's end-to-end tests. They start real
// servers as local processes on 127.0.0.1 — PostgreSQL 15 with pgvector
// (internal/pgtest), an OIDC issuer serving discovery and JWKS over HTTP,
// pgwarden itself (in process, on its own listeners), and where a test says
// so Vault — and drive them with real clients (psql, pgx, ...). Nothing a
// test claims to test is faked.
package integration

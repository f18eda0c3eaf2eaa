// Package sqlpolicy owns statement classification and per-group policy.
//
// What it owns
//
//   - Classification: every statement of a query string gets one SPEC
//     action (search, read, insert, update, delete, bulk_delete, truncate,
//     ddl, drop, index, export, admin, session), decided from the parse
//     tree of the real PostgreSQL parser (pg_query_go), never from the SQL
//     text. The whole tree is walked, so writes in data-modifying CTEs,
//     subqueries, COPY (...) TO, EXPLAIN ANALYZE, rules and SQL-function
//     bodies count, and so does every function call anywhere in any
//     expression, classified by the closed world of internal/analysis
//     (pg_proc of the session's database plus its reviewed exceptions:
//     server files, large objects, dblink, signals are admin; a
//     user-defined VOLATILE function is admin unless policy.functions
//     allows it; role changes through set_config are checked by setting).
//     A statement that does several things needs all of them
//     (Statement.Requires); reads are implied by writes. Anything
//     unknown, unparseable or computed (a function the catalog does not
//     know, set_config with a non-constant name, query_to_xml of a
//     non-constant query, a fast-path FunctionCall of a non-pure
//     function) is admin: fail closed.
//   - A bounded, concurrent cache of classifications keyed by exact text
//     and, behind it, by shape (the text without its constants' values;
//     only classifications that never looked at a value — see
//     Classifier), and a per-session registry of prepared statements and
//     portals (Session) so EXECUTE and Bind get the prepared statement's
//     action and Parse is classified once.
//   - Policy: groups → allowed actions (union; "all"), approval actions,
//     bulk_rows; decisions with 42501 errors for clients; the planner
//     estimate for DELETE/UPDATE through the Estimator interface.
//   - Explain, the engine of `pgwarden policy explain`.
//
// Decisions documented here (see also the corpus in testdata/policy):
//   - search is the shape of the outer query (ORDER BY/WHERE with a pgvector
//     distance; every branch of a UNION); subqueries do not change it. It is
//     not a data boundary: which tables can be read is the db_role's job.
//   - SELECT ... FOR UPDATE/SHARE and LOCK in modes stronger than ACCESS
//     SHARE need update (PostgreSQL itself requires UPDATE privilege; row
//     locks can block writers indefinitely). setval() needs update.
//   - SET/RESET of settings on an allow-list (planner, client, timeouts,
//     search_path) and custom dotted settings (hnsw.ef_search,
//     pgwarden.reason, app.*) are session, except security-relevant
//     extension prefixes (pgaudit., auto_explain., ...). Everything else —
//     role, session_authorization, session_replication_role, log_*,
//     *_preload_libraries, unknown names — is admin. RESET ROLE is admin
//     too; RESET ALL and DISCARD ALL (sent by poolers) are session.
//   - standard_conforming_strings must stay on: pg_query lexes SQL as a
//     server with it on, and with it off a backslash before a quote
//     ends a literal early, so one SELECT here is a SELECT and a DELETE
//     there (the example is in internal/parsesafe). SET (LOCAL) of it to
//     anything but a true value, set_config of it with any other or a
//     non-constant value, and UPDATE of pg_settings (whose rule calls
//     set_config for any setting) are admin; SET ... TO DEFAULT and RESET
//     are session. client_encoding likewise must name an encoding whose
//     bytes below 0x80 are ASCII (PostgreSQL's server encodings): SET,
//     SET NAMES and set_config of it to a client-only encoding (SJIS,
//     BIG5, GBK, ...), an unknown one or a computed value are admin.
//     StartupParam applies the same SET policy to startup parameters; the
//     rules themselves are internal/parsesafe.
//   - NOTIFY, LISTEN, UNLISTEN, FETCH, CLOSE, DEALLOCATE, DISCARD are session.
//   - DROP of extensions, servers, wrappers, event triggers, languages,
//     publications, access methods is admin; DROP of anything else is drop.
//   - CREATE FUNCTION is ddl; in an untrusted language, SECURITY DEFINER,
//     or with a protected SET it is admin.
//
// A user-defined STABLE or IMMUTABLE function keeps the outer statement's
// action (PostgreSQL forbids writes in them); masking refuses it for
// groups without unmask unless policy.functions allows it.
//
// Lifecycle: one Classifier and one Policy per gateway (both immutable or
// internally synchronised); one Session per client connection, used only
// from that connection's client-reading goroutine.
//
// It must never do I/O other than asking an Estimator, never send a
// statement anywhere, never fail open (an error always comes with an admin
// classification), and never put SQL constants into messages (denials
// quote the normalized statement, so passwords in ALTER ROLE or dblink
// connection strings do not leak into errors or logs).
package sqlpolicy

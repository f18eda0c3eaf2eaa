// Package analysis owns what pgwarden knows about SQL beyond the parse
// tree itself, shared by policy (sqlpolicy), masking and approvals so the
// two sides can never drift:
//
//   - Parsing: Parse is the one pg_query parse of a statement text; a
//     bounded cache hands the same read-only tree to every consumer of the
//     same text (classification, masking's trace, approval normalisation).
//   - Shapes: AppendShape/ShapeOf key a text by everything but its
//     constants' values (a Go scanner following PostgreSQL's lexer,
//     checked against pg_query.Scan by FuzzShape); Shaped confirms the
//     grammar took every constant as an A_Const value. The classifier and
//     masking key their second cache level by it.
//   - Vocabulary: pgvector's distance operators and functions, JSON access
//     operators, catalog relations that expose other rows' values.
//   - The closed world of functions: every function a statement can reach
//     gets a Class (pure, reads hidden data, writes state, admin) derived
//     from pg_proc of the database being served — volatility, SECURITY
//     DEFINER, language, built-in or not, extension — plus one reviewed
//     table of exceptions (exceptions.go), each with a one-line reason.
//     A function the classification has no answer for is never pure:
//     Verdict.Known is false and both sides fail closed.
//
// Lifecycle. A Catalog per database loads pg_proc through a query function
// (with a deadline), caches the Functions snapshot, refreshes it after
// MaxAge or Invalidate (DDL through the gateway) and falls back to the
// embedded PostgreSQL 15 built-in snapshot when the catalog cannot be
// read (then every non-built-in function is unknown: fail closed).
// Functions snapshots are immutable and safe for concurrent use.
//
// What it must never do: call a function pure that the reviewed table or
// the catalog does not vouch for, do I/O other than the catalog load, or
// put a statement's constants into reasons.
package analysis

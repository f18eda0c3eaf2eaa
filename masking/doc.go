// Package masking owns PII masking of everything PostgreSQL sends back to a
// client that has no `unmask`: result rows (text and binary formats), json
// and jsonb keys at any depth, values derived from masked columns, COPY TO
// STDOUT data, and the free text of errors, notices and notifications.
//
// Lifecycle. New compiles config.Masking into an Engine once (safe for
// concurrent use). Per statement, the glue calls CheckQuery before
// forwarding it (statement-level refusals: derived: deny, deny_predicates,
// writes of masked values into tables), then Plan once per RowDescription
// (or per prepared statement/portal; a Plan is reusable for later Executes).
// A nil Plan means nothing to mask: rows pass without being decoded. A Plan
// rewrites each DataRow with Apply without allocating; the returned row
// is valid until the next Apply. COPY ... TO STDOUT gets a CopyPlan;
// ErrorResponse/NoticeResponse/NotificationResponse text goes through
// MaskText (MaskError, MaskNotice, MaskNotification).
//
// Column identity comes from the RowDescription's table OID and attribute
// number, resolved by a Catalog (PGCatalog: the gateway's own pool, cached,
// Invalidate after DDL, unknown OIDs fetched on demand; views resolved to
// their definitions). Expression columns (table OID 0) are traced through
// the statement's parse tree (pg_query): aliases, casts, functions,
// whole-row references, subqueries, CTEs, set operations, LATERAL, views.
//
// What it must never do: forward a value it could not prove clean (fail
// closed: unknown tables, untraceable statements and malformed values are
// masked or refused, never passed), put a value or a key into an error or
// a log, do I/O other than catalog lookups, or allocate per row on the hot
// path. It does not decide policy (sqlpolicy) or touch the wire (pgwire).
package masking

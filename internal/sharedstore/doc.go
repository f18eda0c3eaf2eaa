// Package sharedstore owns the connection to the shared PostgreSQL store
// (store.dsn) that lets several gateways act as one, and its schema: the
// versioned migrations embedded in migrations/ (NNNN_name.sql, applied in
// order, each in its own transaction, under an advisory lock so gateways
// starting together never apply one twice), the check that refuses a
// schema older than this binary needs, and the gateways' heartbeats.
//
// What lives in the store is owned by the packages that use it:
// approvals/pgstore (approval requests, LISTEN/NOTIFY of decisions),
// sessions (events with one hash chain per gateway) and the gateway's
// cancel-key routes. Migrations only ever add (tables, columns, indexes):
// a gateway one version behind keeps working while its peers upgrade.
package sharedstore

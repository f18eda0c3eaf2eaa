// Lifecycle: the glue builds one Provider from config (NewNative, NewStatic,
// or the vault provider) at start, calls Mint once per authenticated
// session, Renew from the session's keep-alive before Expiry, Revoke on
// every session end (it must be called on every path; it is idempotent),
// Check from /readyz, and Close at shutdown after the sessions have ended.
//
// Native: each Mint issues one CREATE ROLE with LOGIN, INHERIT, VALID UNTIL
// (the server's now() + ttl), IN ROLE the principal's db_roles and ROLE
// <admin>, and a SCRAM-SHA-256 verifier computed in Go, so the cleartext
// password never reaches PostgreSQL or its logs. Role names are
// <prefix><sanitized user>_<10 random base32 chars>, at most 63 bytes.
// Revoke sets NOLOGIN, terminates the role's backends, reassigns whatever it
// created to one of its db_roles (DROP OWNED for the rest) in each database
// where it has objects, and drops it. Roles of the prefix whose VALID UNTIL
// has passed are swept at start and every ttl, so a crashed gateway leaves
// nothing usable behind.
//
// A provider must never log, return in an error, or record a password or a
// DSN's password; MintError.Public is what a client may see (SQLSTATE 08001).
// It never creates superusers or roles with CREATEROLE/CREATEDB/REPLICATION.
package credentials

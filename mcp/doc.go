// Package mcp is pgwarden's Model Context Protocol server: how AI agents
// reach the vector store through the gateway, with four tools —
// list_tables, describe_table, query and similarity_search — over
// streamable HTTP (HTTPHandler, mounted at /mcp on the admin listener) or
// stdio (ServeStdio, for `pgwarden mcp`). It uses the official Go SDK.
//
// It is a client of the gateway, never a second one. Each MCP session
// opens one pgx connection to the gateway's own Postgres listener as its
// caller (user = the token's user, password = the token, application_name
// "mcp:" + the MCP client's name), on the first call that needs it, and
// closes it when the session ends. Everything the tools do is SQL on that
// connection, so the gateway's hooks classify, decide, hold, mask and
// record it exactly as they do psql's; a refusal reaches the agent as a
// tool error carrying the gateway's SQLSTATE and message (ToolError),
// with the approval ID of a retry-mode hold. Statements go by the extended
// protocol with every parameter as text (identifiers quoted with
// pgx.Identifier, values never spliced into SQL), results in text format.
// To mark masked columns the tools read the notice the gateway sends an
// "mcp:" session before each RowDescription with masked columns
// (MaskNotice, built by the gateway from its masking plan): no copy of
// the rules lives here.
//
// What it owns: the tool schemas and argument checks (22023 for an
// argument it cannot use), the bounds of a result (rows and bytes, saying
// when it was cut), the per-identity limits (calls per minute, rows per
// rolling hour; 53400), and the session lifecycle.
//
// Lifecycle: New, then HTTPHandler or ServeStdio. Calls of one session run
// one at a time (its connection is not for concurrent use). Every session
// has a watcher goroutine that ends with the session and closes its
// connection; Close cancels calls in flight, ends every session and waits
// for the watchers.
//
// What it must never do: reach PostgreSQL other than through the gateway's
// listener; decide policy or masking itself; put a token into an error, a
// log line or a result; let one identity's request into another's session
// (HTTP requests are bound to the session's identity, else 403).
package mcp

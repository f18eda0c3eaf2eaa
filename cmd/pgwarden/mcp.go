package main

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/login"
	"github.com/pgwarden/pgwarden/mcp"
)

func mcpCmd(g *globals) *cobra.Command {
	var f loginFlags
	var gateway, database, user string
	c := &cobra.Command{
		Use:   "mcp [--gateway HOST:PORT] [--database D] [--user U] [--config client.yaml]",
		Short: "serve MCP on stdin/stdout for a local agent: its tools run SQL through the gateway as you",
		Long: `mcp serves the Model Context Protocol on stdin and stdout (the stdio transport)
for an agent that starts it as a subprocess. Its tools (list_tables,
describe_table, query, similarity_search) run through the gateway's Postgres
listener as you, so your groups' policy, approvals, masking and recording
apply exactly as in psql.

The token is $PGWARDEN_TOKEN, else the one "pgwarden login" cached (refreshed
silently; no prompt: log in first). The gateway and database come from the
flags, else the client config's gateway: section (host, port, dbname, user,
sslmode), else 127.0.0.1:6432; the user defaults to the token's. Logs go to
stderr; stdout carries MCP messages only. See docs/agents.md.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cc, err := login.LoadClientConfig(f.config)
			if err != nil {
				return usageError{err}
			}
			token, err := f.tokenSource(cc, g)
			if err != nil {
				return err
			}
			tok, err := token(cmd.Context())
			if err != nil {
				return err
			}
			caller := mcp.Caller{User: user, Database: database, Token: token}
			if caller.User == "" {
				caller.User = cc.Gateway.User
			}
			if caller.User == "" {
				caller.User = login.UserFromToken(tok)
			}
			if caller.User == "" {
				return usageError{errorf("no user: pass --user (the token names none)")}
			}
			if caller.Database == "" {
				caller.Database = cc.Gateway.DBName
			}
			if caller.Database == "" {
				return usageError{errorf("no database: pass --database or set gateway.dbname in %s", configHint(f.config))}
			}
			connConfig, err := gatewayConnConfig(gateway, cc.Gateway)
			if err != nil {
				return usageError{err}
			}
			d := config.Default().MCP
			srv := mcp.New(mcp.Options{
				ConnConfig: connConfig, MaxRows: d.MaxRows, MaxBytes: d.MaxBytes,
				Limits:  mcp.Limits{CallsPerMinute: d.Limits.CallsPerMinute, RowsPerHour: d.Limits.RowsPerHour},
				Version: version, Log: g.logger(nil),
			})
			return srv.ServeStdio(cmd.Context(), caller, io.NopCloser(cmd.InOrStdin()), nopWriteCloser{g.stdout})
		},
	}
	f.register(c)
	c.Flags().StringVar(&gateway, "gateway", "", "the gateway's Postgres listener, host:port (default: gateway.host/port of the client config, else 127.0.0.1:6432)")
	c.Flags().StringVar(&database, "database", "", "database to open (default: gateway.dbname of the client config)")
	c.Flags().StringVar(&user, "user", "", "user to log in as (default: gateway.user of the client config, else the token's user)")
	return c
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// tokenSource is where the stdio server's tokens come from: PGWARDEN_TOKEN,
// else the login cache (refreshed silently, never by a new device login:
// an agent's subprocess has nobody to prompt).
func (f *loginFlags) tokenSource(cc *login.ClientConfig, g *globals) (func(context.Context) (string, error), error) {
	if t := os.Getenv("PGWARDEN_TOKEN"); t != "" {
		return func(context.Context) (string, error) { return t, nil }, nil
	}
	if cc.Issuer == "" && f.issuer == "" {
		return nil, usageError{errorf("no token: set PGWARDEN_TOKEN, or run pgwarden login (with issuer: in %s or --issuer)", configHint(f.config))}
	}
	client, _, err := f.client(g.stderr)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (string, error) {
		t, err := client.Silent(ctx)
		if err != nil {
			return "", errorf("%v (or set PGWARDEN_TOKEN)", err)
		}
		return t.AccessToken, nil
	}, nil
}

// gatewayConnConfig returns how `pgwarden mcp` reaches the gateway's
// Postgres listener: flag, else client config, else 127.0.0.1:6432; TLS as
// the client config's sslmode says (never weaker than require), with
// PGSSLROOTCERT and friends from the environment as for psql.
func gatewayConnConfig(flag string, gc login.Gateway) (func(string) (*pgx.ConnConfig, error), error) {
	host, port := gc.Host, gc.Port
	if flag != "" {
		h, p, err := net.SplitHostPort(flag)
		if err != nil {
			return nil, errorf("--gateway %q: want host:port", flag)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return nil, errorf("--gateway %q: bad port", flag)
		}
		host, port = h, n
	} else if h, p, err := net.SplitHostPort(host); err == nil && port == 0 {
		host = h
		port, _ = strconv.Atoi(p)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if port == 0 {
		port = 6432
	}
	sslmode := gc.SSLMode
	if sslmode == "" {
		sslmode = "require"
	}
	return func(database string) (*pgx.ConnConfig, error) {
		u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/" + database,
			RawQuery: url.Values{"sslmode": {sslmode}, "connect_timeout": {"10"}}.Encode()}
		cc, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, err
		}
		cc.Fallbacks = nil // no plaintext retry
		return cc, nil
	}, nil
}

package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/mcp"
)

// mcpSessionIdle closes an MCP session (and its gateway session) after
// this long without a request.
const mcpSessionIdle = 30 * time.Minute

// enableMCP serves /mcp on the admin listener (mcp.enabled). Its sessions
// reach the data through this gateway's own Postgres listener, as the
// caller, so nothing about policy, approvals, masking or recording is
// decided twice.
func (g *Gateway) enableMCP(tlsCfg *tls.Config, version string) {
	m := g.cfg.MCP
	g.mcp = mcp.New(mcp.Options{
		ConnConfig: g.listenerConnConfig(tlsCfg),
		Attribute:  g.origins.Attribute,
		MaxRows:    m.MaxRows, MaxBytes: m.MaxBytes,
		Limits:     mcp.Limits{CallsPerMinute: m.Limits.CallsPerMinute, RowsPerHour: m.Limits.RowsPerHour},
		Version:    version,
		Log:        g.log.With().Str("component", "mcp").Logger(),
		Registerer: g.reg,
	})
	g.admin.Handle("/mcp", g.mcp.HTTPHandler(mcp.HTTPOptions{
		Verifier:       g.verifier,
		Database:       g.mcpDatabase,
		SessionTimeout: mcpSessionIdle,
	}))
}

// mcpDatabase is the database a new MCP session opens: ?database=D, or
// mcp.database (config's default).
func (g *Gateway) mcpDatabase(r *http.Request) (string, error) {
	db := r.URL.Query().Get("database")
	if db == "" {
		return g.cfg.MCPDatabase(), nil
	}
	if len(db) > 63 || strings.ContainsFunc(db, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return "", pgerr.New(pgerr.InvalidAuthorization, "pgwarden: ?database= is not a database name")
	}
	if !g.cfg.ServesDatabase(db) {
		return "", pgerr.New(pgerr.InvalidAuthorization, "pgwarden: database %q is not served by this gateway", db)
	}
	return db, nil
}

// listenerConnConfig returns how the in-process MCP server reaches this
// gateway's Postgres listener: the address it serves on (known once Serve
// has its listener), over TLS pinned to the gateway's own certificate
// when it has one.
func (g *Gateway) listenerConnConfig(tlsCfg *tls.Config) func(database string) (*pgx.ConnConfig, error) {
	var pinned []byte
	if tlsCfg != nil && len(tlsCfg.Certificates) > 0 && len(tlsCfg.Certificates[0].Certificate) > 0 {
		pinned = tlsCfg.Certificates[0].Certificate[0]
	}
	return func(database string) (*pgx.ConnConfig, error) {
		addr, _ := g.wireAddr.Load().(string)
		if addr == "" {
			return nil, pgerr.New(pgerr.UnableToConnect, "pgwarden: the gateway's Postgres listener is not serving yet")
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1" // listening on every address (or a name): this host's loopback
			if ip != nil && ip.To4() == nil {
				host = "::1"
			}
		}
		u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, port), Path: "/" + database, RawQuery: "sslmode=disable&connect_timeout=10"}
		cc, err := pgx.ParseConfig(u.String())
		if err != nil {
			return nil, err
		}
		// Nothing from the gateway's own environment (PGOPTIONS, PGAPPNAME, ...).
		cc.RuntimeParams = map[string]string{}
		cc.Fallbacks = nil
		if pinned != nil {
			cc.TLSConfig = &tls.Config{
				MinVersion: tls.VersionTLS12,
				// The listener's certificate is known exactly: it is ours.
				InsecureSkipVerify: true,
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
						return errors.New("the Postgres listener presented another certificate than the gateway's own")
					}
					return nil
				},
			}
		}
		return cc, nil
	}
}

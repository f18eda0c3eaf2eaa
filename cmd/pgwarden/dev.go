package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/internal/devstack"
	"github.com/pgwarden/pgwarden/internal/gateway"
)

const defaultDevData = "data"

func devCmd(g *globals) *cobra.Command {
	var dataDir, listen, adminListen string
	var pgPort int
	c := &cobra.Command{
		Use:   "dev [--data DIR]",
		Short: "run a complete local stack: PostgreSQL + pgvector, a development OIDC issuer, native credentials, seeded demo data",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log := g.logger(nil)
			abs, err := filepath.Abs(dataDir)
			if err != nil {
				return err
			}
			stack, err := devstack.Start(ctx, devstack.Options{DataDir: abs, PGPort: pgPort, Log: log})
			if err != nil {
				return err
			}
			defer stack.Stop()
			// Bind both listeners before anything says "running": a taken
			// port fails here, and a port of 0 resolves to the real one,
			// which the issuer URL and the banner then name.
			wl, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen %s: %w", listen, err)
			}
			defer wl.Close()
			al, err := net.Listen("tcp", adminListen)
			if err != nil {
				return fmt.Errorf("admin listen %s: %w", adminListen, err)
			}
			defer al.Close()
			listen, adminListen := wl.Addr().String(), al.Addr().String()
			issuerURL := "http://" + adminListen + "/dev-issuer"
			iss, err := devissuer.Open(abs, issuerURL)
			if err != nil {
				return err
			}
			cfg, err := devConfig(abs, listen, adminListen, issuerURL, stack)
			if err != nil {
				return err
			}
			gw, err := gateway.New(ctx, cfg, gateway.Options{
				Log:              log,
				PublicHandlers:   map[string]http.Handler{"/dev-issuer/": iss.Handler()},
				IssuerServedHere: true,
				Version:          version,
			})
			if err != nil {
				return err
			}
			printDevBanner(g, abs, listen, adminListen)
			return gw.Serve(ctx, wl, al)
		},
	}
	c.Flags().StringVar(&dataDir, "data", defaultDevData, "data directory (PostgreSQL cluster, issuer keys, recordings, approvals)")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:6432", "Postgres listener (port 0: any free port, named in the banner)")
	c.Flags().StringVar(&adminListen, "admin-listen", "127.0.0.1:6480", "admin HTTP listener (also serves the development issuer; port 0: any free port)")
	c.Flags().IntVar(&pgPort, "pg-port", 0, "port of the local PostgreSQL (0: 54329 if free, else any)")
	return c
}

// devConfig is the configuration `pgwarden dev` runs with: the SPEC's
// example policy and masking rules over the seeded demo database.
func devConfig(dataDir, listen, adminListen, issuerURL string, stack *devstack.Stack) (*config.Config, error) {
	cfg := config.Default()
	cfg.Listen = listen
	cfg.Admin.Listen = adminListen
	cfg.TLS = config.TLS{SelfSigned: true, Require: true}
	cfg.Auth.OIDC.Issuer = issuerURL
	// Browser sign-in to /ui/ through the dev issuer's public client
	// (authorization code + PKCE, its development sign-in page). Its
	// redirect URIs are loopback only: on another admin address the page
	// takes a pasted token instead.
	if devBrowserSignIn(adminListen) {
		cfg.Auth.OIDC.ClientID = devissuer.UIClientID
	}
	cfg.Credentials.Provider = "native"
	cfg.Credentials.Native.AdminDSN = stack.AdminDSN
	key, err := secretFile(filepath.Join(dataDir, "mask-key"))
	if err != nil {
		return nil, err
	}
	// Two connection profiles on the one local server, each with its own
	// policy and masking: the startup database picks one.
	vecPolicy := cfg.Policy
	vecPolicy.Roles = devstack.DemoRoles()
	vecPolicy.Approval.Approvers = []string{"dba"}
	vecMask := cfg.Masking
	vecMask.HMACKey = key
	vecMask.Rules = devstack.DemoMaskRules()
	vecMask.Detectors = []string{"email", "phone", "credit_card", "ssn"}
	supPolicy := cfg.Policy
	supPolicy.Roles = devstack.DemoSupportRoles()
	supPolicy.Approval.Approvers = []string{"dba"}
	supMask := cfg.Masking
	supMask.HMACKey = key
	supMask.Rules = devstack.DemoSupportMaskRules()
	supMask.Detectors = []string{"email", "phone", "credit_card", "ssn"}
	up := func(db string) config.Upstream {
		u := cfg.Upstream
		u.Host, u.Port, u.Databases, u.SSLMode = "127.0.0.1", stack.Port, []string{db}, "disable"
		return u
	}
	cfg.Upstreams = map[string]config.UpstreamProfile{
		devstack.Database:        {Upstream: up(devstack.Database), Policy: &vecPolicy, Masking: &vecMask},
		devstack.SupportDatabase: {Upstream: up(devstack.SupportDatabase), Policy: &supPolicy, Masking: &supMask},
	}
	cfg.Store.Dir = filepath.Join(dataDir, "store")
	// Agents: MCP at /mcp on the admin listener (docs/agents.md).
	cfg.MCP.Enabled, cfg.MCP.Database = true, devstack.Database
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// devBrowserSignIn reports whether the dev issuer's "pgwarden-ui" client
// accepts the admin listener's callback (http://127.0.0.1:PORT/ui/callback
// or http://localhost:PORT/ui/callback).
func devBrowserSignIn(adminListen string) bool {
	host, _, err := net.SplitHostPort(adminListen)
	return err == nil && (host == "127.0.0.1" || host == "localhost")
}

// secretFile returns the secret kept in path, creating it (0600) once.
func secretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	s := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

func printDevBanner(g *globals, dataDir, listen, adminListen string) {
	host, port := splitHostPort(listen)
	dataFlag := ""
	if rel, err := filepath.Rel(mustWd(), dataDir); err != nil || rel != defaultDevData {
		dataFlag = " --data " + dataDir
	}
	uiLine := "Approvers: open http://" + adminListen + "/ui/ and sign in (development sign-in page: type bob@example.com, groups dba)\n"
	if !devBrowserSignIn(adminListen) {
		uiLine = "Approvers: http://" + adminListen + "/ui/ takes a pasted token (browser sign-in needs --admin-listen on 127.0.0.1 or localhost)\n"
	}
	fmt.Fprintf(g.stdout, `
pgwarden dev is running.
  Postgres listener : %s (TLS required, self-signed)
  Admin / issuer    : http://%s  (/healthz /readyz /metrics /ui/ /dev-issuer/)
  Data              : %s

Connect with psql, as an analyst (search + read, PII masked):
  PGPASSWORD=$(bin/pgwarden token%s --user alice@example.com --groups analyst) psql "host=%s port=%s dbname=vectors user=alice@example.com sslmode=require"

A second connection profile, support (a ticket RAG store with its own policy and masking):
  PGPASSWORD=$(bin/pgwarden token%s --user sam@example.com --groups support) psql "host=%s port=%s dbname=support user=sam@example.com sslmode=require"

Or log in like a person would (OAuth device flow against the development issuer):
  PGHOST=%s PGPORT=%s PGDATABASE=vectors bin/pgwarden psql --issuer http://%s/dev-issuer

Other groups: ingest (insert/update/delete), dba (everything; drops and bulk deletes wait for a second dba).
Approve held statements:  PGWARDEN_TOKEN=$(bin/pgwarden token%s --user bob@example.com --groups dba) bin/pgwarden approvals list
%sAgents (MCP, docs/agents.md): streamable HTTP at http://%s/mcp with a bearer token, or on stdio:
  PGWARDEN_TOKEN=$(bin/pgwarden token%s --user alice@example.com --groups analyst) bin/pgwarden mcp --gateway %s --database vectors
Press Ctrl-C to stop everything.
`, listen, adminListen, dataDir, dataFlag, host, port, dataFlag, host, port, host, port, adminListen, dataFlag, uiLine, adminListen, dataFlag, listen)
}

func splitHostPort(hp string) (string, string) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 {
		return hp, "5432"
	}
	if _, err := strconv.Atoi(hp[i+1:]); err != nil {
		return hp, "5432"
	}
	return hp[:i], hp[i+1:]
}

func mustWd() string {
	wd, _ := os.Getwd()
	return wd
}

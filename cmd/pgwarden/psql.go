package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/internal/login"
)

// execPsql replaces the process with psql; tests swap it.
var execPsql = syscall.Exec

func psqlCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "psql [--config client.yaml] [--issuer URL] [--client-id ID] [--] [psql args...]",
		Short: "run psql through the gateway with a token (like login --print) and the gateway's address from the client config",
		Long: `psql gets a token like "pgwarden login --print" (cached, refreshed or a new
device login), then runs the psql found in PATH with PGPASSWORD set to it and
PGHOST, PGPORT, PGDATABASE, PGUSER and PGSSLMODE (require) filled from the
client config's gateway: section, unless already set in the environment.
PGUSER defaults to the token's email. pgwarden's own flags must come first;
everything after them (or after --) goes to psql unchanged.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			var f loginFlags
			rest, err := splitPsqlArgs(args, &f)
			if err != nil {
				return usageError{err}
			}
			client, cc, err := f.client(g.stderr)
			if err != nil {
				return err
			}
			path, err := exec.LookPath("psql")
			if err != nil {
				return errorf("psql not found in PATH: %v", err)
			}
			tok, err := client.Token(cmd.Context())
			if err != nil {
				return err
			}
			env := psqlEnv(os.Environ(), cc, tok.AccessToken)
			return execPsql(path, append([]string{"psql"}, rest...), env)
		},
	}
}

// splitPsqlArgs takes pgwarden's leading flags and returns psql's args.
func splitPsqlArgs(args []string, f *loginFlags) ([]string, error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return args[i+1:], nil
		}
		name, val, hasVal := strings.Cut(a, "=")
		var dst *string
		switch name {
		case "--config":
			dst = &f.config
		case "--issuer":
			dst = &f.issuer
		case "--client-id":
			dst = &f.clientID
		default:
			return args[i:], nil
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, errorf("%s needs a value", name)
			}
			i++
			val = args[i]
		}
		*dst = val
	}
	return nil, nil
}

var psqlEnv = login.PsqlEnv

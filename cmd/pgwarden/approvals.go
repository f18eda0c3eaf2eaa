package main

import (
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/approvals"
)

// adminURL resolves the admin API address: --admin, else admin.listen of
// --config, else the SPEC default.
func adminURL(flag, cfgPath string) (string, error) {
	if flag != "" {
		return strings.TrimSuffix(flag, "/"), nil
	}
	cfg, err := loadOptionalConfig(cfgPath)
	if err != nil {
		return "", err
	}
	if cfg != nil && cfg.Admin.Listen != "" {
		return "http://" + cfg.Admin.Listen, nil
	}
	return "http://127.0.0.1:6480", nil
}

func approvalsCmd(g *globals) *cobra.Command {
	var admin, cfgPath, token string
	c := &cobra.Command{
		Use:   "approvals list | show ID | approve ID [--comment C] | deny ID --reason R",
		Short: "the approver's tool: list, inspect and decide held statements through the admin API",
		// The subcommand grammar is parsed by approvals.RunCLI.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			rest, err := takeFlags(args, map[string]*string{"--admin": &admin, "--config": &cfgPath, "--token": &token})
			if err != nil {
				return usageError{err}
			}
			if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
				return cmd.Help()
			}
			base, err := adminURL(admin, cfgPath)
			if err != nil {
				return err
			}
			tok, err := tokenFrom(token)
			if err != nil {
				return err
			}
			client := &approvals.Client{BaseURL: base, Token: tok, HTTP: &http.Client{Timeout: 30 * time.Second}}
			if code := approvals.RunCLI(cmd.Context(), rest, g.stdout, g.stderr, client); code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	return c
}

// takeFlags removes --name VALUE / --name=VALUE pairs for the given names
// from args and returns the rest in order.
func takeFlags(args []string, flags map[string]*string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		dst, ok := flags[name]
		if !ok {
			rest = append(rest, a)
			continue
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
	return rest, nil
}

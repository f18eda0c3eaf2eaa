package main

import (
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/approvals"
)

// adminURL resolves the admin API address: --admin, else admin.listen of
// --config, else approvals.DefaultAdminURL (the SPEC default).
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
	return approvals.DefaultAdminURL, nil
}

func approvalsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "approvals list [--state S] [--profile P] | show ID | approve ID [--comment C] | deny ID --reason R",
		Short: "the approver's tool: list, inspect and decide held statements through the admin API",
		// The subcommand grammar is parsed by approvals.RunCLI; --admin,
		// --config and --token may stand anywhere (approvals.SplitGlobalFlags).
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			gf, rest, err := approvals.SplitGlobalFlags(args)
			if err != nil {
				return usageError{err}
			}
			if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
				return cmd.Help()
			}
			base, err := adminURL(gf.Admin, gf.Config)
			if err != nil {
				return err
			}
			tok, err := tokenFrom(gf.Token)
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
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

func policyCmd(g *globals) *cobra.Command {
	root := &cobra.Command{Use: "policy", Short: "inspect policy: offline (explain) or against the database's own privileges (check)"}
	var cfgPath, groups, prof string
	explain := &cobra.Command{
		Use:   `explain --config FILE [--profile P] --groups g1[,g2] "SQL"`,
		Short: "print the statements of SQL, their actions, the decision and which masking applies, without any database",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRequiredConfig(cfgPath)
			if err != nil {
				return err
			}
			if cfg, err = profileConfig(cfg, prof); err != nil {
				return err
			}
			gs := splitGroups(groups)
			if err := sqlpolicy.Explain(g.stdout, cfg, gs, args[0]); err != nil {
				return err
			}
			// Column by column: what masking does to each output (no catalog:
			// views are not expanded offline).
			eng, err := masking.New(cfg.Masking, nil)
			if err != nil {
				return err
			}
			lines := eng.Explain(args[0], sqlpolicy.NewPolicy(cfg.Policy).Unmask(gs))
			if len(lines) > 0 {
				fmt.Fprintln(g.stdout, "\nmasking of output columns:")
				for _, l := range lines {
					fmt.Fprintln(g.stdout, "  "+l)
				}
			}
			return nil
		},
	}
	explain.Flags().StringVar(&cfgPath, "config", "", "configuration file")
	explain.Flags().StringVar(&groups, "groups", "", "comma-separated groups of the user")
	explain.Flags().StringVar(&prof, "profile", "", "connection profile whose policy and masking apply (required with several under upstreams:)")
	root.AddCommand(explain, policyCheckCmd(g))
	return root
}

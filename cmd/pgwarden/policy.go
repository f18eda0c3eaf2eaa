package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

func policyCmd(g *globals) *cobra.Command {
	root := &cobra.Command{Use: "policy", Short: "inspect policy offline"}
	var cfgPath, groups string
	explain := &cobra.Command{
		Use:   `explain --config FILE --groups g1[,g2] "SQL"`,
		Short: "print the statements of SQL, their actions, the decision and which masking applies, without any database",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgPath == "" {
				return usageError{errorf("--config is required")}
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			var gs []string
			for _, s := range strings.Split(groups, ",") {
				if s = strings.TrimSpace(s); s != "" {
					gs = append(gs, s)
				}
			}
			return sqlpolicy.Explain(g.stdout, cfg, gs, args[0])
		},
	}
	explain.Flags().StringVar(&cfgPath, "config", "", "configuration file")
	explain.Flags().StringVar(&groups, "groups", "", "comma-separated groups of the user")
	root.AddCommand(explain)
	return root
}

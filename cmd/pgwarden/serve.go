package main

import (
	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/gateway"
)

func serveCmd(g *globals) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "run the gateway: the Postgres listener and the admin HTTP listener",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgPath == "" {
				return usageError{errorf("--config is required")}
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			log := g.logger(cfg)
			gw, err := gateway.New(cmd.Context(), cfg, gateway.Options{Log: log})
			if err != nil {
				return err
			}
			return gw.Run(cmd.Context())
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "configuration file (YAML)")
	return c
}

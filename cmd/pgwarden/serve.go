package main

import (
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/internal/gateway"
)

func serveCmd(g *globals) *cobra.Command {
	var cfgPath string
	c := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "run the gateway: the Postgres listener and the admin HTTP listener",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRequiredConfig(cfgPath)
			if err != nil {
				return err
			}
			log := g.logger(cfg)
			gw, err := gateway.New(cmd.Context(), cfg, gateway.Options{Log: log, PublicHandlers: pprofHandlers(), Version: version})
			if err != nil {
				return err
			}
			return gw.Run(cmd.Context())
		},
	}
	c.Flags().StringVar(&cfgPath, "config", "", "configuration file (YAML)")
	return c
}

// pprofHandlers mounts net/http/pprof on the admin listener when
// PGWARDEN_PPROF=1 (make bench PROFILE=1); off by default, because
// profiles expose internals and cost CPU while they run.
func pprofHandlers() map[string]http.Handler {
	if os.Getenv("PGWARDEN_PPROF") != "1" {
		return nil
	}
	return map[string]http.Handler{
		"/debug/pprof/":        http.HandlerFunc(pprof.Index),
		"/debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
		"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"/debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
		"/debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
}

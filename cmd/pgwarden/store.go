package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/internal/sharedstore"
)

// storeCmd: `pgwarden store migrate --config FILE` creates or upgrades the
// shared store's schema (store.dsn) and exits — for store.migrate: off,
// where operators upgrade the schema before rolling out a new version.
func storeCmd(g *globals) *cobra.Command {
	root := &cobra.Command{Use: "store", Short: "the shared PostgreSQL store (store.dsn)"}
	var cfgPath string
	migrate := &cobra.Command{
		Use:   "migrate --config FILE",
		Short: "create or upgrade the shared store's schema and exit",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRequiredConfig(cfgPath)
			if err != nil {
				return err
			}
			if cfg.Store.DSN == "" {
				return usageError{fmt.Errorf("%s has no store.dsn: a single gateway's file store (store.dir) needs no migration", cfgPath)}
			}
			ctx := cmd.Context()
			db, err := sharedstore.OpenRaw(ctx, cfg.Store.DSN, "pgwarden store migrate")
			if err != nil {
				return fmt.Errorf("store %s: %w", sharedstore.Redact(cfg.Store.DSN), err)
			}
			defer db.Close()
			before, err := db.SchemaVersion(ctx)
			if err != nil {
				return err
			}
			applied, err := db.Migrate(ctx)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(g.stdout, "store schema is at version %d: nothing to do\n", before)
				return nil
			}
			fmt.Fprintf(g.stdout, "store schema upgraded from version %d to %d (applied %v)\n", before, applied[len(applied)-1], applied)
			return nil
		},
	}
	migrate.Flags().StringVar(&cfgPath, "config", "", "configuration file (its store.dsn names the store)")
	root.AddCommand(migrate)
	return root
}

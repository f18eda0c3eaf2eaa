package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/identity/devissuer"
)

func tokenCmd(g *globals) *cobra.Command {
	var user, groups, dataDir, audience string
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "token --user U --groups g1,g2 [--ttl 1h] [--data DIR]",
		Short: "print a token signed by the development issuer of `pgwarden dev` (refuses to work against anything else)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if user == "" {
				return usageError{errorf("--user is required")}
			}
			if ttl <= 0 || ttl > 24*time.Hour {
				return usageError{errorf("--ttl must be between 1s and 24h")}
			}
			iss, err := devissuer.OpenExisting(dataDir)
			if err != nil {
				return err
			}
			gs := splitGroups(groups)
			tok, err := iss.Mint(user, gs, ttl, audience)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, tok)
			return nil
		},
	}
	c.Flags().StringVar(&user, "user", "", "user name (the token's email claim; must equal the psql user)")
	c.Flags().StringVar(&groups, "groups", "", "comma-separated groups")
	c.Flags().DurationVar(&ttl, "ttl", time.Hour, "token lifetime")
	c.Flags().StringVar(&dataDir, "data", defaultDevData, "data directory of the running `pgwarden dev`")
	c.Flags().StringVar(&audience, "audience", "pgwarden", "token audience")
	return c
}

// splitGroups is the --groups flag's value as a list: comma-separated,
// blanks trimmed, empty items dropped (nil when there are none).
func splitGroups(groups string) []string {
	var gs []string
	for _, s := range strings.Split(groups, ",") {
		if s = strings.TrimSpace(s); s != "" {
			gs = append(gs, s)
		}
	}
	return gs
}

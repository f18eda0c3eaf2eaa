package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/identity/devissuer"
)

func tokenCmd(g *globals) *cobra.Command {
	var user, groups, actor, actorGroups, dataDir, audience string
	var ttl time.Duration
	c := &cobra.Command{
		Use:   "token --user U --groups g1,g2 [--actor A [--actor-groups g1]] [--ttl 1h] [--data DIR]",
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
			var act *devissuer.Actor
			switch {
			case actor != "":
				act = &devissuer.Actor{Sub: actor}
				if cmd.Flags().Changed("actor-groups") {
					act.Groups = append([]string{}, splitGroups(actorGroups)...)
				}
			case cmd.Flags().Changed("actor-groups"):
				return usageError{errorf("--actor-groups needs --actor")}
			}
			tok, err := iss.MintDelegated(user, splitGroups(groups), act, ttl, audience)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, tok)
			return nil
		},
	}
	c.Flags().StringVar(&user, "user", "", "user name (the token's email claim; must equal the psql user)")
	c.Flags().StringVar(&groups, "groups", "", "comma-separated groups")
	c.Flags().StringVar(&actor, "actor", "", "a delegated token: this agent acts for --user (RFC 8693 act claim; the session records both)")
	c.Flags().StringVar(&actorGroups, "actor-groups", "", "comma-separated groups of the --actor; the session gets only the groups both hold (none without this flag)")
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

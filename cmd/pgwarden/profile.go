package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pgwarden/pgwarden/config"
)

// profileConfig returns cfg seen through one connection profile: its
// upstream, credentials, policy and masking in the top-level sections, so
// commands written for one upstream (policy explain, policy check) work on
// any profile. name "" picks the only profile; with several it is a usage
// error naming them (the caller holds the configuration file).
func profileConfig(cfg *config.Config, name string) (*config.Config, error) {
	ps := cfg.Profiles()
	var p config.Profile
	switch {
	case name != "":
		var ok bool
		if p, ok = cfg.Profile(name); !ok {
			return nil, usageError{fmt.Errorf("no connection profile %q in the configuration (profiles: %s)", name, profileNames(ps))}
		}
	case len(ps) == 1:
		p = ps[0]
	default:
		return nil, usageError{errors.New("the configuration has several connection profiles: pass --profile (one of " + profileNames(ps) + ")")}
	}
	c := *cfg
	c.Upstream, c.Credentials, c.Policy, c.Masking = p.Upstream, p.Credentials, p.Policy, p.Masking
	c.Upstreams = nil
	return &c, nil
}

func profileNames(ps []config.Profile) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

package pgwire

import (
	"errors"
	"fmt"
	"time"
)

// router picks a session's Target from its startup database.
type router struct {
	byDB map[string]*Target
	any  *Target // the target without a database list, if any
	all  []*Target
}

// newRouter validates the targets and fills in their upstream defaults.
func newRouter(ts []Target) (router, error) {
	r := router{byDB: map[string]*Target{}}
	names := map[string]bool{}
	for i := range ts {
		t := ts[i] // a copy: the caller's slice is not changed
		if t.Name == "" {
			return r, fmt.Errorf("pgwire: Targets[%d] has no name", i)
		}
		if names[t.Name] {
			return r, fmt.Errorf("pgwire: target %q is configured twice", t.Name)
		}
		names[t.Name] = true
		if t.Provider == nil {
			return r, fmt.Errorf("pgwire: target %q has no credential Provider", t.Name)
		}
		if err := t.Upstream.fill(); err != nil {
			return r, fmt.Errorf("pgwire: target %q: %w", t.Name, err)
		}
		if t.DBRoles == nil {
			t.DBRoles = func([]string) []string { return nil }
		}
		tp := &t
		r.all = append(r.all, tp)
		if len(t.Databases) == 0 {
			if r.any != nil {
				return r, fmt.Errorf("pgwire: targets %q and %q both take any database", r.any.Name, t.Name)
			}
			r.any = tp
			continue
		}
		for _, db := range t.Databases {
			if o := r.byDB[db]; o != nil && o != tp {
				return r, fmt.Errorf("pgwire: database %q is routed to both %q and %q", db, o.Name, t.Name)
			}
			r.byDB[db] = tp
		}
	}
	if len(r.all) == 0 {
		return r, errors.New("pgwire: no target")
	}
	return r, nil
}

// route returns the target serving database, or nil.
func (r *router) route(database string) *Target {
	if t := r.byDB[database]; t != nil {
		return t
	}
	return r.any
}

// fill sets the defaults of an Upstream and checks its SSL mode.
func (u *Upstream) fill() error {
	if u.Host == "" {
		u.Host = "127.0.0.1"
	}
	if u.Port == 0 {
		u.Port = 5432
	}
	switch u.SSLMode {
	case "":
		u.SSLMode = "prefer"
	case "disable", "prefer", "require", "verify-full":
	default:
		return fmt.Errorf("Upstream.SSLMode %q is not one of disable, prefer, require, verify-full", u.SSLMode)
	}
	if u.ConnectTimeout <= 0 {
		u.ConnectTimeout = 5 * time.Second
	}
	return nil
}

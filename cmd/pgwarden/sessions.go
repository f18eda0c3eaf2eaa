package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions"
)

type sessionsFlags struct {
	cfgPath, admin, token string
}

// store opens the recording store named in --config: the shared store of
// store.dsn (every gateway's events), else the files under store.dir. done
// (never nil) releases it.
func (f *sessionsFlags) store(ctx context.Context) (st *sessions.Store, done func(), err error) {
	done = func() {}
	if f.cfgPath == "" {
		return nil, done, usageError{errorf("--config FILE is required (or --admin URL --token T for list/show)")}
	}
	cfg, err := config.Load(f.cfgPath)
	if err != nil {
		return nil, done, err
	}
	if cfg.Store.DSN != "" {
		db, err := sharedstore.Open(ctx, cfg.Store.DSN, "pgwarden sessions", false)
		if err != nil {
			return nil, done, errorf("shared store %s: %w", sharedstore.Redact(cfg.Store.DSN), err)
		}
		return sessions.OpenSharedStore(db), db.Close, nil
	}
	st, err = sessions.OpenStore(cfg.Store.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, done, errorf("no session recordings under %s (store.dir of %s): has pgwarden run with this configuration?", cfg.Store.Dir, f.cfgPath)
	}
	return st, done, err
}

// api fetches path from the admin API into v.
func (f *sessionsFlags) api(cmd *cobra.Command, path string, q url.Values, v any) error {
	tok, err := tokenFrom(f.token)
	if err != nil {
		return err
	}
	u := f.admin + "/api/v1" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return errorf("admin API %s: %s", resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func sessionsCmd(g *globals) *cobra.Command {
	f := &sessionsFlags{}
	root := &cobra.Command{Use: "sessions", Short: "read session recordings: list, show, replay, export, verify"}
	root.PersistentFlags().StringVar(&f.cfgPath, "config", "", "configuration file (its store.dir holds the recordings)")
	root.PersistentFlags().StringVar(&f.admin, "admin", "", "admin API URL (list and show only)")
	root.PersistentFlags().StringVar(&f.token, "token", "", "bearer token for --admin (default: PGWARDEN_TOKEN)")

	var user, actor, database, profile, since, action, decision string
	list := &cobra.Command{
		Use: "list [--user U] [--actor A] [--database DB] [--profile P] [--since T] [--action A] [--decision D]", Short: "list recorded sessions", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sums []sessions.Summary
			if f.admin != "" {
				q := url.Values{}
				for k, v := range map[string]string{"user": user, "actor": actor, "database": database, "profile": profile, "since": since, "action": action, "decision": decision} {
					if v != "" {
						q.Set(k, v)
					}
				}
				var body struct {
					Sessions []sessions.Summary `json:"sessions"`
				}
				if err := f.api(cmd, "/sessions", q, &body); err != nil {
					return err
				}
				sums = body.Sessions
			} else {
				st, done, err := f.store(cmd.Context())
				defer done()
				if err != nil {
					return err
				}
				flt := sessions.Filter{User: user, Actor: actor, Database: database, Profile: profile, Action: action, Decision: decision}
				if since != "" {
					t, err := sessions.ParseSince(since, time.Now())
					if err != nil {
						return usageError{err}
					}
					flt.Since = t
				}
				if sums, err = st.List(flt); err != nil {
					return err
				}
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SESSION\tUSER\tPROFILE\tDATABASE\tSTARTED\tENDED\tSTATEMENTS\tDENIED\tACTIONS")
			for _, s := range sums {
				ended := s.EndedAt
				if s.Active {
					ended = "(active)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%v\n", s.ID, userVia(s.User, s.Actor), dash(s.Profile), dash(s.Database), s.StartedAt, ended, s.Statements, s.Denied, s.Actions)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&user, "user", "", "only sessions of this user")
	list.Flags().StringVar(&actor, "actor", "", "only sessions in which this actor (a delegated token's act sub) acted for the user")
	list.Flags().StringVar(&database, "database", "", "only sessions whose startup database is this one")
	list.Flags().StringVar(&profile, "profile", "", "only sessions of this connection profile")
	list.Flags().StringVar(&since, "since", "", "only sessions active since (RFC 3339 time or a duration like 24h)")
	list.Flags().StringVar(&action, "action", "", "only sessions with a statement of this action")
	list.Flags().StringVar(&decision, "decision", "", "only sessions with this decision (allow, deny, hold, approved, denied)")

	show := &cobra.Command{
		Use: "show ID", Short: "print a session's events as JSON lines", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var evs any
			if f.admin != "" {
				var body map[string]any
				if err := f.api(cmd, "/sessions/"+url.PathEscape(args[0]), nil, &body); err != nil {
					return err
				}
				evs = body
			} else {
				st, done, err := f.store(cmd.Context())
				defer done()
				if err != nil {
					return err
				}
				list, err := st.Get(args[0])
				if err != nil {
					return err
				}
				enc := json.NewEncoder(g.stdout)
				for i := range list {
					if err := enc.Encode(&list[i]); err != nil {
						return err
					}
				}
				return nil
			}
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(evs)
		},
	}

	var follow bool
	replay := &cobra.Command{
		Use: "replay ID [--follow]", Short: "print a psql-like transcript of a session", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, done, err := f.store(cmd.Context())
			defer done()
			if err != nil {
				return err
			}
			return st.Replay(cmd.Context(), g.stdout, args[0], follow)
		},
	}
	replay.Flags().BoolVar(&follow, "follow", false, "keep printing a live session's statements until it ends")

	var exSince, format string
	export := &cobra.Command{
		Use: "export [--since T] [--format jsonl|ocsf]", Short: "export events for a SIEM", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" && format != "ocsf" {
				return usageError{errorf("--format must be jsonl or ocsf")}
			}
			var t time.Time
			if exSince != "" {
				var err error
				if t, err = sessions.ParseSince(exSince, time.Now()); err != nil {
					return usageError{err}
				}
			}
			st, done, err := f.store(cmd.Context())
			defer done()
			if err != nil {
				return err
			}
			return st.Export(g.stdout, t, format)
		},
	}
	export.Flags().StringVar(&exSince, "since", "", "only events at or after (RFC 3339 time or a duration like 24h)")
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl | ocsf")

	verify := &cobra.Command{
		Use: "verify", Short: "check every hash chain; exit 1 and print the first broken event on tampering", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, done, err := f.store(cmd.Context())
			defer done()
			if err != nil {
				return err
			}
			ok, problem, err := st.Verify(g.stdout)
			if err != nil {
				return err
			}
			if !ok {
				if problem != nil {
					fmt.Fprintln(g.stdout, "TAMPERED:", problem.String())
				}
				return exitError{1}
			}
			fmt.Fprintln(g.stdout, "ok: every chain verifies")
			return nil
		},
	}
	root.AddCommand(list, show, replay, export, verify)
	return root
}

// dash is s, or "-" for an empty table cell.
// userVia is a session's user as listings show it: "alice via agent-7"
// for a delegated session.
func userVia(user, actor string) string {
	if actor == "" {
		return user
	}
	return user + " via " + actor
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

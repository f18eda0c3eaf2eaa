package sessions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pgwarden/pgwarden/sessions/filestore"
)

// ErrNotFound is returned for an unknown session id.
var ErrNotFound = errors.New("sessions: no such session")

// Store reads a session store (read-only; safe while a Recorder writes
// it): List, Get, Export, Verify and Replay over one Log (the file store's
// segments, OpenStore, or the shared store, OpenSharedStore).
type Store struct {
	log Log
}

// NewStore returns the Store reading l.
func NewStore(l Log) *Store { return &Store{log: l} }

// OpenStore opens the store under storeDir (the `store.dir` key) read-only.
func OpenStore(storeDir string) (*Store, error) {
	dir := filepath.Join(storeDir, "sessions")
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("sessions: opening store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("sessions: %s is not a directory", dir)
	}
	return NewStore(filestore.NewReader(dir)), nil
}

// Filter selects sessions in List. Zero fields match everything.
type Filter struct {
	User     string
	Actor    string    // sessions in which this actor acted for the user (delegated tokens)
	Database string    // sessions whose startup database is this one
	Profile  string    // sessions of this connection profile
	Since    time.Time // sessions with an event at or after Since
	Action   string    // sessions with a statement of this action
	Decision string    // sessions with a statement/approval of this decision
}

// Summary describes one recorded session.
type Summary struct {
	ID              string   `json:"id"`
	User            string   `json:"user"`
	Actor           string   `json:"actor,omitempty"`
	Groups          []string `json:"groups,omitempty"`
	ClientAddr      string   `json:"client_addr,omitempty"`
	ApplicationName string   `json:"application_name,omitempty"`
	Database        string   `json:"database,omitempty"`
	Profile         string   `json:"profile,omitempty"`
	BackendUser     string   `json:"backend_user,omitempty"`
	StartedAt       string   `json:"started_at,omitempty"`
	EndedAt         string   `json:"ended_at,omitempty"`
	EndReason       string   `json:"end_reason,omitempty"`
	Active          bool     `json:"active"`
	Statements      int      `json:"statements"`
	Denied          int      `json:"denied"`
	Errors          int      `json:"errors"`
	Actions         []string `json:"actions"`
	Decisions       []string `json:"decisions"`
	lastTime        string
}

func addUniq(s []string, v ...string) []string {
	for _, x := range v {
		found := false
		for _, y := range s {
			if x == y {
				found = true
				break
			}
		}
		if !found && x != "" {
			s = append(s, x)
		}
	}
	return s
}

// List returns the sessions matching f, oldest first.
func (s *Store) List(f Filter) ([]Summary, error) {
	byID := map[string]*Summary{}
	var order []string
	actionHit, decisionHit := map[string]bool{}, map[string]bool{}
	err := s.log.Each("", func(_ []byte, ev *Event) error {
		if ev.Session == "" {
			return nil
		}
		sm := byID[ev.Session]
		if sm == nil {
			sm = &Summary{ID: ev.Session, User: ev.User, Actor: ev.Actor, Groups: ev.Groups, ClientAddr: ev.ClientAddr,
				ApplicationName: ev.ApplicationName, Database: ev.Database, Profile: ev.Profile,
				BackendUser: ev.BackendUser, StartedAt: ev.Time, Active: true, Actions: []string{}, Decisions: []string{}}
			byID[ev.Session] = sm
			order = append(order, ev.Session)
		}
		sm.lastTime = ev.Time
		switch ev.Type {
		case TypeStatement:
			sm.Statements++
			if ev.Decision == DecisionDeny || ev.Decision == DecisionDenied {
				sm.Denied++
			}
			if ev.Error != "" {
				sm.Errors++
			}
		case TypeError:
			sm.Errors++
		case TypeSessionEnd:
			sm.EndedAt, sm.EndReason, sm.Active = ev.Time, ev.Reason, false
		}
		sm.Actions = addUniq(sm.Actions, ev.Actions...)
		sm.Decisions = addUniq(sm.Decisions, ev.Decision)
		for _, a := range ev.Actions {
			if a == f.Action {
				actionHit[ev.Session] = true
			}
		}
		if f.Decision != "" && ev.Decision == f.Decision {
			decisionHit[ev.Session] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, id := range order {
		sm := byID[id]
		if f.User != "" && sm.User != f.User {
			continue
		}
		if f.Actor != "" && sm.Actor != f.Actor {
			continue
		}
		if f.Database != "" && sm.Database != f.Database {
			continue
		}
		if f.Profile != "" && sm.Profile != f.Profile {
			continue
		}
		if f.Action != "" && !actionHit[id] {
			continue
		}
		if f.Decision != "" && !decisionHit[id] {
			continue
		}
		if !f.Since.IsZero() {
			t, err := time.Parse(time.RFC3339Nano, sm.lastTime)
			if err != nil || t.Before(f.Since) {
				continue
			}
		}
		out = append(out, *sm)
	}
	return out, nil
}

// Get returns the events of one session in order.
func (s *Store) Get(id string) ([]Event, error) {
	var out []Event
	fn := func(_ []byte, ev *Event) error {
		if ev.Session == id {
			out = append(out, *ev)
		}
		return nil
	}
	if err := s.log.Each(id, fn); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// Export writes every event at or after since, in store order, as JSON
// Lines: format "jsonl" (the stored lines, hashes included) or "ocsf"
// (one OCSF Datastore Activity object per line; see docs/recording.md).
func (s *Store) Export(w io.Writer, since time.Time, format string) error {
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "ocsf" {
		return fmt.Errorf("sessions: unknown export format %q (jsonl or ocsf)", format)
	}
	var buf []byte
	return s.log.Each("", func(raw []byte, ev *Event) error {
		if !since.IsZero() && ev.TimeValue().Before(since) {
			return nil
		}
		buf = buf[:0]
		if format == "jsonl" {
			buf = append(buf, raw...)
		} else {
			if ev.Type == TypeRetention {
				return nil
			}
			b, err := OCSF(ev)
			if err != nil {
				return err
			}
			buf = append(buf, b...)
		}
		buf = append(buf, '\n')
		_, err := w.Write(buf)
		return err
	})
}

// Verify checks the whole store: every line's canonical form and hash, the
// chain (seq +1, prev_hash = previous hash) across segments, a purged
// prefix only where a retention marker in the chain attests it, and the
// end against head.json (so removing trailing events is caught). It writes
// a one-line verdict to w. ok=false with the first problem on tampering;
// err only for I/O failures.
func (s *Store) Verify(w io.Writer) (bool, *Problem, error) {
	v, err := s.log.Verify()
	if err != nil {
		return false, nil, err
	}
	if p := v.Problem; p != nil {
		fmt.Fprintf(w, "FAILED: %s\n", p)
		return false, p, nil
	}
	fmt.Fprintf(w, "ok: %d events in %d %s\n", v.Events, v.Parts, v.Unit)
	return true, nil, nil
}

// Replay writes a psql-like transcript of one session. With follow it
// keeps polling a live session until its session_end or ctx is done.
func (s *Store) Replay(ctx context.Context, w io.Writer, id string, follow bool) error {
	t := s.log.Follow(id)
	found, ended := false, false
	var werr error
	emit := func(_ []byte, ev *Event) {
		if ev.Session != id || werr != nil {
			return
		}
		if !found {
			found = true
			werr = replayHeader(w, ev)
		}
		if werr == nil {
			werr = replayEvent(w, ev)
		}
		if ev.Type == TypeSessionEnd {
			ended = true
		}
	}
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		for {
			n, err := t.Next(emit)
			if err != nil {
				return err
			}
			if werr != nil {
				return werr
			}
			if n == 0 || ended {
				break
			}
		}
		if ended || !follow {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// Package pgstore is the session record's read side in the shared
// PostgreSQL store (store.dsn): table pgwarden.events, one hash chain per
// gateway. Reader is one implementation of sessions.Log.
package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions/record"
)

type (
	event   = record.Event
	problem = record.Problem
)

// Reader reads the shared store's pgwarden.events: every gateway's
// chain. It is the shared store's implementation of sessions.Log.
type Reader struct {
	db *sharedstore.Store
}

// NewReader returns the Reader of the session record in db.
func NewReader(db *sharedstore.Store) *Reader { return &Reader{db: db} }

// Each is every gateway's events (of session when it is not ""), in
// time order (a gateway's own events in seq order).
func (s *Reader) Each(session string, fn func(raw []byte, ev *event) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	q := `SELECT line FROM pgwarden.events ORDER BY time, gateway, seq`
	args := []any{}
	if session != "" {
		q = `SELECT line FROM pgwarden.events WHERE session = $1 ORDER BY time, gateway, seq`
		args = append(args, session)
	}
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sessions: %w", s.db.Unreachable(err))
	}
	defer rows.Close()
	var ev event
	var line []byte
	for rows.Next() {
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("sessions: %w", s.db.Unreachable(err))
		}
		if record.DecodeLoose(line, &ev) != nil {
			continue
		}
		if err := fn(line, &ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sessions: %w", s.db.Unreachable(err))
	}
	return nil
}

// Verify checks every gateway's chain (see verify).
func (s *Reader) Verify() (record.Verdict, error) {
	p, n, chains, err := s.verify()
	return record.Verdict{Problem: p, Events: n, Parts: chains, Unit: "gateway chains, every chain intact"}, err
}

// Follow polls the session's events.
func (s *Reader) Follow(session string) record.Follower {
	return &sharedFollow{s: s, session: session}
}

type sharedFollow struct {
	s       *Reader
	session string
	shown   int // events passed on so far
}

// Next reads the session's events and passes on those not passed before
// (all of them once the query succeeded).
func (f *sharedFollow) Next(fn func(raw []byte, ev *event)) (int, error) {
	type rec struct {
		raw []byte
		ev  event
	}
	var evs []rec
	i := 0
	err := f.s.Each(f.session, func(raw []byte, ev *event) error {
		if i >= f.shown {
			evs = append(evs, rec{append([]byte(nil), raw...), *ev})
		}
		i++
		return nil
	})
	if err != nil {
		return 0, err
	}
	for k := range evs {
		fn(evs[k].raw, &evs[k].ev)
	}
	f.shown += len(evs)
	return len(evs), nil
}

// verify checks every gateway's chain: each line canonical with a
// valid hash, its gateway and seq as indexed, seq from 1 without a gap and
// prev_hash linking each event to the one before.
func (s *Reader) verify() (*problem, int64, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	rows, err := s.db.Pool.Query(ctx, `SELECT gateway, seq, line FROM pgwarden.events ORDER BY gateway, seq`)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sessions: %w", s.db.Unreachable(err))
	}
	defer rows.Close()
	enc := record.NewEncoder()
	var (
		ev       event
		n        int64
		chains   int
		gw, prev string
		prevSeq  int64
		gateway  string
		seq      int64
		line     []byte
	)
	for rows.Next() {
		if err := rows.Scan(&gateway, &seq, &line); err != nil {
			return nil, 0, 0, fmt.Errorf("sessions: %w", s.db.Unreachable(err))
		}
		where := "gateway " + gateway
		bad := func(msg string) (*problem, int64, int, error) {
			return &problem{Segment: where, Seq: seq, Session: ev.Session, Msg: msg}, n, chains, nil
		}
		if gateway != gw {
			gw, prev, prevSeq = gateway, "", 0
			chains++
		}
		if err := enc.CheckLine(line, &ev); err != nil {
			return bad(err.Error())
		}
		if ev.Gateway != gateway || ev.Seq != seq {
			return bad(fmt.Sprintf("the event says gateway %q seq %d, it is stored as gateway %q seq %d (moved)", ev.Gateway, ev.Seq, gateway, seq))
		}
		if seq != prevSeq+1 {
			if prevSeq == 0 {
				return bad(fmt.Sprintf("chain starts at seq %d, not 1 (events deleted)", seq))
			}
			return bad(fmt.Sprintf("seq %d follows %d (events deleted)", seq, prevSeq))
		}
		if ev.PrevHash != prev {
			return bad(fmt.Sprintf("prev_hash %s does not match the previous event's hash %s (events deleted, inserted or reordered)", record.Short(ev.PrevHash), record.Short(prev)))
		}
		prev, prevSeq = ev.Hash, seq
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("sessions: %w", s.db.Unreachable(err))
	}
	return nil, n, chains, nil
}

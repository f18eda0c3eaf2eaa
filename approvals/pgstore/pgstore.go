// Package pgstore is the approvals store of the shared PostgreSQL store
// (store.dsn): every gateway reads and decides every request. Each change
// is one transaction holding the request's row lock (SELECT … FOR UPDATE),
// so of two gateways deciding or executing the same request at once exactly
// one sees it in the state it needs; the change is announced with
// pg_notify on the channel Channel, and Watch delivers other gateways'
// changes to the manager (a held statement runs within a second of an
// approve sent to any gateway; no polling loop).
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
)

// Channel is the LISTEN/NOTIFY channel of approval changes; the payload is
// "<id> <gateway>".
const Channel = "pgwarden_approvals"

// Store is the shared approvals store as seen by one gateway.
type Store struct {
	db      *sharedstore.Store
	gateway string
	log     zerolog.Logger
	expired []*approvals.Approval

	mu      sync.Mutex
	watch   []func(id string)
	cancel  context.CancelFunc
	done    chan struct{}
	started bool
}

var _ approvals.Store = (*Store)(nil)

// Open returns the store of gateway on db. Requests this gateway's
// previous process held (pending, or approved in wait mode and not run)
// are expired: their sessions ended with it.
func Open(ctx context.Context, db *sharedstore.Store, gateway string, log zerolog.Logger) (*Store, error) {
	s := &Store{db: db, gateway: gateway, log: log.With().Str("component", "approvals-store").Logger()}
	changed, err := s.ExpireGateway(ctx, gateway, approvals.RestartNote)
	if err != nil {
		return nil, err
	}
	s.expired = changed
	return s, nil
}

// ExpireGateway expires the open wait-mode requests held by sessions of
// gateway (its previous process at Open, or a gateway found dead by the
// caller's heartbeat check) with note, and returns them.
func (s *Store) ExpireGateway(ctx context.Context, gateway, note string) ([]*approvals.Approval, error) {
	return s.changeLocked(ctx, `WHERE gateway = $1 AND (state = 'pending' OR (state = 'approved' AND mode <> 'retry'))`,
		[]any{gateway}, func(a *approvals.Approval) (bool, bool) {
			a.State, a.Note = approvals.Expired, note
			return true, false
		})
}

// changeLocked locks the requests matching where (in id order) in one
// transaction and offers each to fn, which changes it or not and may stop
// the walk; the changed ones are written, announced and returned in order.
func (s *Store) changeLocked(ctx context.Context, where string, args []any, fn func(a *approvals.Approval) (changed, stop bool)) ([]*approvals.Approval, error) {
	var out []*approvals.Approval
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT record FROM pgwarden.approvals `+where+` ORDER BY id FOR UPDATE`, args...)
		if err != nil {
			return err
		}
		list, err := collect(rows)
		if err != nil {
			return err
		}
		for _, a := range list {
			changed, stop := fn(a)
			if changed {
				if err := s.put(ctx, tx, a); err != nil {
					return err
				}
				out = append(out, a)
			}
			if stop {
				return nil
			}
		}
		return nil
	})
	return out, err
}

// ExpiredAtOpen returns the requests Open expired.
func (s *Store) ExpiredAtOpen() []*approvals.Approval { return s.expired }

func (s *Store) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), sharedstore.OpTimeout)
}

// tx runs fn in one transaction; a failure other than a refusal or a
// corrupt record is the store being unreachable (sharedstore.ErrUnreachable).
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.db.Pool, fn)
	var refusal *approvals.Error
	if err != nil && !errors.As(err, &refusal) && !errors.Is(err, approvals.ErrCorrupt) {
		return s.db.Unreachable(err)
	}
	return err
}

func collect(rows pgx.Rows) ([]*approvals.Approval, error) {
	defer rows.Close()
	var out []*approvals.Approval
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		a, err := approvals.Decode(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// put writes a (inserting or updating) and announces the change.
func (s *Store) put(ctx context.Context, tx pgx.Tx, a *approvals.Approval) error {
	rec, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE pgwarden.approvals SET state = $2, record = $3 WHERE id = $1`, a.ID, string(a.State), rec)
	if err != nil {
		return err
	}
	return s.notify(ctx, tx, a.ID)
}

func (s *Store) notify(ctx context.Context, tx pgx.Tx, id string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, id+" "+s.gateway)
	return err
}

// Create stores a new request, held by this gateway.
func (s *Store) Create(a *approvals.Approval) error {
	ctx, cancel := s.opCtx()
	defer cancel()
	a.Gateway = s.gateway
	rec, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO pgwarden.approvals (id, state, mode, gateway, session, fingerprint, created_at, profile, record)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
			a.ID, string(a.State), a.Mode, s.gateway, a.Session, a.Fingerprint, a.CreatedAt, a.Profile, rec)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return &approvals.Error{Kind: approvals.ErrInvalid, Msg: "approvals: id collision " + a.ID}
		}
		return s.notify(ctx, tx, a.ID)
	})
}

func notFound(id string) error {
	return &approvals.Error{Kind: approvals.ErrNotFound, Msg: fmt.Sprintf("approval %s not found", id)}
}

// Get returns one request.
func (s *Store) Get(id string) (*approvals.Approval, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	var raw []byte
	err := s.db.Pool.QueryRow(ctx, `SELECT record FROM pgwarden.approvals WHERE id = $1`, id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, s.db.Unreachable(err)
	}
	return approvals.Decode(raw)
}

// Update runs fn on the request under its row lock.
func (s *Store) Update(id string, fn func(a *approvals.Approval) (bool, error)) (*approvals.Approval, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	var out *approvals.Approval
	var ferr error
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var raw []byte
		err := tx.QueryRow(ctx, `SELECT record FROM pgwarden.approvals WHERE id = $1 FOR UPDATE`, id).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(id)
		}
		if err != nil {
			return err
		}
		a, err := approvals.Decode(raw)
		if err != nil {
			return err
		}
		write, err := fn(a)
		out, ferr = a, err
		if !write {
			return nil
		}
		return s.put(ctx, tx, a)
	})
	if err != nil {
		return nil, err
	}
	return out, ferr
}

// UpdateOpen runs fn on every open request, all locked in one transaction.
func (s *Store) UpdateOpen(fn func(a *approvals.Approval) bool) ([]*approvals.Approval, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	return s.changeLocked(ctx, `WHERE state IN ('pending', 'approved')`, nil, func(a *approvals.Approval) (bool, bool) {
		return fn(a), false
	})
}

// Claim offers fn the approved retry-mode requests with this fingerprint.
func (s *Store) Claim(fp string, fn func(a *approvals.Approval) bool) (*approvals.Approval, []*approvals.Approval, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	// The common case (nothing approved for this statement) takes no lock.
	var claimable bool
	if err := s.db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pgwarden.approvals
		WHERE fingerprint = $1 AND state = 'approved' AND mode = 'retry')`, fp).Scan(&claimable); err != nil {
		return nil, nil, s.db.Unreachable(err)
	}
	if !claimable {
		return nil, nil, nil
	}
	var won *approvals.Approval
	changed, err := s.changeLocked(ctx, `WHERE fingerprint = $1 AND state = 'approved' AND mode = 'retry'`, []any{fp},
		func(a *approvals.Approval) (bool, bool) {
			old := a.State
			took := fn(a)
			if a.State == old {
				return false, false
			}
			if took {
				won = a
			}
			return true, took
		})
	if err != nil {
		return nil, nil, err
	}
	if won != nil {
		changed = changed[:len(changed)-1] // the last one changed is the one taken
	}
	return won, changed, nil
}

// List returns the requests f selects, newest first (the state and
// profile columns index them).
func (s *Store) List(f approvals.ListFilter, limit int) ([]*approvals.Approval, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	if limit <= 0 {
		limit = 1 << 30
	}
	where, args := "", []any{}
	for _, c := range []struct{ col, val string }{{"state", string(f.State)}, {"profile", f.Profile}} {
		if c.val == "" {
			continue
		}
		args = append(args, c.val)
		if where == "" {
			where = " WHERE "
		} else {
			where += " AND "
		}
		where += fmt.Sprintf("%s = $%d", c.col, len(args))
	}
	args = append(args, limit)
	rows, err := s.db.Pool.Query(ctx, fmt.Sprintf(`SELECT record FROM pgwarden.approvals%s ORDER BY created_at DESC, id LIMIT $%d`, where, len(args)), args...)
	if err != nil {
		return nil, s.db.Unreachable(err)
	}
	out, err := collect(rows)
	if err != nil {
		return nil, s.db.Unreachable(err)
	}
	return out, nil
}

// Watch registers fn for changes other gateways make. The first call
// starts the listener: one dedicated connection LISTENing on Channel,
// reconnecting by itself; after every (re)connect fn("") is called, which
// means "something may have changed while nobody listened: look at all".
func (s *Store) Watch(fn func(id string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch = append(s.watch, fn)
	if s.started {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go s.listen(ctx)
}

func (s *Store) deliver(id string) {
	s.mu.Lock()
	fns := append([]func(string){}, s.watch...)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(id)
	}
}

func (s *Store) listen(ctx context.Context) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn().Err(s.db.Unreachable(err)).Dur("retry_in", backoff).Msg("approval change listener lost its connection; reconnecting")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, sharedstore.OpTimeout)
	conn, err := pgx.Connect(cctx, s.db.DSN())
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	s.deliver("") // changes made while nobody listened
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		id, from, _ := strings.Cut(n.Payload, " ")
		if from == s.gateway || id == "" {
			continue
		}
		s.deliver(id)
	}
}

// Close stops the listener. The pool belongs to the caller.
func (s *Store) Close() error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// Package boltstore is the single-gateway approvals store: one bbolt file
// under store.dir, every change one fsynced transaction. Writers are
// serialized by bbolt, which is what makes execute-once atomic.
package boltstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pgwarden/pgwarden/approvals"
)

// StoreFile is the bbolt file the store keeps under store.dir.
const StoreFile = "approvals.db"

var _ approvals.Store = (*Store)(nil)

var (
	bucketApprovals = []byte("approvals") // id -> JSON Approval
	bucketOpen      = []byte("open")      // id -> "" for pending/approved requests
	bucketClaim     = []byte("claimable") // fingerprint "/" id -> "" for approved retry-mode requests
)

// Store is the durable home of approval requests of one gateway. It is
// safe for concurrent use.
type Store struct {
	db      *bolt.DB
	expired []*approvals.Approval
}

// Open opens (creating if needed) the store under dir. Every request that
// was still pending, and every approved wait-mode request that had not run,
// is marked expired: the session that held it is gone with the old process,
// so nothing of it may execute later. Approved retry-mode requests stay
// valid until their expires_at (they are tied to the requester, not the
// session).
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("approvals: store dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("approvals: create store dir: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, StoreFile), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("approvals: open %s: %w", filepath.Join(dir, StoreFile), err)
	}
	s := &Store{db: db}
	now := time.Now().UTC()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketApprovals, bucketOpen, bucketClaim} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		ids, err := openIDs(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			a, err := getTx(tx, id)
			if err != nil {
				if errors.Is(err, approvals.ErrNotFound) { // dangling index entry
					if err := tx.Bucket(bucketOpen).Delete([]byte(id)); err != nil {
						return err
					}
					continue
				}
				return err
			}
			if a.State == approvals.Pending || (a.State == approvals.Approved && a.Mode != approvals.ModeRetry) {
				old := a.Clone()
				a.State = approvals.Expired
				a.Note = approvals.RestartNote
				if err := putTx(tx, old, a); err != nil {
					return err
				}
				s.expired = append(s.expired, a.Clone())
			} else if a.State == approvals.Approved && !now.Before(a.ExpiresAt) {
				old := a.Clone()
				a.State = approvals.Expired
				a.Note = "approval not used before it expired"
				if err := putTx(tx, old, a); err != nil {
					return err
				}
				s.expired = append(s.expired, a.Clone())
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("approvals: open store: %w", err)
	}
	return s, nil
}

// ExpiredAtOpen returns the requests Open marked expired (for the log).
func (s *Store) ExpiredAtOpen() []*approvals.Approval { return s.expired }

// Watch does nothing: one gateway owns the file, so every change is made
// through its own Manager, which already knows.
func (s *Store) Watch(func(id string)) {}

// Close closes the store file.
func (s *Store) Close() error { return s.db.Close() }

func getTx(tx *bolt.Tx, id string) (*approvals.Approval, error) {
	v := tx.Bucket(bucketApprovals).Get([]byte(id))
	if v == nil {
		return nil, &approvals.Error{Kind: approvals.ErrNotFound, Msg: fmt.Sprintf("approval %s not found", id)}
	}
	return approvals.Decode(v)
}

func claimKey(a *approvals.Approval) []byte { return []byte(a.Fingerprint + "/" + a.ID) }

// putTx writes a and keeps the indexes in step with the change from old
// (nil for a new request).
func putTx(tx *bolt.Tx, old, a *approvals.Approval) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketApprovals).Put([]byte(a.ID), v); err != nil {
		return err
	}
	open := tx.Bucket(bucketOpen)
	if a.State.Final() {
		if err := open.Delete([]byte(a.ID)); err != nil {
			return err
		}
	} else if old == nil || old.State.Final() {
		if err := open.Put([]byte(a.ID), nil); err != nil {
			return err
		}
	}
	claim := tx.Bucket(bucketClaim)
	if a.State == approvals.Approved && a.Mode == approvals.ModeRetry && a.Fingerprint != "" {
		return claim.Put(claimKey(a), nil)
	}
	if old != nil && old.State == approvals.Approved && old.Fingerprint != "" {
		return claim.Delete(claimKey(old))
	}
	return nil
}

func (s *Store) Create(a *approvals.Approval) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketApprovals).Get([]byte(a.ID)) != nil {
			return fmt.Errorf("approvals: id collision %s", a.ID)
		}
		return putTx(tx, nil, a)
	})
}

func (s *Store) Get(id string) (*approvals.Approval, error) {
	var a *approvals.Approval
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		a, err = getTx(tx, id)
		return err
	})
	return a, err
}

// Update runs fn on the stored request inside one write transaction. When
// fn returns write=true the change is committed (indexes included) even if
// fn also returns an error, which update then returns with the new value.
func (s *Store) Update(id string, fn func(a *approvals.Approval) (write bool, err error)) (*approvals.Approval, error) {
	var out *approvals.Approval
	var ferr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		a, err := getTx(tx, id)
		if err != nil {
			return err
		}
		old := a.Clone()
		write, err := fn(a)
		out, ferr = a, err
		if !write {
			return nil
		}
		return putTx(tx, old, a)
	})
	if err != nil {
		return nil, err
	}
	return out, ferr
}

// openIDs lists the ids in the open (pending or approved) index. They are
// collected first so the caller may change the index while going through them.
func openIDs(tx *bolt.Tx) ([]string, error) {
	var ids []string
	err := tx.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
		ids = append(ids, string(k))
		return nil
	})
	return ids, err
}

// UpdateOpen runs fn on every open (pending or approved) request in one
// write transaction and returns those fn changed.
func (s *Store) UpdateOpen(fn func(a *approvals.Approval) bool) ([]*approvals.Approval, error) {
	var changed []*approvals.Approval
	err := s.db.Update(func(tx *bolt.Tx) error {
		changed = changed[:0]
		ids, err := openIDs(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			a, err := getTx(tx, id)
			if err != nil {
				return err
			}
			old := a.Clone()
			if !fn(a) {
				continue
			}
			if err := putTx(tx, old, a); err != nil {
				return err
			}
			changed = append(changed, a)
		}
		return nil
	})
	return changed, err
}

// Claim finds an approved retry-mode request with this fingerprint and
// lets fn transition it, in one write transaction (so two concurrent
// re-runs cannot both win). fn returns true when it took the request.
func (s *Store) Claim(fp string, fn func(a *approvals.Approval) bool) (won *approvals.Approval, expired []*approvals.Approval, err error) {
	prefix := []byte(fp + "/")
	// A read transaction first: the common case (nothing approved) never
	// takes the writer lock or fsyncs.
	any := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketClaim).Cursor().Seek(prefix)
		any = k != nil && bytes.HasPrefix(k, prefix)
		return nil
	}); err != nil || !any {
		return nil, nil, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		won, expired = nil, expired[:0]
		c := tx.Bucket(bucketClaim).Cursor()
		var ids []string
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix):]))
		}
		for _, id := range ids {
			a, err := getTx(tx, id)
			if err != nil {
				return err
			}
			old := a.Clone()
			took := fn(a)
			if a.State == old.State {
				continue
			}
			if err := putTx(tx, old, a); err != nil {
				return err
			}
			if took {
				won = a
				return nil
			}
			expired = append(expired, a)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return won, expired, nil
}

// List returns the requests f selects, newest first, at most limit.
func (s *Store) List(f approvals.ListFilter, limit int) ([]*approvals.Approval, error) {
	state := f.State
	var out []*approvals.Approval
	err := s.db.View(func(tx *bolt.Tx) error {
		if state == approvals.Pending || state == approvals.Approved {
			return tx.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
				a, err := getTx(tx, string(k))
				if err != nil {
					return err
				}
				if f.Match(a) {
					out = append(out, a)
				}
				return nil
			})
		}
		return tx.Bucket(bucketApprovals).ForEach(func(_, v []byte) error {
			a, err := approvals.Decode(v)
			if err != nil {
				return err
			}
			if f.Match(a) {
				out = append(out, a)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

package approvals

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
)

// StoreFile is the bbolt file the store keeps under store.dir.
const StoreFile = "approvals.db"

// RestartNote is the note on requests a restart expired.
const RestartNote = "gateway restarted; the session that held it ended"

var (
	bucketApprovals = []byte("approvals") // id -> JSON Approval
	bucketOpen      = []byte("open")      // id -> "" for pending/approved requests
	bucketClaim     = []byte("claimable") // fingerprint "/" id -> "" for approved retry-mode requests
)

// Store is the durable home of approval requests: one bbolt file, every
// change one fsynced transaction. It is safe for concurrent use; writers
// are serialized by bbolt, which is what makes execute-once atomic.
type Store struct {
	db      *bolt.DB
	expired []*Approval
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
				if errors.Is(err, ErrNotFound) { // dangling index entry
					if err := tx.Bucket(bucketOpen).Delete([]byte(id)); err != nil {
						return err
					}
					continue
				}
				return err
			}
			if a.State == Pending || (a.State == Approved && a.Mode != ModeRetry) {
				old := a.clone()
				a.State = Expired
				a.Note = RestartNote
				if err := putTx(tx, old, a); err != nil {
					return err
				}
				s.expired = append(s.expired, a.clone())
			} else if a.State == Approved && !now.Before(a.ExpiresAt) {
				old := a.clone()
				a.State = Expired
				a.Note = "approval not used before it expired"
				if err := putTx(tx, old, a); err != nil {
					return err
				}
				s.expired = append(s.expired, a.clone())
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
func (s *Store) ExpiredAtOpen() []*Approval { return s.expired }

// Close closes the store file.
func (s *Store) Close() error { return s.db.Close() }

func decodeApproval(v []byte) (*Approval, error) {
	a := new(Approval)
	if err := json.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("approvals: corrupt record: %w", err)
	}
	if !a.State.Valid() || a.ID == "" {
		return nil, fmt.Errorf("approvals: corrupt record: state %q id %q", a.State, a.ID)
	}
	return a, nil
}

func getTx(tx *bolt.Tx, id string) (*Approval, error) {
	v := tx.Bucket(bucketApprovals).Get([]byte(id))
	if v == nil {
		return nil, refuse(ErrNotFound, "approval %s not found", id)
	}
	return decodeApproval(v)
}

func claimKey(a *Approval) []byte { return []byte(a.Fingerprint + "/" + a.ID) }

// putTx writes a and keeps the indexes in step with the change from old
// (nil for a new request).
func putTx(tx *bolt.Tx, old, a *Approval) error {
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
	if a.State == Approved && a.Mode == ModeRetry && a.Fingerprint != "" {
		return claim.Put(claimKey(a), nil)
	}
	if old != nil && old.State == Approved && old.Fingerprint != "" {
		return claim.Delete(claimKey(old))
	}
	return nil
}

func (s *Store) create(a *Approval) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketApprovals).Get([]byte(a.ID)) != nil {
			return fmt.Errorf("approvals: id collision %s", a.ID)
		}
		return putTx(tx, nil, a)
	})
}

func (s *Store) get(id string) (*Approval, error) {
	var a *Approval
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		a, err = getTx(tx, id)
		return err
	})
	return a, err
}

// update runs fn on the stored request inside one write transaction. When
// fn returns write=true the change is committed (indexes included) even if
// fn also returns an error, which update then returns with the new value.
func (s *Store) update(id string, fn func(a *Approval) (write bool, err error)) (*Approval, error) {
	var out *Approval
	var ferr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		a, err := getTx(tx, id)
		if err != nil {
			return err
		}
		old := a.clone()
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

// updateOpen runs fn on every open (pending or approved) request in one
// write transaction and returns those fn changed.
func (s *Store) updateOpen(fn func(a *Approval) bool) ([]*Approval, error) {
	var changed []*Approval
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
			old := a.clone()
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

// claim finds an approved retry-mode request with this fingerprint and
// lets fn transition it, in one write transaction (so two concurrent
// re-runs cannot both win). fn returns true when it took the request.
func (s *Store) claim(fp string, fn func(a *Approval) bool) (won *Approval, expired []*Approval, err error) {
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
			old := a.clone()
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

// list returns requests (all, or those in state), newest first, at most limit.
func (s *Store) list(state State, limit int) ([]*Approval, error) {
	var out []*Approval
	err := s.db.View(func(tx *bolt.Tx) error {
		if state == Pending || state == Approved {
			return tx.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
				a, err := getTx(tx, string(k))
				if err != nil {
					return err
				}
				if a.State == state {
					out = append(out, a)
				}
				return nil
			})
		}
		return tx.Bucket(bucketApprovals).ForEach(func(_, v []byte) error {
			a, err := decodeApproval(v)
			if err != nil {
				return err
			}
			if state == "" || a.State == state {
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

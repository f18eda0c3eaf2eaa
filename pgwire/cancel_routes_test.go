package pgwire

import (
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// fakeRoutes is an in-memory CancelRoutes: keys taken by "another
// gateway", keys added here, and forwarded requests.
type fakeRoutes struct {
	mu        sync.Mutex
	taken     int // the next taken Adds fail with ErrKeyTaken
	broken    bool
	added     map[uint32][]byte
	removed   []uint32
	forwarded []uint32
}

func (f *fakeRoutes) Add(pid uint32, secret []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken {
		return errors.New("store down")
	}
	if f.taken > 0 {
		f.taken--
		return ErrKeyTaken
	}
	f.added[pid] = append([]byte(nil), secret...)
	return nil
}

func (f *fakeRoutes) Remove(pid uint32) {
	f.mu.Lock()
	f.removed = append(f.removed, pid)
	f.mu.Unlock()
}

func (f *fakeRoutes) Forward(pid uint32, secret []byte) (bool, error) {
	f.mu.Lock()
	f.forwarded = append(f.forwarded, pid)
	f.mu.Unlock()
	return true, nil
}

func TestCancelKeysSharedAmongGateways(t *testing.T) {
	f := &fakeRoutes{added: map[uint32][]byte{}, taken: 2}
	s := &Server{log: zerolog.Nop(), cancels: cancelRegistry{m: map[uint32]*session{}, routes: f, log: zerolog.Nop()}}
	ss := &session{}
	if err := s.cancels.register(ss); err != nil {
		t.Fatal(err)
	}
	// Two process ids were taken elsewhere: the third one is ours, and
	// only it is left in the local map.
	if len(f.added) != 1 || f.added[ss.keyPID] == nil || len(s.cancels.m) != 1 || s.cancels.m[ss.keyPID] != ss {
		t.Fatalf("added %v, local %v, key %d", f.added, s.cancels.m, ss.keyPID)
	}
	// A key this gateway did not issue goes to the routes; ours does not.
	s.handleCancel(&pgproto3.CancelRequest{ProcessID: ss.keyPID + 1, SecretKey: []byte{1, 2, 3, 4}})
	if len(f.forwarded) != 1 || f.forwarded[0] != ss.keyPID+1 {
		t.Fatalf("forwarded %v", f.forwarded)
	}
	s.cancels.unregister(ss)
	if len(f.removed) != 1 || f.removed[0] != ss.keyPID || len(s.cancels.m) != 0 {
		t.Fatalf("removed %v, local %v", f.removed, s.cancels.m)
	}
	// The store down: the session still gets a key (cancels to this gateway work).
	f.broken = true
	ss2 := &session{}
	if err := s.cancels.register(ss2); err != nil || s.cancels.m[ss2.keyPID] != ss2 {
		t.Fatalf("register with the store down: %v", err)
	}
}

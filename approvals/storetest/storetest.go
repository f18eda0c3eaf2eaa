// Package storetest is the conformance suite every approvals.Store
// implementation passes: the same transactions, the same index semantics
// and execute-once under concurrent writers.
package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/approvals"
)

// Opener returns an empty store for one test; the suite closes it.
type Opener func(t *testing.T) approvals.Store

var seq atomic.Int64

// newApproval returns a pending request with a fresh, valid-looking ID.
func newApproval(mode string, created time.Time) *approvals.Approval {
	n := seq.Add(1)
	return &approvals.Approval{
		ID:          fmt.Sprintf("st%014d", n),
		State:       approvals.Pending,
		Mode:        mode,
		Requester:   "alice@example.com",
		Groups:      []string{"eng"},
		Session:     fmt.Sprintf("sess-%d", n),
		Database:    "vectors",
		Profile:     "kb",
		SQL:         "DELETE FROM documents",
		Params:      []string{"1"},
		Action:      "bulk_delete",
		CreatedAt:   created.UTC(),
		ExpiresAt:   created.Add(time.Hour).UTC(),
		Fingerprint: fmt.Sprintf("fp-%d", n),
	}
}

// Run runs every conformance test against stores from open.
func Run(t *testing.T, open Opener) {
	use := func(t *testing.T) approvals.Store {
		s := open(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	t.Run("CreateGet", func(t *testing.T) { createGet(t, use(t)) })
	t.Run("NotFound", func(t *testing.T) { notFound(t, use(t)) })
	t.Run("UpdateWriteAndError", func(t *testing.T) { updateWriteAndError(t, use(t)) })
	t.Run("UpdateOpen", func(t *testing.T) { updateOpen(t, use(t)) })
	t.Run("Claim", func(t *testing.T) { claim(t, use(t)) })
	t.Run("ListOrderStateLimit", func(t *testing.T) { list(t, use(t)) })
	t.Run("ProfileRoundTripAndFilter", func(t *testing.T) { profiles(t, use(t)) })
	t.Run("ExecuteOnceConcurrent", func(t *testing.T) { executeOnce(t, use(t)) })
}

func createGet(t *testing.T, s approvals.Store) {
	a := newApproval(approvals.ModeWait, time.Now())
	if err := s.Create(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(a); err == nil {
		t.Fatal("a second Create with the same ID succeeded")
	}
	got, err := s.Get(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.State != approvals.Pending || got.SQL != a.SQL || got.Requester != a.Requester || got.Profile != "kb" ||
		len(got.Params) != 1 || got.Params[0] != "1" || !got.CreatedAt.Equal(a.CreatedAt) || !got.ExpiresAt.Equal(a.ExpiresAt) {
		t.Fatalf("Get returned %+v, stored %+v", got, a)
	}
	got.SQL = "changed by the caller"
	again, _ := s.Get(a.ID)
	if again.SQL != a.SQL {
		t.Fatal("a returned value aliases the store")
	}
}

func notFound(t *testing.T, s approvals.Store) {
	_, err := s.Get("zzzzzzzzzzzzzzzz")
	if !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("Get of an unknown ID: %v, want ErrNotFound", err)
	}
	_, err = s.Update("zzzzzzzzzzzzzzzz", func(*approvals.Approval) (bool, error) { return true, nil })
	if !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("Update of an unknown ID: %v, want ErrNotFound", err)
	}
}

func updateWriteAndError(t *testing.T, s approvals.Store) {
	a := newApproval(approvals.ModeWait, time.Now())
	if err := s.Create(a); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	// write=false: nothing changes, the error comes back.
	if _, err := s.Update(a.ID, func(x *approvals.Approval) (bool, error) { x.State = approvals.Denied; return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if got, _ := s.Get(a.ID); got.State != approvals.Pending {
		t.Fatalf("write=false changed the state to %s", got.State)
	}
	// write=true with an error: committed, and both come back.
	got, err := s.Update(a.ID, func(x *approvals.Approval) (bool, error) {
		x.State, x.Note = approvals.Expired, "late"
		return true, boom
	})
	if !errors.Is(err, boom) || got == nil || got.State != approvals.Expired {
		t.Fatalf("Update = %+v, %v", got, err)
	}
	if got, _ := s.Get(a.ID); got.State != approvals.Expired || got.Note != "late" {
		t.Fatalf("stored %s %q", got.State, got.Note)
	}
}

func updateOpen(t *testing.T, s approvals.Store) {
	now := time.Now()
	open1, open2, closed := newApproval(approvals.ModeWait, now), newApproval(approvals.ModeRetry, now), newApproval(approvals.ModeWait, now)
	for _, a := range []*approvals.Approval{open1, open2, closed} {
		if err := s.Create(a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(closed.ID, func(x *approvals.Approval) (bool, error) { x.State = approvals.Denied; return true, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(open2.ID, func(x *approvals.Approval) (bool, error) { x.State = approvals.Approved; return true, nil }); err != nil {
		t.Fatal(err)
	}
	var seen []string
	changed, err := s.UpdateOpen(func(x *approvals.Approval) bool {
		seen = append(seen, x.ID)
		if x.ID == open1.ID {
			x.State = approvals.Expired
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || len(changed) != 1 || changed[0].ID != open1.ID || changed[0].State != approvals.Expired {
		t.Fatalf("UpdateOpen saw %v, changed %v", seen, changed)
	}
	// The open index follows: open1 is final now, only open2 is left.
	seen = nil
	if _, err := s.UpdateOpen(func(x *approvals.Approval) bool { seen = append(seen, x.ID); return false }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != open2.ID {
		t.Fatalf("open requests after the change: %v, want [%s]", seen, open2.ID)
	}
}

func claim(t *testing.T, s approvals.Store) {
	now := time.Now()
	a, b := newApproval(approvals.ModeRetry, now), newApproval(approvals.ModeRetry, now)
	b.Fingerprint = a.Fingerprint
	for _, x := range []*approvals.Approval{a, b} {
		if err := s.Create(x); err != nil {
			t.Fatal(err)
		}
	}
	take := func(x *approvals.Approval) bool {
		if x.State != approvals.Approved {
			return false
		}
		x.State = approvals.Executed
		return true
	}
	// Pending requests are not claimable.
	if won, _, err := s.Claim(a.Fingerprint, take); err != nil || won != nil {
		t.Fatalf("claimed a pending request: %v %v", won, err)
	}
	for _, x := range []*approvals.Approval{a, b} {
		if _, err := s.Update(x.ID, func(y *approvals.Approval) (bool, error) { y.State = approvals.Approved; return true, nil }); err != nil {
			t.Fatal(err)
		}
	}
	// fn expires the first it is offered and takes the second.
	first := ""
	won, expired, err := s.Claim(a.Fingerprint, func(x *approvals.Approval) bool {
		if first == "" {
			first = x.ID
			x.State = approvals.Expired
			return false
		}
		return take(x)
	})
	if err != nil || won == nil || won.State != approvals.Executed || len(expired) != 1 || expired[0].ID != first || won.ID == first {
		t.Fatalf("Claim = %+v, %v, %v", won, expired, err)
	}
	// Nothing is left to claim, under either fingerprint or another.
	if won, _, err := s.Claim(a.Fingerprint, take); err != nil || won != nil {
		t.Fatalf("claimed twice: %+v %v", won, err)
	}
	if got, _ := s.Get(first); got.State != approvals.Expired {
		t.Fatalf("the expired request is %s", got.State)
	}
}

func list(t *testing.T, s approvals.Store) {
	base := time.Now().Add(-time.Hour)
	var ids []string
	for i := 0; i < 5; i++ {
		a := newApproval(approvals.ModeWait, base.Add(time.Duration(i)*time.Minute))
		if err := s.Create(a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if _, err := s.Update(ids[1], func(x *approvals.Approval) (bool, error) { x.State = approvals.Denied; return true, nil }); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(approvals.ListFilter{}, 0)
	if err != nil || len(all) != 5 {
		t.Fatalf("List all: %d %v", len(all), err)
	}
	for i, a := range all {
		if a.ID != ids[4-i] {
			t.Fatalf("List order: position %d is %s, want %s (newest first)", i, a.ID, ids[4-i])
		}
	}
	pending, err := s.List(approvals.ListFilter{State: approvals.Pending}, 0)
	if err != nil || len(pending) != 4 {
		t.Fatalf("List pending: %d %v", len(pending), err)
	}
	denied, err := s.List(approvals.ListFilter{State: approvals.Denied}, 0)
	if err != nil || len(denied) != 1 || denied[0].ID != ids[1] {
		t.Fatalf("List denied: %v %v", denied, err)
	}
	two, err := s.List(approvals.ListFilter{}, 2)
	if err != nil || len(two) != 2 || two[0].ID != ids[4] {
		t.Fatalf("List limit 2: %v %v", two, err)
	}
}

// profiles: a request's profile survives the store (create, update) and
// List selects by profile, alone and with a state; a request without one
// (as stored before profiles existed) reads back with "".
func profiles(t *testing.T, s approvals.Store) {
	base := time.Now().Add(-time.Hour)
	byProfile := map[string][]string{}
	for i, p := range []string{"kb", "support", "", "kb", "support"} {
		a := newApproval(approvals.ModeWait, base.Add(time.Duration(i)*time.Minute))
		a.Profile = p
		if err := s.Create(a); err != nil {
			t.Fatal(err)
		}
		byProfile[p] = append([]string{a.ID}, byProfile[p]...) // newest first
	}
	sup := byProfile["support"][0]
	got, err := s.Update(sup, func(x *approvals.Approval) (bool, error) { x.State = approvals.Denied; return true, nil })
	if err != nil || got.Profile != "support" {
		t.Fatalf("Update: %+v %v", got, err)
	}
	if got, err := s.Get(sup); err != nil || got.Profile != "support" || got.State != approvals.Denied {
		t.Fatalf("Get after Update: %+v %v", got, err)
	}
	if got, err := s.Get(byProfile[""][0]); err != nil || got.Profile != "" {
		t.Fatalf("Get of a request without profile: %+v %v", got, err)
	}
	ids := func(list []*approvals.Approval) []string {
		out := []string{}
		for _, a := range list {
			out = append(out, a.ID)
		}
		return out
	}
	for _, c := range []struct {
		f    approvals.ListFilter
		want []string
	}{
		{approvals.ListFilter{Profile: "kb"}, byProfile["kb"]},
		{approvals.ListFilter{Profile: "support"}, byProfile["support"]},
		{approvals.ListFilter{Profile: "support", State: approvals.Pending}, byProfile["support"][1:]},
		{approvals.ListFilter{Profile: "support", State: approvals.Denied}, byProfile["support"][:1]},
		{approvals.ListFilter{Profile: "nope"}, []string{}},
	} {
		list, err := s.List(c.f, 0)
		if err != nil {
			t.Fatal(err)
		}
		if g := ids(list); fmt.Sprint(g) != fmt.Sprint(c.want) {
			t.Fatalf("List(%+v) = %v, want %v", c.f, g, c.want)
		}
		for _, a := range list {
			if a.Profile != c.f.Profile {
				t.Fatalf("List(%+v) returned a request of profile %q", c.f, a.Profile)
			}
		}
	}
	if one, err := s.List(approvals.ListFilter{Profile: "kb"}, 1); err != nil || len(one) != 1 || one[0].ID != byProfile["kb"][0] {
		t.Fatalf("List profile kb limit 1: %v %v", ids(one), err)
	}
}

// executeOnce: many writers race to move one approved request to executed;
// the store's transaction lets exactly one see it approved.
func executeOnce(t *testing.T, s approvals.Store) {
	a := newApproval(approvals.ModeWait, time.Now())
	a.State = approvals.Approved
	if err := s.Create(a); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(a.ID, func(x *approvals.Approval) (bool, error) {
				if x.State != approvals.Approved {
					return false, approvals.ErrConflict
				}
				x.State = approvals.Executed
				return true, nil
			})
			if err == nil {
				wins.Add(1)
			} else if !errors.Is(err, approvals.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Fatalf("%d writers executed the request, want exactly 1", n)
	}
}

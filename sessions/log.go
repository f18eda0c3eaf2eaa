package sessions

import (
	"github.com/pgwarden/pgwarden/sessions/filestore"
	"github.com/pgwarden/pgwarden/sessions/pgstore"
)

// The implementations of Log.
var (
	_ Log = (*filestore.Reader)(nil)
	_ Log = (*pgstore.Reader)(nil)
)

// Log is the read side of one recording backend: the file store's
// segments (OpenStore) or the shared store's pgwarden.events
// (OpenSharedStore). Store (List, Get, Export, Verify, Replay) is a thin
// layer over one Log. A Log is read-only and safe while a Recorder writes
// the same recording. Every implementation passes sessions/logtest.
type Log interface {
	// Each calls fn for every decodable event in store order (only those
	// of session when it is not ""), stopping at fn's first error, which it
	// returns. Undecodable events are skipped (Verify reports them).
	Each(session string, fn func(raw []byte, ev *Event) error) error
	// Verify checks the whole recording: every event's canonical form and
	// hash and its chain. A broken place is Verdict.Problem, not an error;
	// the error is for failures to read.
	Verify() (Verdict, error)
	// Follow returns a reader of session's events that can be polled for
	// new ones (replay --follow). It may pass other sessions' events too
	// (the file store's reads the whole store): the caller filters.
	Follow(session string) Follower
}

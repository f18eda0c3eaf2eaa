package sessions

// Log is the read side of one recording backend: the file store's
// segments (OpenStore) or the shared store's pgwarden.events
// (OpenSharedStore). Store (List, Get, Export, Verify, Replay) is a thin
// layer over one Log. A Log is read-only and safe while a Recorder writes
// the same recording.
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
	// new ones (replay --follow).
	Follow(session string) Follower
}

// Follower reads a recording in store order and can be polled for what
// was appended since (see Log.Follow).
type Follower interface {
	// Next passes to fn the events appended since the previous call (the
	// first call: from the start), possibly only a batch of them, and
	// returns how many it read; 0 means none yet.
	Next(fn func(raw []byte, ev *Event)) (int, error)
}

// Verdict is the result of Log.Verify.
type Verdict struct {
	Problem *Problem // the first broken place; nil when intact
	Events  int64    // events checked
	Parts   int      // segments or gateway chains
	Unit    string   // what Parts counts, as Store.Verify prints it ("segments, chain intact")
}

package approvals

// Store is the durable home of approval requests. Two implementations:
// approvals/boltstore (one bbolt file under store.dir, one gateway) and
// approvals/pgstore (the shared PostgreSQL store of store.dsn, several
// gateways). Every method is one atomic transaction of the store; the
// callbacks run inside it, so two callers (in one process or on two
// gateways) never both see the same state and both change it — that is
// what keeps execute-once and "exactly one decision wins".
//
// Values handed to callbacks and returned are the caller's own copies.
type Store interface {
	// Create stores a new request (its ID must be unused).
	Create(a *Approval) error
	// Get returns one request; an unknown ID is an *Error of kind ErrNotFound.
	Get(id string) (*Approval, error)
	// Update runs fn on the stored request in one transaction. When fn
	// returns write=true the change is committed (indexes included) even if
	// fn also returns an error, which Update then returns with the new value.
	Update(id string, fn func(a *Approval) (write bool, err error)) (*Approval, error)
	// UpdateOpen runs fn on every open (pending or approved) request in one
	// transaction and returns those fn changed.
	UpdateOpen(fn func(a *Approval) bool) ([]*Approval, error)
	// Claim offers fn every approved retry-mode request with this
	// fingerprint, in one transaction, until fn returns true (it took one).
	// Requests fn changed without taking them are returned as expired.
	Claim(fingerprint string, fn func(a *Approval) bool) (won *Approval, expired []*Approval, err error)
	// List returns the requests f selects, newest first, at most limit
	// (<= 0: all).
	List(f ListFilter, limit int) ([]*Approval, error)
	// Watch registers fn, called with the ID of every request another
	// gateway changed (a decision made through another gateway's API), so
	// a statement held here learns of it at once. A store only one gateway
	// writes never calls fn. fn must not block.
	Watch(fn func(id string))
	// ExpiredAtOpen returns the requests opening the store expired (they
	// were held by sessions of this gateway's previous process).
	ExpiredAtOpen() []*Approval
	Close() error
}

// ListFilter selects requests in List. Zero fields match everything.
type ListFilter struct {
	State   State  // only requests in this state
	Profile string // only requests of this connection profile
}

// Match reports whether a is selected by f.
func (f ListFilter) Match(a *Approval) bool {
	return (f.State == "" || a.State == f.State) && (f.Profile == "" || a.Profile == f.Profile)
}

// RestartNote is the note on requests a gateway's restart expired.
const RestartNote = "gateway restarted; the session that held it ended"

// GatewayLostNote is the note on requests another gateway expired because
// the gateway that held them stopped sending heartbeats.
const GatewayLostNote = "gateway_lost: the gateway holding the session stopped"

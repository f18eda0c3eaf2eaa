package sessions

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions/filestore"
	"github.com/pgwarden/pgwarden/sessions/pgstore"
	"github.com/pgwarden/pgwarden/sessions/record"
)

// Errors returned by SessionRecorder methods.
var (
	ErrClosed      = record.ErrClosed
	ErrStalled     = record.ErrStalled
	ErrUnavailable = errors.New("sessions: session recording unavailable")
)

// Tunables that are not configuration keys.
const (
	stdoutQueue = 4096 // stdout sink writes buffered in memory before writers wait
)

// StartInfo describes a session at its start.
type StartInfo struct {
	ID   string
	User string
	// Actor is the party acting for User (Principal.Actor: a delegated
	// token's act claim), "" when none. Every event of the session carries it.
	Actor           string
	Groups          []string // the effective groups (Principal.Groups)
	ClientAddr      string
	ApplicationName string
	Database        string
	// Profile is the connection profile the startup database picked
	// ("default" for the single-upstream configuration). Every event of
	// the session carries it.
	Profile     string
	BackendUser string // minted role name, never its password
}

// StatementEvent is one executed (or refused/held) statement. The recorder
// takes ownership of the slices: the caller must not modify them after the
// call. Rows is only read during the call: its buffer may be reused after.
type StatementEvent struct {
	SQL        string
	Params     []*string // text form; binary params as \x hex; nil = NULL
	Actions    []string
	Decision   string // allow | deny | hold | approved | denied
	Columns    []string
	Rows       *ResultRows // already masked; truncated to recording.max_rows here
	RowsTotal  int64       // rows the client received (0: Rows.Len())
	Duration   time.Duration
	Error      string // error text the client received, if any
	ApprovalID string
}

// ApprovalEvent records a change of an approval of this session.
type ApprovalEvent struct {
	ID        string // approval id
	State     string // pending | approved | denied | expired | withdrawn | executed
	SQL       string
	Actions   []string
	DecidedBy string
	// DecidedByActor is the agent that acted for DecidedBy, "" if none.
	DecidedByActor string
	Reason         string // comment or deny reason
}

// appender is where the recorder's encoded events go (record.Appender):
// filestore.Appender (Open: the segment files) or pgstore.Appender
// (OpenShared: this gateway's chain in the shared store).
type appender = record.Appender

var (
	_ appender = (*filestore.Appender)(nil)
	_ appender = (*pgstore.Appender)(nil)
)

// Recorder writes the session record of one gateway process. Create it with
// Open, hand each session a SessionRecorder from Start, Close at shutdown.
type Recorder struct {
	cfg  config.Recording
	log  zerolog.Logger
	now  func() time.Time
	done chan struct{} // closed by Close once the appender has shut down

	closed atomic.Bool
	health atomic.Pointer[error]

	m metrics

	// sinks get every stored batch (Sink.Written), in store order;
	// delivery holds the ones retention waits for.
	sinks    []Sink
	delivery []deliverySink

	// w is where events go: the segment files (filestore.Appender,
	// Open) or the shared store's per-gateway chain (pgstore.Appender,
	// OpenShared; the events then carry gateway).
	w       appender
	gateway string
}

// Open opens (creating if needed) the file store under st.Dir/sessions,
// recovers from a crash (a torn last line is cut off and kept aside; every
// session without session_end gets one with reason gateway_restart),
// applies retention and starts the maintainer and the sinks.
func Open(cfg config.Recording, st config.Store, log zerolog.Logger, reg prometheus.Registerer) (*Recorder, error) {
	if st.Dir == "" {
		return nil, errors.New("sessions: store.dir is required (store.dsn is not supported by the session recorder)")
	}
	r := newRecorder(cfg, log, reg)
	if err := r.openFiles(st.Dir, fileOptionsOf(cfg, r.log)); err != nil {
		return nil, err
	}
	return r, nil
}

// fileOptionsOf is the file store's part of the recording configuration.
func fileOptionsOf(cfg config.Recording, log zerolog.Logger) filestore.Options {
	return filestore.Options{SyncInterval: cfg.SyncEvery, RotateBytes: cfg.RotateBytes, RotateAge: cfg.RotateAge,
		Retention: cfg.Retention, Log: log}
}

// openFiles opens the file store under storeDir for r with opts, adds the
// configured sinks, writes the recovery events and starts the sinks.
func (r *Recorder) openFiles(storeDir string, opts filestore.Options) error {
	dir := filepath.Join(storeDir, "sessions")
	a, err := filestore.OpenAppender(host{r}, dir, opts)
	if err != nil {
		return err
	}
	r.w = a
	lastBefore := a.Seq()
	for _, s := range r.cfg.Sinks {
		switch s.Type {
		case "stdout":
			r.addSink(newStdoutSink(r.m.sinkErrors))
		case "webhook":
			w, err := newWebhookSink(s, dir, filepath.Join(storeDir, "outbox"), lastBefore, r.log, &r.m)
			if err != nil {
				return err
			}
			r.addSink(w)
		}
	}
	if err := a.Start(); err != nil {
		return err
	}
	for _, k := range r.sinks {
		k.Start()
	}
	return nil
}

// newRecorder is the Recorder both stores start from (Open, OpenShared).
func newRecorder(cfg config.Recording, log zerolog.Logger, reg prometheus.Registerer) *Recorder {
	return &Recorder{
		cfg: cfg, log: log.With().Str("component", "sessions").Logger(),
		now:  func() time.Time { return time.Now().UTC() },
		done: make(chan struct{}),
		m:    newMetrics(reg),
	}
}

// addSink adds k to the sinks the recorder writes.
func (r *Recorder) addSink(k Sink) {
	r.sinks = append(r.sinks, k)
	if d, ok := k.(deliverySink); ok {
		r.delivery = append(r.delivery, d)
	}
}

// Healthy reports nil when the store is being written; otherwise the glue
// refuses new statements (08001 "pgwarden: session recording unavailable")
// unless recording.fail_open.
func (r *Recorder) Healthy() error {
	if r.closed.Load() {
		return ErrClosed
	}
	if p := r.health.Load(); p != nil {
		return *p
	}
	return nil
}

// FailOpen reports recording.fail_open.
func (r *Recorder) FailOpen() bool { return r.cfg.FailOpen }

func (r *Recorder) setUnhealthy(err error) {
	if r.health.Load() == nil {
		r.log.Error().Err(err).Msg("session recording unavailable")
	}
	e := fmt.Errorf("%w: %v", ErrUnavailable, err)
	r.health.Store(&e)
	r.m.healthy.Set(0)
}

func (r *Recorder) setHealthy() {
	if r.health.Load() != nil {
		r.health.Store(nil)
		r.log.Info().Msg("session recording available again")
	}
	r.m.healthy.Set(1)
}

// Start begins the record of one session (writes session_start).
func (r *Recorder) Start(info StartInfo) *SessionRecorder {
	s := &SessionRecorder{r: r}
	s.base = Event{Session: info.ID, User: info.User, Actor: info.Actor, Groups: info.Groups, ClientAddr: info.ClientAddr,
		ApplicationName: info.ApplicationName, Database: info.Database, Profile: info.Profile, BackendUser: info.BackendUser, Gateway: r.gateway}
	ev := s.base
	ev.Type = TypeSessionStart
	s.note(r.record(ev))
	return s
}

// record chains, encodes and writes one event (write(2), under the store
// lock) before it returns: an event recorded before the client's
// ReadyForQuery survives a kill -9 of the gateway. The caller's goroutine
// does the work: no handoff to another goroutine on the relay's path. When
// the lock cannot be had within lockTimeout (a write that does not return:
// a hung disk) the event is dropped, counted, and the recorder reports
// unhealthy (fail closed).
func (r *Recorder) record(ev Event) error {
	if r.closed.Load() {
		r.m.dropped.Inc()
		return ErrClosed
	}
	// Redaction may parse the statement (pg_query): before the store lock,
	// so that other sessions do not wait for it.
	if sql, secret := redactSQL(ev.SQL); secret {
		ev.SQL, ev.Params = sql, nil
	}
	// The event's fields are encoded before the lock too: under it only
	// its place in the chain is added and hashed (encoder.chainLine).
	bp := bodyPool.Get().(*[]byte)
	body := appendBody((*bp)[:0], &ev)
	defer putBody(bp, body)
	return r.w.Write(ev, body)
}

// bodyPool holds the buffers record encodes an event's body into.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func putBody(bp *[]byte, body []byte) {
	if cap(body) <= 1<<20 { // a large result's buffer is not kept
		*bp = body[:0]
		bodyPool.Put(bp)
	}
}

// Close writes session_end (gateway_shutdown) for sessions still open,
// fsyncs and stops the sinks (undelivered webhook events stay on disk and
// are sent after the next Open).
func (r *Recorder) Close() error {
	if r.closed.Swap(true) {
		<-r.done
		return nil
	}
	r.w.Shutdown() // returns once the appender's background work has stopped
	close(r.done)
	r.closeSinks()
	r.m.unregister()
	if p := r.health.Load(); p != nil {
		return *p
	}
	return nil
}

// closeSinks closes the sinks in order: the stdout sink writes the last
// events, webhooks stop.
func (r *Recorder) closeSinks() {
	for _, k := range r.sinks {
		if err := k.Close(); err != nil {
			r.log.Error().Err(err).Str("sink", k.Name()).Msg("closing sink")
		}
	}
}

// SessionRecorder records one session. Its methods are safe for concurrent
// use. Each call writes its event before it returns and waits at most
// lockTimeout for another session's write (see Recorder.record).
type SessionRecorder struct {
	r     *Recorder
	base  Event
	ended atomic.Bool

	// the first error of a recording call since the last Written (errMu)
	errMu sync.Mutex
	err   error
}

// note remembers the first recording error for Written.
func (s *SessionRecorder) note(err error) error {
	if err != nil {
		s.errMu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.errMu.Unlock()
	}
	return err
}

// ID returns the session id.
func (s *SessionRecorder) ID() string { return s.base.Session }

// Healthy is the recorder's health (see Recorder.Healthy).
func (s *SessionRecorder) Healthy() error { return s.r.Healthy() }

// Statement records one statement with its decision and (masked) result.
func (s *SessionRecorder) Statement(st StatementEvent) error {
	ev := s.base
	ev.Type = TypeStatement
	ev.SQL, ev.Params, ev.Actions, ev.Decision = st.SQL, st.Params, st.Actions, st.Decision
	ev.DurationUS, ev.Error, ev.ApprovalID = st.Duration.Microseconds(), st.Error, st.ApprovalID
	ev.RowsTotal = st.RowsTotal
	if ev.RowsTotal == 0 {
		ev.RowsTotal = int64(st.Rows.Len())
	}
	if s.r.cfg.Results {
		ev.Columns = st.Columns
		ev.SetRowsJSON(st.Rows.upTo(s.r.cfg.MaxRows))
	}
	return s.note(s.r.record(ev))
}

// Approval records an approval state change for a statement of this session.
func (s *SessionRecorder) Approval(a ApprovalEvent) error {
	ev := s.base
	ev.Type = TypeApproval
	ev.ApprovalID, ev.ApprovalState, ev.SQL, ev.Actions, ev.DecidedBy, ev.Reason = a.ID, a.State, a.SQL, a.Actions, a.DecidedBy, a.Reason
	ev.DecidedByActor = a.DecidedByActor
	switch a.State {
	case "pending":
		ev.Decision = DecisionHold
	case "approved", "executed":
		ev.Decision = DecisionApproved
	case "denied", "expired", "withdrawn":
		ev.Decision = DecisionDenied
	}
	return s.note(s.r.record(ev))
}

// Error records an error of the session that is not a statement's result
// (e.g. a protocol violation or a lost upstream). sql may be empty.
func (s *SessionRecorder) Error(sql, msg string) error {
	ev := s.base
	ev.Type, ev.SQL, ev.Error = TypeError, sql, msg
	return s.note(s.r.record(ev))
}

// End records session_end once (later calls are no-ops); the maintainer fsyncs
// at every session_end.
func (s *SessionRecorder) End(reason string) error {
	if s.ended.Swap(true) {
		return nil
	}
	ev := s.base
	ev.Type, ev.Reason = TypeSessionEnd, reason
	return s.note(s.r.record(ev))
}

// Written reports whether every event this session recorded since the
// previous call is in the segment file: nil, or the first error (the event
// was dropped and counted). Recording calls write before they return, so
// this is the glue's check before the client's ReadyForQuery; it does not
// wait and does not allocate.
func (s *SessionRecorder) Written() error {
	if s.r.closed.Load() {
		return ErrClosed
	}
	s.errMu.Lock()
	err := s.err
	s.err = nil
	s.errMu.Unlock()
	return err
}

package sessions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
)

// Errors returned by SessionRecorder methods.
var (
	ErrClosed      = errors.New("sessions: recorder closed")
	ErrQueueFull   = errors.New("sessions: recording queue full")
	ErrUnavailable = errors.New("sessions: session recording unavailable")
)

// Tunables that are not configuration keys.
const (
	queueLen       = 4096                   // events buffered in memory (bounded)
	enqueueTimeout = 500 * time.Millisecond // a full queue blocks a caller this long, then fails closed
	maxBatch       = 512
	retentionEvery = time.Minute
)

// StartInfo describes a session at its start.
type StartInfo struct {
	ID              string
	User            string
	Groups          []string
	ClientAddr      string
	ApplicationName string
	Database        string
	BackendUser     string // minted role name, never its password
}

// StatementEvent is one executed (or refused/held) statement. The recorder
// takes ownership of the slices: the caller must not modify them after the
// call (copy rows out of reused protocol buffers first).
type StatementEvent struct {
	SQL        string
	Params     []*string // text form; binary params as \x hex; nil = NULL
	Actions    []string
	Decision   string // allow | deny | hold | approved | denied
	Columns    []string
	Rows       [][]*string // already masked; truncated to recording.max_rows here
	RowsTotal  int64       // rows the client received (0: len(Rows))
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
	Reason    string // comment or deny reason
}

type item struct {
	ev      Event
	t       time.Time  // formatted into ev.Time by the writer (keeps the hot path allocation-free)
	barrier chan error // non-nil: a flush barrier, no event
}

// segMeta is what the writer knows about one segment file.
type segMeta struct {
	name     string
	firstSeq int64
	lastSeq  int64
	lastHash string
	first    time.Time // time of the first event
	last     time.Time // time of the last event
	size     int64
}

type openSess struct {
	seq  int64 // first seen
	info Event // identity fields
}

// segFile is the writable segment (an interface so tests can make it fail).
type segFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

var openSegFile = func(path string) (segFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// Recorder writes the session record of one gateway process. Create it with
// Open, hand each session a SessionRecorder from Start, Close at shutdown.
type Recorder struct {
	cfg  config.Recording
	dir  string // <store.dir>/sessions
	log  zerolog.Logger
	now  func() time.Time
	q    chan item
	stop chan struct{}
	done chan struct{}

	closed atomic.Bool
	health atomic.Pointer[error]

	m metrics

	// writer state: owned by the writer goroutine (and Open before it starts)
	enc      *encoder
	pending  bytes.Buffer
	pendEv   []pendingInfo
	seq      int64
	last     string
	segs     []segMeta // sealed and active, in order; active is the last one
	seg      segFile   // active segment, nil until the first write
	dirty    bool      // written but not fsynced
	lastSync time.Time
	open     map[string]openSess
	lastRet  time.Time

	stdout   io.Writer
	webhooks []*webhook
	hookWG   sync.WaitGroup
}

// pendingInfo is one encoded, not yet written event: ev as chained (Seq,
// Hash, identity fields for the open-session set) and its time.
type pendingInfo struct {
	t  time.Time
	ev Event
}

// Open opens (creating if needed) the file store under st.Dir/sessions,
// recovers from a crash (a torn last line is cut off and kept aside; every
// session without session_end gets one with reason gateway_restart),
// applies retention and starts the writer and the sinks.
func Open(cfg config.Recording, st config.Store, log zerolog.Logger, reg prometheus.Registerer) (*Recorder, error) {
	if st.Dir == "" {
		return nil, errors.New("sessions: store.dir is required (store.dsn is not supported by the session recorder)")
	}
	dir := filepath.Join(st.Dir, "sessions")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	if cfg.SyncEvery <= 0 {
		cfg.SyncEvery = time.Second
	}
	r := &Recorder{
		cfg: cfg, dir: dir, log: log.With().Str("component", "sessions").Logger(),
		now: func() time.Time { return time.Now().UTC() },
		q:   make(chan item, queueLen), stop: make(chan struct{}), done: make(chan struct{}),
		enc: newEncoder(), open: map[string]openSess{},
	}
	r.m = newMetrics(reg, r)
	if err := r.recover(); err != nil {
		return nil, err
	}
	lastBefore := r.seq
	for _, s := range cfg.Sinks {
		switch s.Type {
		case "stdout":
			r.stdout = os.Stdout
		case "webhook":
			w, err := newWebhook(r, s, filepath.Join(st.Dir, "outbox"), lastBefore)
			if err != nil {
				return nil, err
			}
			r.webhooks = append(r.webhooks, w)
		}
	}
	// Close the sessions a crash left open, chained like any event.
	if n := r.endOpen(ReasonGatewayRestart); n > 0 {
		r.log.Warn().Int("sessions", n).Msg("recovered sessions left open by a crash (session_end gateway_restart)")
	}
	if err := r.flush(); err != nil {
		return nil, fmt.Errorf("sessions: writing recovery events: %w", err)
	}
	r.retention()
	if err := r.sync(); err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	for _, w := range r.webhooks {
		r.hookWG.Add(1)
		go w.run()
	}
	go r.writer()
	return r, nil
}

// recover scans the store: last seq/hash, open sessions, segment metadata,
// and cuts off a torn last line.
func (r *Recorder) recover() error {
	names, err := listSegments(r.dir)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	var ev Event
	for i, name := range names {
		path := filepath.Join(r.dir, name)
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		meta := segMeta{name: name, firstSeq: segFirstSeq(name)}
		lr := newLineReader(f, 0)
		for {
			line, err := lr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("sessions: %s: %w", name, err)
			}
			if err := decodeLoose(line, &ev); err != nil || ev.Hash == "" {
				r.log.Error().Str("segment", name).Int("line", lr.lineNo).Msg("undecodable event in store (run `pgwarden sessions verify`)")
				continue
			}
			r.seq, r.last = ev.Seq, ev.Hash
			t := ev.TimeValue()
			if meta.lastSeq == 0 {
				meta.first = t
			}
			meta.lastSeq, meta.lastHash, meta.last = ev.Seq, ev.Hash, t
			r.track(&ev)
		}
		meta.size = lr.off
		frag := append([]byte(nil), lr.rest()...)
		f.Close()
		if len(frag) > 0 {
			if i != len(names)-1 {
				r.log.Error().Str("segment", name).Msg("sealed segment ends without newline (run `pgwarden sessions verify`)")
			} else {
				keep := filepath.Join(r.dir, fmt.Sprintf("torn-%d.bin", time.Now().UnixNano()))
				_ = os.WriteFile(keep, frag, 0o600)
				if err := os.Truncate(path, meta.size); err != nil {
					return fmt.Errorf("sessions: truncating torn line: %w", err)
				}
				r.m.torn.Inc()
				r.log.Warn().Str("segment", name).Int("bytes", len(frag)).Str("kept_as", filepath.Base(keep)).Msg("cut off a torn last line (crash during write)")
			}
		}
		if meta.lastSeq == 0 && i == len(names)-1 && meta.size == 0 {
			_ = os.Remove(path) // an empty active segment: recreate on first write
			continue
		}
		r.segs = append(r.segs, meta)
	}
	if h, ok, err := readHead(r.dir); err == nil && ok && h.Seq > r.seq {
		r.log.Error().Int64("head_seq", h.Seq).Int64("store_seq", r.seq).Msg("store ends before its head: events were lost or removed")
		ev := Event{Type: TypeError,
			Error: fmt.Sprintf("recovery: store ends at seq %d but head.json recorded seq %d (%s)", r.seq, h.Seq, short(h.Hash))}
		r.add(&ev, r.now())
	}
	if n := len(r.segs); n > 0 {
		f, err := openSegFile(filepath.Join(r.dir, r.segs[n-1].name))
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		r.seg = f
	}
	return nil
}

// track updates the open-session set from one event.
func (r *Recorder) track(ev *Event) {
	if ev.Session == "" {
		return
	}
	if ev.Type == TypeSessionEnd {
		delete(r.open, ev.Session)
		return
	}
	if _, ok := r.open[ev.Session]; !ok {
		r.open[ev.Session] = openSess{seq: ev.Seq, info: Event{Session: ev.Session, User: ev.User, Groups: ev.Groups,
			ClientAddr: ev.ClientAddr, ApplicationName: ev.ApplicationName, Database: ev.Database, BackendUser: ev.BackendUser}}
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
	s.base = Event{Session: info.ID, User: info.User, Groups: info.Groups, ClientAddr: info.ClientAddr,
		ApplicationName: info.ApplicationName, Database: info.Database, BackendUser: info.BackendUser}
	ev := s.base
	ev.Type = TypeSessionStart
	_ = r.enqueue(ev)
	return s
}

// enqueue hands an event to the writer. It never allocates on the fast
// path; a full queue blocks up to enqueueTimeout, then the event is
// dropped, counted, and the recorder reports unhealthy (fail closed).
func (r *Recorder) enqueue(ev Event) error {
	if r.closed.Load() {
		r.m.dropped.Inc()
		return ErrClosed
	}
	it := item{ev: ev, t: r.now()}
	select {
	case r.q <- it:
		return nil
	default:
	}
	t := time.NewTimer(enqueueTimeout)
	defer t.Stop()
	select {
	case r.q <- it:
		return nil
	case <-t.C:
		r.m.dropped.Inc()
		r.setUnhealthy(ErrQueueFull)
		return ErrQueueFull
	case <-r.stop:
		r.m.dropped.Inc()
		return ErrClosed
	}
}

// Flush waits until everything enqueued before the call is written to the
// segment file (write(2): it survives a kill -9 of the gateway; fsync
// follows within recording.sync_interval).
func (r *Recorder) Flush(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	ch := make(chan error, 1)
	select {
	case r.q <- item{barrier: ch}:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stop:
		return ErrClosed
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes session_end (gateway_shutdown) for sessions still open,
// drains the queue, fsyncs and stops the sinks (undelivered webhook events
// stay on disk and are sent after the next Open).
func (r *Recorder) Close() error {
	if r.closed.Swap(true) {
		<-r.done
		return nil
	}
	close(r.stop)
	<-r.done
	for _, w := range r.webhooks {
		w.stop()
	}
	r.hookWG.Wait()
	r.m.unregister()
	if p := r.health.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *Recorder) writer() {
	defer close(r.done)
	tick := r.cfg.SyncEvery / 2
	if tick > 250*time.Millisecond || tick <= 0 {
		tick = 250 * time.Millisecond
	}
	tk := time.NewTicker(tick)
	defer tk.Stop()
	var barriers []chan error
	handle := func(it item) {
		if it.barrier != nil {
			barriers = append(barriers, it.barrier)
			return
		}
		r.add(&it.ev, it.t)
	}
	finish := func() {
		err := r.flush()
		for _, b := range barriers {
			b <- err
		}
		barriers = barriers[:0]
		if r.dirty && r.now().Sub(r.lastSync) >= r.cfg.SyncEvery {
			_ = r.sync()
		}
	}
	// drain handles what is already queued without waiting: at most limit
	// items, all of them when limit < 0.
	drain := func(limit int) {
		for n := 0; limit < 0 || n < limit; n++ {
			select {
			case it := <-r.q:
				handle(it)
			default:
				return
			}
		}
	}
	for {
		select {
		case it := <-r.q:
			handle(it)
			drain(maxBatch)
			finish()
		case <-tk.C:
			if r.health.Load() != nil {
				r.probe()
			}
			if r.dirty && r.now().Sub(r.lastSync) >= r.cfg.SyncEvery {
				_ = r.sync()
			}
			if r.cfg.RotateAge > 0 && len(r.segs) > 0 && r.seg != nil && r.now().Sub(r.segs[len(r.segs)-1].first) >= r.cfg.RotateAge {
				r.sealActive()
			}
			if r.now().Sub(r.lastRet) >= retentionEvery {
				r.retention()
			}
		case <-r.stop:
			drain(-1)
			finish() // track the drained events first (their session_ends close sessions)
			r.endOpen(ReasonGatewayShutdown)
			finish()
			_ = r.sync()
			if r.seg != nil {
				_ = r.seg.Close()
			}
			return
		}
	}
}

// endOpen adds a session_end with reason for every session still open,
// in the order they started (chained like any event), and returns how many.
func (r *Recorder) endOpen(reason string) int {
	ids := make([]string, 0, len(r.open))
	for id := range r.open {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return r.open[ids[i]].seq < r.open[ids[j]].seq })
	for _, id := range ids {
		ev := r.open[id].info
		ev.Type, ev.Reason = TypeSessionEnd, reason
		r.add(&ev, r.now())
	}
	return len(ids)
}

// add stamps ev with t, chains, encodes and buffers it; flush writes the
// buffer.
func (r *Recorder) add(ev *Event, t time.Time) {
	if ev.Type == TypeStatement || ev.Type == TypeApproval || ev.Type == TypeError {
		if sql, secret := redactSQL(ev.SQL); secret {
			ev.SQL, ev.Params = sql, nil
		}
	}
	ev.Time = t.Format(TimeFormat)
	ev.Seq = r.seq + 1
	ev.PrevHash = r.last
	line := r.enc.line(ev)
	// rotation by size: this event starts a new segment
	if n := len(r.segs); r.seg != nil && n > 0 && r.cfg.RotateBytes > 0 &&
		r.segs[n-1].size+int64(r.pending.Len()+len(line)) > r.cfg.RotateBytes && r.segs[n-1].size+int64(r.pending.Len()) > 0 {
		if r.flush() != nil {
			r.m.dropped.Inc()
			return
		}
		r.sealActive()
	}
	r.pending.Write(line)
	r.seq, r.last = ev.Seq, ev.Hash
	r.pendEv = append(r.pendEv, pendingInfo{t: t, ev: *ev})
}

// flush appends the pending buffer to the active segment (one write).
// On failure the file is cut back, the chain state rolls back, the events
// are counted as dropped and the recorder reports unhealthy.
func (r *Recorder) flush() error {
	if r.pending.Len() == 0 {
		return nil
	}
	first := r.pendEv[0]
	if r.seg == nil {
		name := segName(first.ev.Seq)
		f, err := openSegFile(filepath.Join(r.dir, name))
		if err != nil {
			return r.writeFailed(err)
		}
		r.seg = f
		r.segs = append(r.segs, segMeta{name: name, firstSeq: first.ev.Seq, first: first.t})
	}
	meta := &r.segs[len(r.segs)-1]
	if _, err := r.seg.Write(r.pending.Bytes()); err != nil {
		_ = r.seg.Truncate(meta.size)
		return r.writeFailed(err)
	}
	if meta.lastSeq == 0 {
		meta.first = first.t
	}
	lastEv := r.pendEv[len(r.pendEv)-1]
	meta.size += int64(r.pending.Len())
	meta.lastSeq, meta.lastHash, meta.last = lastEv.ev.Seq, lastEv.ev.Hash, lastEv.t
	r.dirty = true
	end := false
	for i := range r.pendEv {
		p := &r.pendEv[i].ev
		r.track(p)
		end = end || p.Type == TypeSessionEnd
	}
	r.m.events.Add(float64(len(r.pendEv)))
	if r.stdout != nil {
		if _, err := r.stdout.Write(r.pending.Bytes()); err != nil {
			r.m.sinkErrors.Inc()
		}
	}
	r.pending.Reset()
	r.pendEv = r.pendEv[:0]
	r.setHealthy()
	if end {
		_ = r.sync()
	}
	for _, w := range r.webhooks {
		w.poke()
	}
	return nil
}

func (r *Recorder) writeFailed(err error) error {
	r.m.writeErrors.Inc()
	r.m.dropped.Add(float64(len(r.pendEv)))
	// roll the chain back to what is on disk
	if n := len(r.segs); n > 0 {
		r.seq, r.last = r.segs[n-1].lastSeq, r.segs[n-1].lastHash
		if r.segs[n-1].lastSeq == 0 && n > 1 {
			r.seq, r.last = r.segs[n-2].lastSeq, r.segs[n-2].lastHash
		}
	}
	r.pending.Reset()
	r.pendEv = r.pendEv[:0]
	r.setUnhealthy(err)
	return err
}

// sync fsyncs the active segment and then records the head.
func (r *Recorder) sync() error {
	if r.seg == nil {
		return nil
	}
	if err := r.seg.Sync(); err != nil {
		r.m.writeErrors.Inc()
		r.setUnhealthy(err)
		return err
	}
	r.dirty = false
	r.lastSync = r.now()
	b := fmt.Appendf(nil, `{"seq":%d,"hash":%q}`, r.seq, r.last)
	if err := writeFileAtomic(filepath.Join(r.dir, headFile), b); err != nil {
		r.m.writeErrors.Inc()
		r.setUnhealthy(err)
		return err
	}
	return nil
}

// sealActive closes the active segment; the next event opens a new one
// whose first event chains to this one's last.
func (r *Recorder) sealActive() {
	if r.seg == nil {
		return
	}
	if err := r.sync(); err != nil {
		return
	}
	_ = r.seg.Close()
	r.seg = nil
	r.m.rotations.Inc()
}

// probe checks whether the store can be written again.
func (r *Recorder) probe() {
	p := filepath.Join(r.dir, ".probe")
	f, err := openSegFile(p)
	if err == nil {
		_, err = f.Write([]byte("x"))
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		os.Remove(p)
	}
	if err == nil && r.seg != nil {
		// reopen the active segment: the old descriptor may be broken (EIO)
		var nf segFile
		nf, err = openSegFile(filepath.Join(r.dir, r.segs[len(r.segs)-1].name))
		if err == nil {
			_ = r.seg.Close()
			r.seg = nf
			err = r.seg.Truncate(r.segs[len(r.segs)-1].size) // drop any partial write
			if err == nil {
				err = r.seg.Sync()
			}
		}
	}
	if err == nil {
		r.setHealthy()
	}
}

// retention deletes the oldest sealed segments whose last event is older
// than recording.retention (and, with webhook sinks, already delivered),
// then writes a retention marker into the chain.
func (r *Recorder) retention() {
	r.lastRet = r.now()
	if r.cfg.Retention <= 0 || len(r.segs) < 2 {
		return
	}
	cutoff := r.now().Add(-r.cfg.Retention)
	minDelivered := int64(-1)
	for _, w := range r.webhooks {
		if d := w.deliveredSeq(); minDelivered < 0 || d < minDelivered {
			minDelivered = d
		}
	}
	var purged *segMeta
	n := 0
	for i := 0; i < len(r.segs)-1; i++ { // never the active (last) segment
		s := &r.segs[i]
		if !s.last.Before(cutoff) || (minDelivered >= 0 && s.lastSeq > minDelivered) {
			break
		}
		if err := os.Remove(filepath.Join(r.dir, s.name)); err != nil && !os.IsNotExist(err) {
			r.log.Error().Err(err).Str("segment", s.name).Msg("retention: cannot delete segment")
			break
		}
		purged = s
		n++
	}
	if purged == nil {
		return
	}
	ev := Event{Type: TypeRetention, Reason: "retention",
		PurgedThroughSeq: purged.lastSeq, PurgedThroughHash: purged.lastHash}
	r.segs = append(r.segs[:0], r.segs[n:]...)
	r.add(&ev, r.now())
	_ = r.flush()
	r.log.Info().Int("segments", n).Int64("through_seq", ev.PurgedThroughSeq).Msg("retention deleted old segments")
}

// SessionRecorder records one session. Its methods are safe for concurrent
// use and never block longer than the enqueue timeout.
type SessionRecorder struct {
	r     *Recorder
	base  Event
	ended atomic.Bool

	// FlushTimeout's reused barrier channel and timer (under flushMu): no
	// allocation per statement. A barrier abandoned on timeout keeps its
	// channel (the writer still answers it); the next call makes a new one.
	flushMu sync.Mutex
	flushCh chan error
	flushT  *time.Timer
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
		ev.RowsTotal = int64(len(st.Rows))
	}
	if s.r.cfg.Results {
		ev.Columns, ev.Rows = st.Columns, st.Rows
		if len(ev.Rows) > s.r.cfg.MaxRows {
			ev.Rows = ev.Rows[:s.r.cfg.MaxRows]
		}
	}
	return s.r.enqueue(ev)
}

// Approval records an approval state change for a statement of this session.
func (s *SessionRecorder) Approval(a ApprovalEvent) error {
	ev := s.base
	ev.Type = TypeApproval
	ev.ApprovalID, ev.ApprovalState, ev.SQL, ev.Actions, ev.DecidedBy, ev.Reason = a.ID, a.State, a.SQL, a.Actions, a.DecidedBy, a.Reason
	switch a.State {
	case "pending":
		ev.Decision = DecisionHold
	case "approved", "executed":
		ev.Decision = DecisionApproved
	case "denied", "expired", "withdrawn":
		ev.Decision = DecisionDenied
	}
	return s.r.enqueue(ev)
}

// Error records an error of the session that is not a statement's result
// (e.g. a protocol violation or a lost upstream). sql may be empty.
func (s *SessionRecorder) Error(sql, msg string) error {
	ev := s.base
	ev.Type, ev.SQL, ev.Error = TypeError, sql, msg
	return s.r.enqueue(ev)
}

// End records session_end once (later calls are no-ops); the writer fsyncs
// at every session_end.
func (s *SessionRecorder) End(reason string) error {
	if s.ended.Swap(true) {
		return nil
	}
	ev := s.base
	ev.Type, ev.Reason = TypeSessionEnd, reason
	return s.r.enqueue(ev)
}

// Flush waits until this session's events so far are written (see Recorder.Flush).
func (s *SessionRecorder) Flush(ctx context.Context) error { return s.r.Flush(ctx) }

// FlushTimeout is Flush with a timeout instead of a context, for the
// per-statement barrier: the same guarantee (everything enqueued before
// the call is written, write(2), when it returns nil) without allocating.
func (s *SessionRecorder) FlushTimeout(d time.Duration) error {
	r := s.r
	if r.closed.Load() {
		return ErrClosed
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.flushCh == nil {
		s.flushCh = make(chan error, 1)
	}
	if s.flushT == nil {
		s.flushT = time.NewTimer(d)
	} else {
		s.flushT.Reset(d) // Go >= 1.23: no stale value after Reset
	}
	defer s.flushT.Stop()
	ch := s.flushCh
	select {
	case r.q <- item{barrier: ch}:
	case <-s.flushT.C:
		return context.DeadlineExceeded
	case <-r.stop:
		return ErrClosed
	}
	select {
	case err := <-ch:
		return err
	case <-s.flushT.C:
		s.flushCh = nil // the writer answers into the abandoned channel later
		return context.DeadlineExceeded
	}
}

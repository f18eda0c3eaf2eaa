package sessions

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
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
	lockTimeout    = 500 * time.Millisecond // a caller waits this long for the store lock, then fails closed
	stdoutQueue    = 4096                   // stdout sink writes buffered in memory before writers wait
	retentionEvery = time.Minute
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
	Reason    string // comment or deny reason
}

// segMeta is what the recorder knows about one segment file.
type segMeta struct {
	name     string
	firstSeq int64
	lastSeq  int64
	lastHash chainHash
	first    time.Time // time of the first event
	last     time.Time // time of the last event
	size     int64
}

type openSess = record.OpenSession

func trackOpen(open map[string]openSess, ev *Event) { record.TrackOpen(open, ev) }
func openInOrder(open map[string]openSess) []Event  { return record.OpenInOrder(open) }

// segFile is the writable segment (an interface so tests can make it fail).
type segFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Recorder writes the session record of one gateway process. Create it with
// Open, hand each session a SessionRecorder from Start, Close at shutdown.
type Recorder struct {
	cfg  config.Recording
	log  zerolog.Logger
	now  func() time.Time
	done chan struct{} // closed when the appender's background work has stopped

	closed atomic.Bool
	health atomic.Pointer[error]

	m metrics

	// sinks get every stored batch (Sink.Written), in store order;
	// delivery holds the ones retention waits for.
	sinks    []Sink
	delivery []deliverySink

	// w is where events go: the segment files (fileAppender, Open) or
	// the shared store's per-gateway chain (sharedLog, OpenShared; the
	// events then carry gateway).
	w       appender
	gateway string
}

// fileAppender writes the segment files under <store.dir>/sessions: the
// file store's appender. It reaches the recorder's configuration, clock,
// metrics, health and sinks through the embedded *Recorder; its own state
// is below. The maintainer goroutine (maintain) is its background work.
type fileAppender struct {
	*Recorder
	dir  string // <store.dir>/sessions
	stop chan struct{}
	kick chan struct{} // cap 1: asks the maintainer to fsync now

	// lk is the store lock (a one-slot semaphore, so that waiting for it
	// can time out). The session that records an event chains, encodes and
	// writes it itself while holding lk; the maintainer goroutine takes lk
	// only to collect fsync work and for rotation, retention and probes,
	// and fsyncs without it. Everything below is guarded by lk.
	lk       chan struct{}
	shut     bool      // Close has written the final events: refuse more
	retired  []segFile // sealed segments written but not yet fsynced and closed (the maintainer's)
	needSync bool      // fsync soon (session_end, rotation) instead of at sync_interval
	enc      *encoder
	pending  bytes.Buffer
	pendEv   []pendingInfo
	seq      int64
	last     chainHash // hash of the event seq
	body     []byte    // add's scratch for events not encoded before the lock
	segs     []segMeta // sealed and active, in order; active is the last one
	seg      segFile   // active segment, nil until the first write
	dirty    bool      // written but not fsynced
	lastSync time.Time
	open     map[string]openSess
	lastRet  time.Time
}

// pendingInfo is one encoded, not yet written event: ev as chained (Seq,
// Hash, identity fields for the open-session set) and its time.
type pendingInfo struct {
	t          time.Time
	ev         Event
	hash, prev chainHash
}

// Open opens (creating if needed) the file store under st.Dir/sessions,
// recovers from a crash (a torn last line is cut off and kept aside; every
// session without session_end gets one with reason gateway_restart),
// applies retention and starts the maintainer and the sinks.
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
	rec := newRecorder(cfg, log, reg)
	r := &fileAppender{Recorder: rec, dir: dir, stop: make(chan struct{}), kick: make(chan struct{}, 1),
		lk: make(chan struct{}, 1), enc: newEncoder(), open: map[string]openSess{}}
	rec.w = r
	if err := r.recover(); err != nil {
		return nil, err
	}
	lastBefore := r.seq
	for _, s := range cfg.Sinks {
		switch s.Type {
		case "stdout":
			r.addSink(newStdoutSink(r.m.sinkErrors))
		case "webhook":
			w, err := newWebhook(r, s, filepath.Join(st.Dir, "outbox"), lastBefore)
			if err != nil {
				return nil, err
			}
			r.addSink(w)
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
	if err := r.syncNow(); err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	for _, k := range r.sinks {
		k.Start()
	}
	go r.maintain()
	return rec, nil
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

// recover scans the store: last seq/hash, open sessions, segment metadata,
// and cuts off a torn last line.
func (r *fileAppender) recover() error {
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
			line, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("sessions: %s: %w", name, err)
			}
			if err := decodeLoose(line, &ev); err != nil || ev.Hash == "" {
				r.log.Error().Str("segment", name).Int("line", lr.LineNo()).Msg("undecodable event in store (run `pgwarden sessions verify`)")
				continue
			}
			r.seq, r.last = ev.Seq, chainHashOf(ev.Hash)
			t := ev.TimeValue()
			if meta.lastSeq == 0 {
				meta.first = t
			}
			meta.lastSeq, meta.lastHash, meta.last = ev.Seq, chainHashOf(ev.Hash), t
			r.track(&ev)
		}
		meta.size = lr.Off()
		// What follows the last complete line: nothing, the zero tail of
		// space allocated ahead (cut off silently), or a torn last write
		// (and, after a power loss, maybe pages written out of order
		// behind zeros): kept aside whole, then cut off.
		frag, err := tailAfter(f, meta.size)
		f.Close()
		if err != nil {
			return fmt.Errorf("sessions: %s: %w", name, err)
		}
		switch {
		case len(frag) == 0:
			if err := trimTo(path, meta.size); err != nil {
				return fmt.Errorf("sessions: cutting the zero tail of %s: %w", name, err)
			}
		case i != len(names)-1:
			r.log.Error().Str("segment", name).Msg("sealed segment ends without newline (run `pgwarden sessions verify`)")
		default:
			keep := filepath.Join(r.dir, fmt.Sprintf("torn-%d.bin", time.Now().UnixNano()))
			_ = os.WriteFile(keep, frag, 0o600)
			if err := os.Truncate(path, meta.size); err != nil {
				return fmt.Errorf("sessions: truncating torn line: %w", err)
			}
			r.m.torn.Inc()
			r.log.Warn().Str("segment", name).Int("bytes", len(frag)).Str("kept_as", filepath.Base(keep)).Msg("cut off a torn last line (crash during write)")
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

// trimTo truncates path to size when it is longer.
func trimTo(path string, size int64) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() <= size {
		return err
	}
	return os.Truncate(path, size)
}

// track updates the open-session set from one event.
func (r *fileAppender) track(ev *Event) { trackOpen(r.open, ev) }

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

// lock takes the store lock, waiting at most d (d <= 0: without limit).
// The uncontended path neither allocates nor starts a timer.
func (r *fileAppender) lock(d time.Duration) bool {
	select {
	case r.lk <- struct{}{}:
		return true
	default:
	}
	if d <= 0 {
		r.lk <- struct{}{}
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r.lk <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (r *fileAppender) unlock() { <-r.lk }

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
	r.w.Shutdown()
	<-r.done
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

// wake asks the maintainer to fsync soon (never blocks).
func (r *fileAppender) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// maintain is the recorder's background goroutine: fsync (outside the
// store lock, so sessions keep writing meanwhile), rotation by age,
// retention, health probes, and the final events at Close.
func (r *fileAppender) maintain() {
	defer close(r.done)
	tick := r.cfg.SyncEvery / 2
	if tick > 250*time.Millisecond || tick <= 0 {
		tick = 250 * time.Millisecond
	}
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for {
		select {
		case <-r.kick:
			r.lock(0)
			w := r.syncWork(false)
			r.unlock()
			r.doSync(w)
		case <-tk.C:
			if r.health.Load() != nil {
				r.probe() // takes the lock itself, fsyncs without it
			}
			r.lock(0)
			if r.cfg.RotateAge > 0 && len(r.segs) > 0 && r.seg != nil && r.now().Sub(r.segs[len(r.segs)-1].first) >= r.cfg.RotateAge {
				r.sealActive()
			}
			if r.now().Sub(r.lastRet) >= retentionEvery {
				r.retention()
			}
			w := r.syncWork(false)
			r.unlock()
			r.doSync(w)
		case <-r.stop:
			r.lock(0)
			if r.shut { // halted (tests simulate a kill -9 this way): write nothing more
				r.unlock()
				return
			}
			r.shut = true
			r.endOpen(ReasonGatewayShutdown)
			_ = r.flush()
			w := r.syncWork(true)
			r.unlock()
			r.doSync(w)
			return
		}
	}
}

// endOpen adds a session_end with reason for every session still open,
// in the order they started (chained like any event), and returns how many.
func (r *fileAppender) endOpen(reason string) int {
	open := openInOrder(r.open)
	for _, ev := range open {
		ev.Type, ev.Reason = TypeSessionEnd, reason
		r.add(&ev, r.now())
	}
	return len(open)
}

// add stamps ev with t, chains, encodes and buffers it; flush writes the
// buffer. (The recorder's own events: recovery, retention, Close.)
func (r *fileAppender) add(ev *Event, t time.Time) {
	r.body = appendBody(r.body[:0], ev)
	r.addBody(ev, r.body, t)
}

// addBody chains an event whose body (appendBody of ev) is encoded: stamps
// it with t, hashes and buffers the line. ev's Time, PrevHash and Hash
// stay unset: the chain state is kept as chainHash, without strings.
func (r *fileAppender) addBody(ev *Event, body []byte, t time.Time) {
	ev.Seq = r.seq + 1
	var h chainHash
	line := r.enc.ChainLine(ev.Seq, t, body, &r.last, &h)
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
	r.pendEv = append(r.pendEv, pendingInfo{t: t, ev: *ev, hash: h, prev: r.last})
	r.seq, r.last = ev.Seq, h
}

// flush appends the pending buffer to the active segment (one write).
// On failure the file is cut back, the chain state rolls back, the events
// are counted as dropped and the recorder reports unhealthy.
func (r *fileAppender) flush() error {
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
	meta.lastSeq, meta.lastHash, meta.last = lastEv.ev.Seq, lastEv.hash, lastEv.t
	r.dirty = true
	end := false
	for i := range r.pendEv {
		p := &r.pendEv[i].ev
		r.track(p)
		end = end || p.Type == TypeSessionEnd
	}
	r.m.events.Add(float64(len(r.pendEv)))
	for _, k := range r.sinks {
		k.Written(r.pending.Bytes())
	}
	r.pending.Reset()
	r.pendEv = r.pendEv[:0]
	r.setHealthy()
	if end || r.lastSync.IsZero() {
		// fsync at every session_end, and as soon as there is anything
		// when head.json has not been written yet (a new store, or after
		// a failed fsync): by the maintainer
		r.needSync = true
		r.wake()
	}
	return nil
}

func (r *fileAppender) writeFailed(err error) error {
	r.m.writeErrors.Inc()
	r.m.dropped.Add(float64(len(r.pendEv)))
	// roll the chain back to what is on disk: to just before the first
	// unwritten event (also right on a new store, where there is no
	// segment to take it from)
	if len(r.pendEv) > 0 {
		r.seq, r.last = r.pendEv[0].ev.Seq-1, r.pendEv[0].prev
	}
	r.pending.Reset()
	r.pendEv = r.pendEv[:0]
	r.setUnhealthy(err)
	return err
}

// syncJob is fsync work collected under the store lock and done without
// it: files to fsync (the retired ones are closed after), and the head
// (seq, hash of the last written event) to record once they are durable.
type syncJob struct {
	files  []segFile
	closes int // the first closes files are retired segments: close them after the fsync
	seq    int64
	hash   string
}

// syncWork collects what to fsync (caller holds the lock): the retired
// segments always; the active one when final, asked for (session_end,
// rotation) or sync_interval has passed since the last fsync. With final
// the active segment is retired too (Close).
func (r *fileAppender) syncWork(final bool) *syncJob {
	if final && r.seg != nil {
		r.retired = append(r.retired, r.seg)
		r.seg = nil
	}
	due := r.dirty && (r.needSync || r.now().Sub(r.lastSync) >= r.cfg.SyncEvery)
	if len(r.retired) == 0 && !due && !final {
		return nil
	}
	j := &syncJob{files: r.retired, closes: len(r.retired)}
	r.retired = nil
	if r.seg != nil && due {
		j.files = append(j.files, r.seg)
	}
	j.seq, j.hash = r.writtenHead()
	r.dirty, r.needSync, r.lastSync = false, false, r.now()
	return j
}

// writtenHead is the seq and hash of the last event written to a segment.
func (r *fileAppender) writtenHead() (int64, string) {
	n := len(r.segs)
	if n == 0 {
		return r.seq, r.last.String()
	}
	if r.segs[n-1].lastSeq == 0 && n > 1 {
		return r.segs[n-2].lastSeq, r.segs[n-2].lastHash.String()
	}
	if r.segs[n-1].lastSeq == 0 {
		return r.seq, r.last.String()
	}
	return r.segs[n-1].lastSeq, r.segs[n-1].lastHash.String()
}

// doSync fsyncs j's files (without the store lock: sessions go on
// writing), closes the retired ones, then records the head. Only the
// maintainer (or Open, before it starts) calls it, so no file is closed
// under another fsync.
func (r *fileAppender) doSync(j *syncJob) error {
	if j == nil {
		return nil
	}
	var err error
	var again []segFile // retired segments whose fsync failed: keep them for the next try
	for i, f := range j.files {
		e := f.Sync()
		if e != nil && err == nil {
			err = e
		}
		if i < j.closes {
			if e != nil {
				again = append(again, f)
			} else {
				_ = f.Close()
			}
		}
	}
	if err == nil {
		b := fmt.Appendf(nil, `{"seq":%d,"hash":%q}`, j.seq, j.hash)
		err = writeFileAtomic(filepath.Join(r.dir, headFile), b)
	}
	if err != nil {
		r.m.writeErrors.Inc()
		r.setUnhealthy(err)
		r.lock(0)
		if r.shut { // Close: no next chance
			for _, f := range again {
				_ = f.Close()
			}
		} else {
			r.retired = append(again, r.retired...)
		}
		r.dirty = true           // fsync again at the next chance,
		r.lastSync = time.Time{} // and at once after the next good write
		r.unlock()
	}
	return err
}

// syncNow fsyncs the active segment and records the head, inline (Open,
// before the maintainer starts).
func (r *fileAppender) syncNow() error {
	r.needSync = true
	r.dirty = r.dirty || r.seg != nil
	return r.doSync(r.syncWork(false))
}

// sealActive retires the active segment (the maintainer fsyncs and closes
// it); the next event opens a new one whose first event chains to this
// one's last.
func (r *fileAppender) sealActive() {
	if r.seg == nil {
		return
	}
	r.retired = append(r.retired, r.seg)
	r.seg = nil
	r.needSync = true
	r.m.rotations.Inc()
	r.wake()
}

// probe checks whether the store can be written again. Like every fsync
// of the maintainer, its fsyncs run without the store lock (a hung fsync
// must not stall the sessions, whose writes may work); it takes the lock
// only to swap the active segment's descriptor.
func (r *fileAppender) probe() {
	p0 := r.health.Load()
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
	if err != nil {
		return
	}
	var nf segFile
	r.lock(0)
	if r.seg != nil {
		// Reopen the active segment: the old descriptor may be broken
		// (EIO). It is closed first: a mapped segment's Close cuts the
		// file to its data, which must not happen under the new one.
		_ = r.seg.Close()
		r.seg = nil
		nf, err = openSegFile(filepath.Join(r.dir, r.segs[len(r.segs)-1].name))
		if err == nil {
			// drop any partial write; a segment shorter than what was
			// written to it (changed behind our back) is not resumed
			if err = nf.Truncate(r.segs[len(r.segs)-1].size); err == nil {
				r.seg = nf
			} else {
				_ = nf.Close()
				nf = nil
			}
		}
		// r.seg nil (not reopened): the next event starts a new segment,
		// chained to this one's last event like after a rotation
		// (and a segment that failed to resume stays as it is, for verify)
	}
	r.unlock()
	if err == nil && nf != nil {
		err = nf.Sync() // only the maintainer closes it, so it stays open
	}
	// healthy again, unless something failed meanwhile (a new error)
	if err == nil && r.health.CompareAndSwap(p0, nil) {
		if p0 != nil {
			r.log.Info().Msg("session recording available again")
		}
		r.m.healthy.Set(1)
	}
}

// retention deletes the oldest sealed segments whose last event is older
// than recording.retention (and, with webhook sinks, already delivered),
// then writes a retention marker into the chain.
func (r *fileAppender) retention() {
	r.lastRet = r.now()
	if r.cfg.Retention <= 0 || len(r.segs) < 2 {
		return
	}
	cutoff := r.now().Add(-r.cfg.Retention)
	minDelivered := int64(-1)
	for _, w := range r.delivery {
		if d := w.DeliveredSeq(); minDelivered < 0 || d < minDelivered {
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
		PurgedThroughSeq: purged.lastSeq, PurgedThroughHash: purged.lastHash.String()}
	r.segs = append(r.segs[:0], r.segs[n:]...)
	r.add(&ev, r.now())
	_ = r.flush()
	r.log.Info().Int("segments", n).Int64("through_seq", ev.PurgedThroughSeq).Msg("retention deleted old segments")
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

package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/sessions/record"
)

var _ record.Appender = (*Appender)(nil)

// ErrMapFault is a fault on the mapping of the active segment (Linux:
// the file shortened behind the appender, an I/O error paging it in): the
// write fails and the segment is never written again.
var ErrMapFault = errors.New("sessions: fault on the segment mapping")

// Tunables that are not configuration keys.
const (
	// DefaultLockTimeout is how long Write waits for the store lock (held
	// by a write that does not return: a hung disk) before it fails closed.
	DefaultLockTimeout = 500 * time.Millisecond
	defaultSyncEvery   = time.Second
	retentionEvery     = time.Minute
)

// Options are the file store's settings; package sessions fills them from
// the recording section of the configuration.
type Options struct {
	// SyncInterval: fsync at most this often, and soon after every
	// session_end (recording.sync_interval; 0: 1s).
	SyncInterval time.Duration
	// RotateBytes starts a new segment when the active one would grow
	// beyond it (recording.rotate_bytes; 0: never).
	RotateBytes int64
	// RotateAge starts a new segment when the active one's first event
	// is this old (recording.rotate_age; 0: never).
	RotateAge time.Duration
	// Retention deletes sealed segments whose last event is older
	// (recording.retention; 0: keep all).
	Retention time.Duration
	// LockTimeout bounds Write's wait for the store lock (0: DefaultLockTimeout).
	LockTimeout time.Duration
	// Log gets the store's own messages (recovery, retention).
	Log zerolog.Logger
}

// segMeta is what the appender knows about one segment file.
type segMeta struct {
	name     string
	firstSeq int64
	lastSeq  int64
	lastHash record.ChainHash
	first    time.Time // time of the first event
	last     time.Time // time of the last event
	size     int64
}

// segFile is the writable segment (an interface so tests can make it fail).
type segFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Appender writes the segment files under <store.dir>/sessions: the file
// store's record.Appender. It reaches the recorder that owns it only
// through its record.Host (clock, metrics, health, sinks); its own state
// is below. The maintainer goroutine (maintain) is its background work.
type Appender struct {
	h    record.Host
	opts Options
	log  zerolog.Logger
	dir  string // <store.dir>/sessions
	stop chan struct{}
	done chan struct{} // closed when the maintainer has stopped
	kick chan struct{} // cap 1: asks the maintainer to fsync now

	// lk is the store lock (a one-slot semaphore, so that waiting for it
	// can time out). The session that records an event chains, encodes and
	// writes it itself while holding lk; the maintainer goroutine takes lk
	// only to collect fsync work and for rotation, retention and probes,
	// and fsyncs without it. Everything below is guarded by lk.
	lk       chan struct{}
	shut     bool      // Shutdown has written the final events: refuse more
	retired  []segFile // sealed segments written but not yet fsynced and closed (the maintainer's)
	needSync bool      // fsync soon (session_end, rotation) instead of at sync_interval
	enc      *record.Encoder
	pending  bytes.Buffer
	pendEv   []pendingInfo
	seq      int64
	last     record.ChainHash // hash of the event seq
	body     []byte           // add's scratch for events not encoded before the lock
	segs     []segMeta        // sealed and active, in order; active is the last one
	seg      segFile          // active segment, nil until the first write
	dirty    bool             // written but not fsynced
	lastSync time.Time
	open     map[string]record.OpenSession
	lastRet  time.Time
}

// pendingInfo is one encoded, not yet written event: ev as chained (Seq,
// Hash, identity fields for the open-session set) and its time.
type pendingInfo struct {
	t          time.Time
	ev         record.Event
	hash, prev record.ChainHash
}

// OpenAppender opens (creating if needed) the file store in dir
// (<store.dir>/sessions) for h and recovers it: it continues the chain
// after the last complete line, cuts off a torn last line (kept aside as
// torn-*.bin) and learns which sessions are still open. It writes nothing
// yet: Start does, once the recorder has its sinks.
func OpenAppender(h record.Host, dir string, opts Options) (*Appender, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = defaultSyncEvery
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	a := &Appender{h: h, opts: opts, log: opts.Log, dir: dir, stop: make(chan struct{}), done: make(chan struct{}),
		kick: make(chan struct{}, 1), lk: make(chan struct{}, 1), enc: record.NewEncoder(), open: map[string]record.OpenSession{}}
	if err := a.recover(); err != nil {
		return nil, err
	}
	return a, nil
}

// Dir is the directory of the segments.
func (a *Appender) Dir() string { return a.dir }

// Seq is the seq of the last event in the store (after OpenAppender: of
// the last one recovered).
func (a *Appender) Seq() int64 {
	a.lock(0)
	defer a.unlock()
	return a.seq
}

// Start writes the recovery events — session_end with reason
// gateway_restart for every session a crash left open, chained like any
// event — applies retention, fsyncs and starts the maintainer.
func (a *Appender) Start() error {
	if n := a.endOpen(record.ReasonGatewayRestart); n > 0 {
		a.log.Warn().Int("sessions", n).Msg("recovered sessions left open by a crash (session_end gateway_restart)")
	}
	if err := a.flush(); err != nil {
		return fmt.Errorf("sessions: writing recovery events: %w", err)
	}
	a.retention()
	if err := a.syncNow(); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	go a.maintain()
	return nil
}

// Write takes the store lock (at most Options.LockTimeout), chains and
// writes the event.
func (a *Appender) Write(ev record.Event, body []byte) error {
	if !a.lock(a.opts.LockTimeout) {
		a.h.Dropped(1)
		a.h.SetUnhealthy(record.ErrStalled)
		return record.ErrStalled
	}
	if a.shut {
		a.unlock()
		a.h.Dropped(1)
		return record.ErrClosed
	}
	a.addBody(&ev, body, a.h.Now()) // stamped under the lock: times never run backwards against seq
	err := a.flush()
	a.unlock()
	return err
}

// Shutdown stops the maintainer, which writes the final events
// (session_end gateway_shutdown for the sessions still open) and fsyncs,
// and waits for it.
func (a *Appender) Shutdown() {
	close(a.stop)
	<-a.done
}

// recover scans the store: last seq/hash, open sessions, segment metadata,
// and cuts off a torn last line.
func (a *Appender) recover() error {
	names, err := ListSegments(a.dir)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	var ev record.Event
	for i, name := range names {
		path := filepath.Join(a.dir, name)
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		meta := segMeta{name: name, firstSeq: SegFirstSeq(name)}
		lr := NewLineReader(f, 0)
		for line, err := range lr.Lines() {
			if err != nil {
				f.Close()
				return fmt.Errorf("sessions: %s: %w", name, err)
			}
			if err := record.DecodeLoose(line, &ev); err != nil || ev.Hash == "" {
				a.log.Error().Str("segment", name).Int("line", lr.LineNo()).Msg("undecodable event in store (run `pgwarden sessions verify`)")
				continue
			}
			a.seq, a.last = ev.Seq, record.ChainHashOf(ev.Hash)
			t := ev.TimeValue()
			if meta.lastSeq == 0 {
				meta.first = t
			}
			meta.lastSeq, meta.lastHash, meta.last = ev.Seq, record.ChainHashOf(ev.Hash), t
			a.track(&ev)
		}
		meta.size = lr.Off()
		// What follows the last complete line: nothing, the zero tail of
		// space allocated ahead (cut off silently), or a torn last write
		// (and, after a power loss, maybe pages written out of order
		// behind zeros): kept aside whole, then cut off.
		frag, err := TailAfter(f, meta.size)
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
			a.log.Error().Str("segment", name).Msg("sealed segment ends without newline (run `pgwarden sessions verify`)")
		default:
			keep := filepath.Join(a.dir, fmt.Sprintf("torn-%d.bin", time.Now().UnixNano()))
			_ = os.WriteFile(keep, frag, 0o600)
			if err := os.Truncate(path, meta.size); err != nil {
				return fmt.Errorf("sessions: truncating torn line: %w", err)
			}
			a.h.TornLine()
			a.log.Warn().Str("segment", name).Int("bytes", len(frag)).Str("kept_as", filepath.Base(keep)).Msg("cut off a torn last line (crash during write)")
		}
		if meta.lastSeq == 0 && i == len(names)-1 && meta.size == 0 {
			_ = os.Remove(path) // an empty active segment: recreate on first write
			continue
		}
		a.segs = append(a.segs, meta)
	}
	if h, ok, err := ReadHead(a.dir); err == nil && ok && h.Seq > a.seq {
		a.log.Error().Int64("head_seq", h.Seq).Int64("store_seq", a.seq).Msg("store ends before its head: events were lost or removed")
		ev := record.Event{Type: record.TypeError,
			Error: fmt.Sprintf("recovery: store ends at seq %d but head.json recorded seq %d (%s)", a.seq, h.Seq, record.Short(h.Hash))}
		a.add(&ev, a.h.Now())
	}
	if n := len(a.segs); n > 0 {
		f, err := openSegFile(filepath.Join(a.dir, a.segs[n-1].name))
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		a.seg = f
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
func (a *Appender) track(ev *record.Event) { record.TrackOpen(a.open, ev) }

// lock takes the store lock, waiting at most d (d <= 0: without limit).
// The uncontended path neither allocates nor starts a timer.
func (a *Appender) lock(d time.Duration) bool {
	select {
	case a.lk <- struct{}{}:
		return true
	default:
	}
	if d <= 0 {
		a.lk <- struct{}{}
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case a.lk <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (a *Appender) unlock() { <-a.lk }

// wake asks the maintainer to fsync soon (never blocks).
func (a *Appender) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// maintain is the appender's background goroutine: fsync (outside the
// store lock, so sessions keep writing meanwhile), rotation by age,
// retention, health probes, and the final events at Shutdown.
func (a *Appender) maintain() {
	defer close(a.done)
	tick := a.opts.SyncInterval / 2
	if tick > 250*time.Millisecond || tick <= 0 {
		tick = 250 * time.Millisecond
	}
	tk := time.NewTicker(tick)
	defer tk.Stop()
	for {
		select {
		case <-a.kick:
			a.lock(0)
			w := a.syncWork(false)
			a.unlock()
			a.doSync(w)
		case <-tk.C:
			if a.h.Health() != nil {
				a.probe() // takes the lock itself, fsyncs without it
			}
			a.lock(0)
			if a.opts.RotateAge > 0 && len(a.segs) > 0 && a.seg != nil && a.h.Now().Sub(a.segs[len(a.segs)-1].first) >= a.opts.RotateAge {
				a.sealActive()
			}
			if a.h.Now().Sub(a.lastRet) >= retentionEvery {
				a.retention()
			}
			w := a.syncWork(false)
			a.unlock()
			a.doSync(w)
		case <-a.stop:
			a.lock(0)
			if a.shut { // halted (tests simulate a kill -9 this way): write nothing more
				a.unlock()
				return
			}
			a.shut = true
			a.endOpen(record.ReasonGatewayShutdown)
			_ = a.flush()
			w := a.syncWork(true)
			a.unlock()
			a.doSync(w)
			return
		}
	}
}

// endOpen adds a session_end with reason for every session still open,
// in the order they started (chained like any event), and returns how many.
func (a *Appender) endOpen(reason string) int {
	open := record.OpenInOrder(a.open)
	for _, ev := range open {
		ev.Type, ev.Reason = record.TypeSessionEnd, reason
		a.add(&ev, a.h.Now())
	}
	return len(open)
}

// add stamps ev with t, chains, encodes and buffers it; flush writes the
// buffer. (The appender's own events: recovery, retention, Shutdown.)
func (a *Appender) add(ev *record.Event, t time.Time) {
	a.body = record.AppendBody(a.body[:0], ev)
	a.addBody(ev, a.body, t)
}

// addBody chains an event whose body (record.AppendBody of ev) is
// encoded: stamps it with t, hashes and buffers the line. ev's Time,
// PrevHash and Hash stay unset: the chain state is kept as ChainHash,
// without strings.
func (a *Appender) addBody(ev *record.Event, body []byte, t time.Time) {
	ev.Seq = a.seq + 1
	var h record.ChainHash
	line := a.enc.ChainLine(ev.Seq, t, body, &a.last, &h)
	// rotation by size: this event starts a new segment
	if n := len(a.segs); a.seg != nil && n > 0 && a.opts.RotateBytes > 0 &&
		a.segs[n-1].size+int64(a.pending.Len()+len(line)) > a.opts.RotateBytes && a.segs[n-1].size+int64(a.pending.Len()) > 0 {
		if a.flush() != nil {
			a.h.Dropped(1)
			return
		}
		a.sealActive()
	}
	a.pending.Write(line)
	a.pendEv = append(a.pendEv, pendingInfo{t: t, ev: *ev, hash: h, prev: a.last})
	a.seq, a.last = ev.Seq, h
}

// flush appends the pending buffer to the active segment (one write).
// On failure the file is cut back, the chain state rolls back, the events
// are counted as dropped and the store is reported unhealthy.
func (a *Appender) flush() error {
	if a.pending.Len() == 0 {
		return nil
	}
	first := a.pendEv[0]
	if a.seg == nil {
		name := SegName(first.ev.Seq)
		f, err := openSegFile(filepath.Join(a.dir, name))
		if err != nil {
			return a.writeFailed(err)
		}
		a.seg = f
		a.segs = append(a.segs, segMeta{name: name, firstSeq: first.ev.Seq, first: first.t})
	}
	meta := &a.segs[len(a.segs)-1]
	if _, err := a.seg.Write(a.pending.Bytes()); err != nil {
		_ = a.seg.Truncate(meta.size)
		return a.writeFailed(err)
	}
	if meta.lastSeq == 0 {
		meta.first = first.t
	}
	lastEv := a.pendEv[len(a.pendEv)-1]
	meta.size += int64(a.pending.Len())
	meta.lastSeq, meta.lastHash, meta.last = lastEv.ev.Seq, lastEv.hash, lastEv.t
	a.dirty = true
	end := false
	for i := range a.pendEv {
		p := &a.pendEv[i].ev
		a.track(p)
		end = end || p.Type == record.TypeSessionEnd
	}
	a.h.Stored(len(a.pendEv), a.pending.Bytes()) // counted, to the sinks, healthy
	a.pending.Reset()
	a.pendEv = a.pendEv[:0]
	if end || a.lastSync.IsZero() {
		// fsync at every session_end, and as soon as there is anything
		// when head.json has not been written yet (a new store, or after
		// a failed fsync): by the maintainer
		a.needSync = true
		a.wake()
	}
	return nil
}

func (a *Appender) writeFailed(err error) error {
	a.h.WriteError()
	a.h.Dropped(len(a.pendEv))
	// roll the chain back to what is on disk: to just before the first
	// unwritten event (also right on a new store, where there is no
	// segment to take it from)
	if len(a.pendEv) > 0 {
		a.seq, a.last = a.pendEv[0].ev.Seq-1, a.pendEv[0].prev
	}
	a.pending.Reset()
	a.pendEv = a.pendEv[:0]
	a.h.SetUnhealthy(err)
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
// the active segment is retired too (Shutdown).
func (a *Appender) syncWork(final bool) *syncJob {
	if final && a.seg != nil {
		a.retired = append(a.retired, a.seg)
		a.seg = nil
	}
	due := a.dirty && (a.needSync || a.h.Now().Sub(a.lastSync) >= a.opts.SyncInterval)
	if len(a.retired) == 0 && !due && !final {
		return nil
	}
	j := &syncJob{files: a.retired, closes: len(a.retired)}
	a.retired = nil
	if a.seg != nil && due {
		j.files = append(j.files, a.seg)
	}
	j.seq, j.hash = a.writtenHead()
	a.dirty, a.needSync, a.lastSync = false, false, a.h.Now()
	return j
}

// writtenHead is the seq and hash of the last event written to a segment.
func (a *Appender) writtenHead() (int64, string) {
	n := len(a.segs)
	if n == 0 {
		return a.seq, a.last.String()
	}
	if a.segs[n-1].lastSeq == 0 && n > 1 {
		return a.segs[n-2].lastSeq, a.segs[n-2].lastHash.String()
	}
	if a.segs[n-1].lastSeq == 0 {
		return a.seq, a.last.String()
	}
	return a.segs[n-1].lastSeq, a.segs[n-1].lastHash.String()
}

// doSync fsyncs j's files (without the store lock: sessions go on
// writing), closes the retired ones, then records the head. Only the
// maintainer (or Start, before it starts the maintainer) calls it, so no
// file is closed under another fsync.
func (a *Appender) doSync(j *syncJob) error {
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
		err = WriteFileAtomic(filepath.Join(a.dir, HeadFile), b)
	}
	if err != nil {
		a.h.WriteError()
		a.h.SetUnhealthy(err)
		a.lock(0)
		if a.shut { // Shutdown: no next chance
			for _, f := range again {
				_ = f.Close()
			}
		} else {
			a.retired = append(again, a.retired...)
		}
		a.dirty = true           // fsync again at the next chance,
		a.lastSync = time.Time{} // and at once after the next good write
		a.unlock()
	}
	return err
}

// syncNow fsyncs the active segment and records the head, inline (Start,
// before the maintainer starts).
func (a *Appender) syncNow() error {
	a.needSync = true
	a.dirty = a.dirty || a.seg != nil
	return a.doSync(a.syncWork(false))
}

// sealActive retires the active segment (the maintainer fsyncs and closes
// it); the next event opens a new one whose first event chains to this
// one's last.
func (a *Appender) sealActive() {
	if a.seg == nil {
		return
	}
	a.retired = append(a.retired, a.seg)
	a.seg = nil
	a.needSync = true
	a.h.Rotated()
	a.wake()
}

// probe checks whether the store can be written again. Like every fsync
// of the maintainer, its fsyncs run without the store lock (a hung fsync
// must not stall the sessions, whose writes may work); it takes the lock
// only to swap the active segment's descriptor. It reports the store
// healthy only if the failure it probed for is still the one reported
// (Host.SetHealthyIf): one that happened meanwhile stands.
func (a *Appender) probe() {
	was := a.h.Health()
	p := filepath.Join(a.dir, ".probe")
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
	a.lock(0)
	if a.seg != nil {
		// Reopen the active segment: the old descriptor may be broken
		// (EIO). It is closed first: a mapped segment's Close cuts the
		// file to its data, which must not happen under the new one.
		_ = a.seg.Close()
		a.seg = nil
		nf, err = openSegFile(filepath.Join(a.dir, a.segs[len(a.segs)-1].name))
		if err == nil {
			// drop any partial write; a segment shorter than what was
			// written to it (changed behind our back) is not resumed
			if err = nf.Truncate(a.segs[len(a.segs)-1].size); err == nil {
				a.seg = nf
			} else {
				_ = nf.Close()
				nf = nil
			}
		}
		// a.seg nil (not reopened): the next event starts a new segment,
		// chained to this one's last event like after a rotation
		// (and a segment that failed to resume stays as it is, for verify)
	}
	a.unlock()
	if err == nil && nf != nil {
		err = nf.Sync() // only the maintainer closes it, so it stays open
	}
	// healthy again, unless something failed meanwhile (a new error)
	if err == nil {
		a.h.SetHealthyIf(was)
	}
}

// retention deletes the oldest sealed segments whose last event is older
// than Options.Retention (and, with sinks that read the store, already
// delivered: Host.Delivered), then writes a retention marker into the
// chain.
func (a *Appender) retention() {
	a.lastRet = a.h.Now()
	if a.opts.Retention <= 0 || len(a.segs) < 2 {
		return
	}
	cutoff := a.h.Now().Add(-a.opts.Retention)
	minDelivered := a.h.Delivered()
	var purged *segMeta
	n := 0
	for i := 0; i < len(a.segs)-1; i++ { // never the active (last) segment
		s := &a.segs[i]
		if !s.last.Before(cutoff) || (minDelivered >= 0 && s.lastSeq > minDelivered) {
			break
		}
		if err := os.Remove(filepath.Join(a.dir, s.name)); err != nil && !os.IsNotExist(err) {
			a.log.Error().Err(err).Str("segment", s.name).Msg("retention: cannot delete segment")
			break
		}
		purged = s
		n++
	}
	if purged == nil {
		return
	}
	ev := record.Event{Type: record.TypeRetention, Reason: "retention",
		PurgedThroughSeq: purged.lastSeq, PurgedThroughHash: purged.lastHash.String()}
	a.segs = append(a.segs[:0], a.segs[n:]...)
	a.add(&ev, a.h.Now())
	_ = a.flush()
	a.log.Info().Int("segments", n).Int64("through_seq", ev.PurgedThroughSeq).Msg("retention deleted old segments")
}

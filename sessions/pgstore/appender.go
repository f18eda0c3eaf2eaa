package pgstore

// The session record's write side in the shared store: each gateway
// appends to its own hash chain (seq and prev_hash per gateway, `gateway`
// on every event) in table pgwarden.events. An event is committed before
// the call that records it returns — so before the client's
// ReadyForQuery, as with the file store a gateway killed with kill -9
// loses nothing it acknowledged. Concurrent sessions share commits: one
// goroutine writes whatever was chained while the previous batch was in
// flight (group commit), so the cost is one round trip per batch, not per
// event.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions/record"
)

var _ record.Appender = (*Appender)(nil)

// NewAppender returns the appender of gateway's chain in db, reporting to
// h. Recover continues the chain; Start starts the committer.
func NewAppender(h record.Host, db *sharedstore.Store, gateway string) *Appender {
	return &Appender{h: h, db: db, gateway: gateway, enc: record.NewEncoder(), cur: newBatch(), open: map[string]record.OpenSession{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// commitTimeout bounds one batch's commit; a caller waits at most
// this long for its event, then fails closed.
const commitTimeout = sharedstore.OpTimeout

type batch struct {
	rows    [][]any
	lines   []byte // for the sinks, in chain order
	lastSeq int64
	last    record.ChainHash
	done    chan struct{}
	err     error // set before done is closed
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Appender writes one gateway's chain in the shared store: the shared
// store's record.Appender.
type Appender struct {
	h       record.Host
	db      *sharedstore.Store
	gateway string
	enc     *record.Encoder

	mu    sync.Mutex
	shut  bool
	seq   int64            // chained (maybe not committed)
	last  record.ChainHash // hash of seq
	cseq  int64            // committed
	clast record.ChainHash
	cur   *batch
	open  map[string]record.OpenSession

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Recover continues the gateway's chain after its last committed event.
func (p *Appender) Recover(ctx context.Context) error {
	var seq int64
	var line string
	err := p.db.Pool.QueryRow(ctx, `SELECT seq, line FROM pgwarden.events WHERE gateway = $1 ORDER BY seq DESC LIMIT 1`, p.gateway).Scan(&seq, &line)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sessions: %w", p.db.Unreachable(err))
	}
	var ev record.Event
	if err := record.DecodeLoose([]byte(line), &ev); err != nil || ev.Seq != seq || len(ev.Hash) != 64 {
		return fmt.Errorf("sessions: the last event of gateway %s (seq %d) in the shared store is damaged; `pgwarden sessions verify` shows it", p.gateway, seq)
	}
	p.seq, p.last = seq, record.ChainHashOf(ev.Hash)
	p.cseq, p.clast = p.seq, p.last
	return nil
}

// openSessionsOf lists the sessions gateway started that no event ended.
func (p *Appender) openSessionsOf(ctx context.Context, gateway string) ([]record.Event, error) {
	rows, err := p.db.Pool.Query(ctx, `SELECT line FROM pgwarden.events s
		WHERE s.gateway = $1 AND s.type = 'session_start'
		  AND NOT EXISTS (SELECT 1 FROM pgwarden.events e WHERE e.session = s.session AND e.type = 'session_end')
		ORDER BY s.time, s.seq`, gateway)
	if err != nil {
		return nil, p.db.Unreachable(err)
	}
	defer rows.Close()
	var out []record.Event
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, p.db.Unreachable(err)
		}
		var ev record.Event
		if record.DecodeLoose([]byte(line), &ev) != nil {
			continue // verify reports it
		}
		out = append(out, record.Event{Session: ev.Session, User: ev.User, Actor: ev.Actor, Groups: ev.Groups, ClientAddr: ev.ClientAddr,
			ApplicationName: ev.ApplicationName, Database: ev.Database, Profile: ev.Profile, BackendUser: ev.BackendUser})
	}
	return out, p.db.Unreachable(rows.Err())
}

// EndSessions writes session_end (reason) into this gateway's chain for
// every session gateway left open (through the host's write path), and
// returns them (identity fields).
func (p *Appender) EndSessions(ctx context.Context, gateway, reason string) ([]record.Event, error) {
	open, err := p.openSessionsOf(ctx, gateway)
	if err != nil {
		return nil, err
	}
	for i, ev := range open {
		ev.Type, ev.Reason, ev.Gateway = record.TypeSessionEnd, reason, p.gateway
		if err := p.h.Record(ev); err != nil {
			return open[:i], err
		}
	}
	return open, nil
}

// Write chains ev (body encoded by the caller) and waits for its commit.
func (p *Appender) Write(ev record.Event, body []byte) error { return p.record(&ev, body) }

// record chains ev (body encoded by the caller) and waits for its commit.
func (p *Appender) record(ev *record.Event, body []byte) error {
	p.mu.Lock()
	if p.shut {
		p.mu.Unlock()
		p.h.Dropped(1)
		return record.ErrClosed
	}
	t := p.h.Now()
	ev.Seq = p.seq + 1
	var h record.ChainHash
	line := p.enc.ChainLine(ev.Seq, t, body, &p.last, &h)
	b := p.cur
	stored := string(line[:len(line)-1])
	b.rows = append(b.rows, []any{p.gateway, ev.Seq, ev.Session, ev.Type, t, stored})
	if p.h.WantLines() {
		b.lines = append(b.lines, line...)
	}
	b.lastSeq, b.last = ev.Seq, h
	p.seq, p.last = ev.Seq, h
	record.TrackOpen(p.open, ev)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	timer := time.NewTimer(commitTimeout + time.Second)
	defer timer.Stop()
	select {
	case <-b.done:
		return b.err
	case <-timer.C:
		p.h.Dropped(1)
		p.h.SetUnhealthy(record.ErrStalled)
		return record.ErrStalled
	}
}

// Start starts the committer (after Recover).
func (p *Appender) Start() { go p.run() }

// run is the committer: it writes each batch in one COPY (atomic) and
// wakes its callers; while the store is unhealthy it probes it every
// second so recording resumes by itself.
func (p *Appender) run() {
	defer close(p.done)
	probe := time.NewTicker(time.Second)
	defer probe.Stop()
	for {
		select {
		case <-p.kick:
			p.commit()
		case <-probe.C:
			if was := p.h.Health(); was != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if p.db.Pool.Ping(ctx) == nil {
					// Only the failure the ping answered: a commit that
					// failed while it ran stays reported (as the file
					// store's probe does).
					p.h.SetHealthyIf(was)
				}
				cancel()
			}
		case <-p.stop:
			p.commit()
			return
		}
	}
}

var eventColumns = []string{"gateway", "seq", "session", "type", "time", "line"}

func (p *Appender) commit() {
	p.mu.Lock()
	b := p.cur
	if len(b.rows) == 0 {
		p.mu.Unlock()
		return
	}
	p.cur = newBatch()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	_, err := p.db.Pool.CopyFrom(ctx, pgx.Identifier{"pgwarden", "events"}, eventColumns, pgx.CopyFromRows(b.rows))
	cancel()
	if err != nil {
		err = p.db.Unreachable(err)
		p.h.WriteError()
		p.h.Dropped(len(b.rows))
		// The events chained on this batch's are lost with it: roll the
		// chain back to what is committed and fail them too.
		p.mu.Lock()
		p.seq, p.last = p.cseq, p.clast
		next := p.cur
		p.cur = newBatch()
		p.mu.Unlock()
		p.h.Dropped(len(next.rows))
		next.err = err
		close(next.done)
		p.h.SetUnhealthy(err)
	} else {
		p.mu.Lock()
		p.cseq, p.clast = b.lastSeq, b.last
		p.mu.Unlock()
		p.h.Stored(len(b.rows), b.lines)
	}
	b.err = err
	close(b.done)
}

// Shutdown ends the sessions still open (gateway_shutdown), commits and stops.
func (p *Appender) Shutdown() {
	p.mu.Lock()
	open := record.OpenInOrder(p.open)
	p.mu.Unlock()
	for _, ev := range open {
		ev.Type, ev.Reason = record.TypeSessionEnd, record.ReasonGatewayShutdown
		_ = p.record(&ev, record.AppendBody(nil, &ev))
	}
	p.mu.Lock()
	p.shut = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done
}

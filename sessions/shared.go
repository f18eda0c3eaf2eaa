package sessions

// The session record in the shared PostgreSQL store (store.dsn): each
// gateway appends to its own hash chain (seq and prev_hash per gateway,
// `gateway` on every event) in table pgwarden.events. An event is
// committed before the call that records it returns — so before the
// client's ReadyForQuery, as with the file store a gateway killed with
// kill -9 loses nothing it acknowledged. Concurrent sessions share
// commits: one goroutine writes whatever was chained while the previous
// batch was in flight (group commit), so the cost is one round trip per
// batch, not per event.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions/pgstore"
)

// ReasonGatewayLost ends the sessions of a gateway another one found dead.
const ReasonGatewayLost = "gateway_lost"

// sharedCommitTimeout bounds one batch's commit; a caller waits at most
// this long for its event, then fails closed.
const sharedCommitTimeout = sharedstore.OpTimeout

type sharedBatch struct {
	rows    [][]any
	lines   []byte // for the sinks, in chain order
	lastSeq int64
	last    chainHash
	done    chan struct{}
	err     error // set before done is closed
}

func newSharedBatch() *sharedBatch { return &sharedBatch{done: make(chan struct{})} }

type sharedLog struct {
	r       *Recorder
	db      *sharedstore.Store
	gateway string
	enc     *encoder

	mu    sync.Mutex
	shut  bool
	seq   int64     // chained (maybe not committed)
	last  chainHash // hash of seq
	cseq  int64     // committed
	clast chainHash
	cur   *sharedBatch
	open  map[string]openSess

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// OpenShared opens the session record of gateway in the shared store db:
// it continues the gateway's chain, ends with gateway_restart the
// sessions its previous process left open, and starts the committer.
// Webhook sinks need the file store's outbox (not yet in the shared store).
func OpenShared(cfg config.Recording, db *sharedstore.Store, gateway string, log zerolog.Logger, reg prometheus.Registerer) (*Recorder, error) {
	for _, s := range cfg.Sinks {
		if s.Type == "webhook" {
			return nil, errors.New("sessions: a webhook sink is not supported with store.dsn yet (its delivery cursor lives in store.dir); use the stdout sink and ship container logs")
		}
	}
	r := newRecorder(cfg, log, reg)
	r.gateway = gateway
	p := &sharedLog{r: r, db: db, gateway: gateway, enc: newEncoder(), cur: newSharedBatch(), open: map[string]openSess{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	r.w = p
	for _, s := range cfg.Sinks {
		if s.Type == "stdout" {
			r.addSink(newStdoutSink(r.m.sinkErrors))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedstore.OpTimeout)
	defer cancel()
	if err := p.recover(ctx); err != nil {
		r.closeSinks()
		r.m.unregister()
		return nil, err
	}
	go p.run(r)
	close(r.done) // no file maintainer in this mode
	// Close the sessions the previous process left open, chained like any event.
	ended, err := p.endSessions(r, ctx, gateway, ReasonGatewayRestart)
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("sessions: writing recovery events: %w", err)
	}
	if len(ended) > 0 {
		r.log.Warn().Int("sessions", len(ended)).Msg("recovered sessions left open by a crash (session_end gateway_restart)")
	}
	return r, nil
}

// recover continues the gateway's chain after its last committed event.
func (p *sharedLog) recover(ctx context.Context) error {
	var seq int64
	var line string
	err := p.db.Pool.QueryRow(ctx, `SELECT seq, line FROM pgwarden.events WHERE gateway = $1 ORDER BY seq DESC LIMIT 1`, p.gateway).Scan(&seq, &line)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sessions: %w", p.db.Unreachable(err))
	}
	var ev Event
	if err := decodeLoose([]byte(line), &ev); err != nil || ev.Seq != seq || len(ev.Hash) != 64 {
		return fmt.Errorf("sessions: the last event of gateway %s (seq %d) in the shared store is damaged; `pgwarden sessions verify` shows it", p.gateway, seq)
	}
	p.seq, p.last = seq, chainHashOf(ev.Hash)
	p.cseq, p.clast = p.seq, p.last
	return nil
}

// openSessionsOf lists the sessions gateway started that no event ended.
func (p *sharedLog) openSessionsOf(ctx context.Context, gateway string) ([]Event, error) {
	rows, err := p.db.Pool.Query(ctx, `SELECT line FROM pgwarden.events s
		WHERE s.gateway = $1 AND s.type = 'session_start'
		  AND NOT EXISTS (SELECT 1 FROM pgwarden.events e WHERE e.session = s.session AND e.type = 'session_end')
		ORDER BY s.time, s.seq`, gateway)
	if err != nil {
		return nil, p.db.Unreachable(err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, p.db.Unreachable(err)
		}
		var ev Event
		if decodeLoose([]byte(line), &ev) != nil {
			continue // verify reports it
		}
		out = append(out, Event{Session: ev.Session, User: ev.User, Groups: ev.Groups, ClientAddr: ev.ClientAddr,
			ApplicationName: ev.ApplicationName, Database: ev.Database, Profile: ev.Profile, BackendUser: ev.BackendUser})
	}
	return out, p.db.Unreachable(rows.Err())
}

// endSessions writes session_end (reason) into this gateway's chain for
// every session gateway left open, and returns how many.
func (p *sharedLog) endSessions(r *Recorder, ctx context.Context, gateway, reason string) ([]Event, error) {
	open, err := p.openSessionsOf(ctx, gateway)
	if err != nil {
		return nil, err
	}
	for i, ev := range open {
		ev.Type, ev.Reason, ev.Gateway = TypeSessionEnd, reason, p.gateway
		if err := r.record(ev); err != nil {
			return open[:i], err
		}
	}
	return open, nil
}

// EndSessionsOf writes session_end with reason gateway_lost for every
// session the dead gateway left open (into this gateway's chain) and
// returns them (identity fields: BackendUser names each one's credential).
func (r *Recorder) EndSessionsOf(ctx context.Context, gateway string) ([]Event, error) {
	p, ok := r.w.(*sharedLog)
	if !ok {
		return nil, errors.New("sessions: EndSessionsOf needs the shared store")
	}
	return p.endSessions(r, ctx, gateway, ReasonGatewayLost)
}

// write chains ev (body encoded by the caller) and waits for its commit.
func (p *sharedLog) write(ev Event, body []byte) error { return p.record(p.r, &ev, body) }

// record chains ev (body encoded by the caller) and waits for its commit.
func (p *sharedLog) record(r *Recorder, ev *Event, body []byte) error {
	p.mu.Lock()
	if p.shut {
		p.mu.Unlock()
		r.m.dropped.Inc()
		return ErrClosed
	}
	t := r.now()
	ev.Seq = p.seq + 1
	var h chainHash
	line := p.enc.ChainLine(ev.Seq, t, body, &p.last, &h)
	b := p.cur
	stored := string(line[:len(line)-1])
	b.rows = append(b.rows, []any{p.gateway, ev.Seq, ev.Session, ev.Type, t, stored})
	if len(r.sinks) > 0 {
		b.lines = append(b.lines, line...)
	}
	b.lastSeq, b.last = ev.Seq, h
	p.seq, p.last = ev.Seq, h
	trackOpen(p.open, ev)
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
	timer := time.NewTimer(sharedCommitTimeout + time.Second)
	defer timer.Stop()
	select {
	case <-b.done:
		return b.err
	case <-timer.C:
		r.m.dropped.Inc()
		r.setUnhealthy(ErrStalled)
		return ErrStalled
	}
}

// run is the committer: it writes each batch in one COPY (atomic) and
// wakes its callers; while the store is unhealthy it probes it every
// second so recording resumes by itself.
func (p *sharedLog) run(r *Recorder) {
	defer close(p.done)
	probe := time.NewTicker(time.Second)
	defer probe.Stop()
	for {
		select {
		case <-p.kick:
			p.commit(r)
		case <-probe.C:
			if r.health.Load() != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if p.db.Pool.Ping(ctx) == nil {
					r.setHealthy()
				}
				cancel()
			}
		case <-p.stop:
			p.commit(r)
			return
		}
	}
}

var eventColumns = []string{"gateway", "seq", "session", "type", "time", "line"}

func (p *sharedLog) commit(r *Recorder) {
	p.mu.Lock()
	b := p.cur
	if len(b.rows) == 0 {
		p.mu.Unlock()
		return
	}
	p.cur = newSharedBatch()
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), sharedCommitTimeout)
	_, err := p.db.Pool.CopyFrom(ctx, pgx.Identifier{"pgwarden", "events"}, eventColumns, pgx.CopyFromRows(b.rows))
	cancel()
	if err != nil {
		err = p.db.Unreachable(err)
		r.m.writeErrors.Inc()
		r.m.dropped.Add(float64(len(b.rows)))
		// The events chained on this batch's are lost with it: roll the
		// chain back to what is committed and fail them too.
		p.mu.Lock()
		p.seq, p.last = p.cseq, p.clast
		next := p.cur
		p.cur = newSharedBatch()
		p.mu.Unlock()
		r.m.dropped.Add(float64(len(next.rows)))
		next.err = err
		close(next.done)
		r.setUnhealthy(err)
	} else {
		p.mu.Lock()
		p.cseq, p.clast = b.lastSeq, b.last
		p.mu.Unlock()
		r.m.events.Add(float64(len(b.rows)))
		r.setHealthy()
		if len(b.lines) > 0 {
			for _, k := range r.sinks {
				k.Written(b.lines)
			}
		}
	}
	b.err = err
	close(b.done)
}

// shutdown ends the sessions still open (gateway_shutdown), commits and stops.
func (p *sharedLog) shutdown() {
	r := p.r
	p.mu.Lock()
	open := openInOrder(p.open)
	p.mu.Unlock()
	for _, ev := range open {
		ev.Type, ev.Reason = TypeSessionEnd, ReasonGatewayShutdown
		_ = p.record(r, &ev, appendBody(nil, &ev))
	}
	p.mu.Lock()
	p.shut = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done
}

// OpenSharedStore reads the session record in the shared store: every
// gateway's events.
func OpenSharedStore(db *sharedstore.Store) *Store { return NewStore(pgstore.NewReader(db)) }

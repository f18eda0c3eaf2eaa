package sessions

// appender is where the recorder's events go once their fields are
// encoded (appendBody, before any lock): the file store's segments
// (fileAppender, Open) or this gateway's chain in the shared store
// (sharedLog, OpenShared). An appender chains each event (seq, time,
// prev_hash, hash) and stores it before write returns, so an event
// recorded before the client's ReadyForQuery survives a kill -9. Opening
// one recovers (continues the chain, ends the sessions the previous
// process left open); fsync, health probes (Recorder.setHealthy when the
// store works again) and, for the file store, rotation and retention are
// its own background work.
type appender interface {
	// write chains ev, whose fields body encodes, and stores it before
	// it returns. It fails closed: ErrStalled when the store does not
	// answer in time, ErrClosed after shutdown, or the store's error (the
	// event is counted as dropped and the recorder reports unhealthy).
	// ev is passed by value so that it stays on the caller's stack.
	write(ev Event, body []byte) error
	// shutdown writes session_end (gateway_shutdown) for the sessions
	// still open, stores and syncs them and stops the background work.
	shutdown()
}

var (
	_ appender = (*fileAppender)(nil)
	_ appender = (*sharedLog)(nil)
)

// write takes the store lock (at most lockTimeout), chains and writes
// (write(2)) the event.
func (r *fileAppender) write(ev Event, body []byte) error {
	if !r.lock(lockTimeout) {
		r.m.dropped.Inc()
		r.setUnhealthy(ErrStalled)
		return ErrStalled
	}
	if r.shut {
		r.unlock()
		r.m.dropped.Inc()
		return ErrClosed
	}
	r.addBody(&ev, body, r.now()) // stamped under the lock: times never run backwards against seq
	err := r.flush()
	r.unlock()
	return err
}

// shutdown stops the maintainer, which writes the final events and fsyncs.
func (r *fileAppender) shutdown() { close(r.stop) }

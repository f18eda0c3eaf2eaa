package sessions

import (
	"github.com/pgwarden/pgwarden/sessions/pgstore"
	"github.com/pgwarden/pgwarden/sessions/record"
)

// appender is where the recorder's encoded events go (record.Appender):
// fileAppender (Open: the segment files) or pgstore.Appender (OpenShared:
// this gateway's chain in the shared store).
type appender = record.Appender

var (
	_ appender = (*fileAppender)(nil)
	_ appender = (*pgstore.Appender)(nil)
)

// Write takes the store lock (at most lockTimeout), chains and writes
// (write(2)) the event.
func (r *fileAppender) Write(ev Event, body []byte) error {
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

// Shutdown stops the maintainer, which writes the final events and fsyncs.
func (r *fileAppender) Shutdown() { close(r.stop) }

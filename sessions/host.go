package sessions

import (
	"time"

	"github.com/pgwarden/pgwarden/sessions/record"
)

// host is the Recorder as its appender's record.Host.
type host struct{ r *Recorder }

var _ record.Host = host{}

func (h host) Now() time.Time         { return h.r.now() }
func (h host) Record(ev Event) error  { return h.r.record(ev) }
func (h host) WantLines() bool        { return len(h.r.sinks) > 0 }
func (h host) Dropped(n int)          { h.r.m.dropped.Add(float64(n)) }
func (h host) WriteError()            { h.r.m.writeErrors.Inc() }
func (h host) Rotated()               { h.r.m.rotations.Inc() }
func (h host) TornLine()              { h.r.m.torn.Inc() }
func (h host) SetUnhealthy(err error) { h.r.setUnhealthy(err) }
func (h host) SetHealthy()            { h.r.setHealthy() }

// Stored counts n stored events, hands the lines to the sinks and
// reports the store healthy.
func (h host) Stored(n int, lines []byte) {
	h.r.m.events.Add(float64(n))
	if len(lines) > 0 {
		for _, k := range h.r.sinks {
			k.Written(lines)
		}
	}
	h.r.setHealthy()
}

// Delivered is the lowest DeliveredSeq of the sinks that read the store
// (webhooks), -1 without any.
func (h host) Delivered() int64 {
	lo := int64(-1)
	for _, w := range h.r.delivery {
		if d := w.DeliveredSeq(); lo < 0 || d < lo {
			lo = d
		}
	}
	return lo
}

// Health is the error of the SetUnhealthy in force (its own value per
// report), nil while healthy.
func (h host) Health() error {
	if p := h.r.health.Load(); p != nil {
		return *p
	}
	return nil
}

// SetHealthyIf clears the health only if it is still was: the pointer the
// recorder holds is swapped out only while it holds that very report (or
// nothing, when was is nil), so a failure reported after the caller read
// Health stands.
func (h host) SetHealthyIf(was error) bool {
	p := h.r.health.Load()
	if (p == nil) != (was == nil) || (p != nil && *p != was) {
		return false
	}
	if !h.r.health.CompareAndSwap(p, nil) {
		return false
	}
	if was != nil {
		h.r.log.Info().Msg("session recording available again")
	}
	h.r.m.healthy.Set(1)
	return true
}

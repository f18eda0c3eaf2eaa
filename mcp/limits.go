package mcp

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// Limits are per identity (Caller.key: the user, or user and actor); 0 is
// unlimited.
type Limits struct {
	CallsPerMinute int
	RowsPerHour    int // rows returned in any rolling hour
}

// limiter enforces Limits for every identity of one Server. Identities idle
// for an hour are forgotten (their limits would be back at full anyway), so
// memory follows the identities active in the last hour.
type limiter struct {
	lim Limits
	now func() time.Time

	mu        sync.Mutex
	ids       map[string]*usage
	lastSweep time.Time
}

// usage is one identity's: a token bucket of calls (refilled at
// CallsPerMinute per minute, holding at most a minute's worth) and the rows
// returned per minute of the last hour.
type usage struct {
	calls    *rate.Limiter
	rows     [60]int   // rows returned in minute m (index m % 60)
	minute   [60]int64 // the unix minute each slot counts
	lastSeen time.Time
}

func newLimiter(l Limits, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{lim: l, now: now, ids: map[string]*usage{}}
}

func (l *limiter) get(id string, t time.Time) *usage {
	if t.Sub(l.lastSweep) > time.Minute {
		for k, u := range l.ids {
			if t.Sub(u.lastSeen) > time.Hour {
				delete(l.ids, k)
			}
		}
		l.lastSweep = t
	}
	u := l.ids[id]
	if u == nil {
		u = &usage{}
		if n := l.lim.CallsPerMinute; n > 0 {
			u.calls = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		}
		l.ids[id] = u
	}
	u.lastSeen = t
	return u
}

// rowsUsed is the rows returned in the hour before t.
func (u *usage) rowsUsed(t time.Time) int {
	now := t.Unix() / 60
	n := 0
	for i, m := range u.minute {
		if now-m < 60 {
			n += u.rows[i]
		}
	}
	return n
}

// admit counts one call of identity id (user is what the refusal names)
// and returns how many rows it may still return (-1: no row limit), or a
// 53400 refusal when a limit is reached.
func (l *limiter) admit(id, user string) (int, *pgerr.Error) {
	if l.lim.CallsPerMinute == 0 && l.lim.RowsPerHour == 0 {
		return -1, nil
	}
	t := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.get(id, t)
	remaining := -1
	if l.lim.RowsPerHour > 0 {
		remaining = l.lim.RowsPerHour - u.rowsUsed(t)
		if remaining <= 0 {
			return 0, pgerr.New(pgerr.ConfigurationLimitExceeded,
				"pgwarden: MCP limit: %d rows per hour returned to %s; try again later (mcp.limits.rows_per_hour)", l.lim.RowsPerHour, user)
		}
	}
	if u.calls != nil {
		if r := u.calls.ReserveN(t, 1); r.DelayFrom(t) > 0 {
			wait := r.DelayFrom(t)
			r.CancelAt(t)
			return 0, pgerr.New(pgerr.ConfigurationLimitExceeded,
				"pgwarden: MCP limit: %d calls per minute for %s; retry in %s (mcp.limits.calls_per_minute)", l.lim.CallsPerMinute, user, roundUp(wait))
		}
	}
	return remaining, nil
}

// returned adds n rows returned to identity id.
func (l *limiter) returned(id string, n int) {
	if l.lim.RowsPerHour == 0 || n <= 0 {
		return
	}
	t := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.get(id, t)
	m := t.Unix() / 60
	i := m % 60
	if u.minute[i] != m {
		u.minute[i], u.rows[i] = m, 0
	}
	u.rows[i] += n
}

func roundUp(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	return fmt.Sprintf("%ds", s)
}

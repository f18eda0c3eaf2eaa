package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelRegistry maps the BackendKeyData pgwarden hands to clients (its own
// random process id and secret, never the upstream's) to sessions.
type cancelRegistry struct {
	mu sync.Mutex
	m  map[uint32]*session
}

// register assigns ss a fresh, unique key.
func (r *cancelRegistry) register(ss *session) error {
	var b [8]byte
	r.mu.Lock()
	defer r.mu.Unlock()
	for range 64 { // collisions are astronomically rare; bounded anyway
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		pid := binary.BigEndian.Uint32(b[:4]) &^ (1 << 31) // positive as an int32, like a real PID
		if pid == 0 || r.m[pid] != nil {
			continue
		}
		ss.keyPID = pid
		copy(ss.keySecret[:], b[4:])
		r.m[pid] = ss
		return nil
	}
	return io.ErrShortBuffer
}

func (r *cancelRegistry) unregister(ss *session) {
	r.mu.Lock()
	if r.m[ss.keyPID] == ss {
		delete(r.m, ss.keyPID)
	}
	r.mu.Unlock()
}

// lookup returns the session whose key matches (constant-time secret compare).
func (r *cancelRegistry) lookup(pid uint32, secret []byte) *session {
	r.mu.Lock()
	ss := r.m[pid]
	r.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.keySecret[:], secret) != 1 {
		return nil
	}
	return ss
}

// handleCancel serves a CancelRequest connection. Unknown keys are ignored
// silently, as PostgreSQL does; keys are never logged.
func (s *Server) handleCancel(req *pgproto3.CancelRequest) {
	ss := s.cancels.lookup(req.ProcessID, req.SecretKey)
	if ss == nil {
		s.log.Debug().Msg("cancel request for an unknown session ignored")
		return
	}
	ss.cancelRequest()
}

// cancelRequest cancels a blocking hook's context if one is running, else
// forwards a cancel to the upstream backend.
func (ss *session) cancelRequest() {
	ss.hookMu.Lock()
	if ss.inHook && ss.hookCancel != nil {
		ss.hookCancel(ErrCancelRequest)
		ss.hookMu.Unlock()
		ss.log.Info().Msg("cancel request delivered to the blocking hook")
		return
	}
	ss.hookMu.Unlock()
	ss.cancelUpstream()
}

// cancelUpstream sends PostgreSQL a CancelRequest for the session's backend.
func (ss *session) cancelUpstream() {
	cfg := ss.srv.cfg.Upstream
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		ss.log.Warn().Err(err).Msg("cancel: upstream unreachable")
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(cfg.ConnectTimeout))
	req := pgproto3.CancelRequest{ProcessID: ss.upPID, SecretKey: ss.upSecret}
	buf, err := req.Encode(nil)
	if err != nil {
		return
	}
	if _, err := c.Write(buf); err != nil {
		ss.log.Warn().Err(err).Msg("cancel: write to upstream failed")
		return
	}
	// PostgreSQL closes the connection once it has handled the request.
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1024))
	ss.log.Info().Msg("cancel request forwarded upstream")
}

package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// CancelRoutes lets several gateways act as one for CancelRequest: the
// keys a gateway issues are recorded, and a request carrying a key another
// gateway issued is handed over to it. Implemented by the shared store.
type CancelRoutes interface {
	// Add records a key issued here. An error wrapping ErrKeyTaken means
	// another gateway issued this process id: pick another.
	Add(pid uint32, secret []byte) error
	// Remove forgets a key issued here.
	Remove(pid uint32)
	// Forward delivers a request for a key this gateway did not issue to
	// the gateway that did (sent: whether one was sent).
	Forward(pid uint32, secret []byte) (sent bool, err error)
}

// ErrKeyTaken is what CancelRoutes.Add wraps for a process id in use elsewhere.
var ErrKeyTaken = errors.New("cancel key taken by another gateway")

// cancelRegistry maps the BackendKeyData pgwarden hands to clients (its own
// random process id and secret, never the upstream's) to sessions.
type cancelRegistry struct {
	mu     sync.Mutex
	m      map[uint32]*session
	routes CancelRoutes // nil without a shared store
	log    zerolog.Logger
}

// register assigns ss a fresh key, unique here and (with routes) among
// the gateways sharing the store. A store that cannot record the key does
// not fail the session: only a cancel sent to another gateway misses it.
func (r *cancelRegistry) register(ss *session) error {
	for range 8 {
		if err := r.pick(ss); err != nil {
			return err
		}
		if r.routes == nil {
			return nil
		}
		err := r.routes.Add(ss.keyPID, ss.keySecret[:])
		if !errors.Is(err, ErrKeyTaken) {
			if err != nil {
				r.log.Warn().Err(err).Msg("cancel key not shared with the other gateways; a CancelRequest for this session must reach this gateway")
			}
			return nil
		}
		r.drop(ss) // another gateway issued this process id: pick another
	}
	return io.ErrShortBuffer
}

// pick assigns ss a key unique in this process.
func (r *cancelRegistry) pick(ss *session) error {
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

func (r *cancelRegistry) drop(ss *session) {
	r.mu.Lock()
	if r.m[ss.keyPID] == ss {
		delete(r.m, ss.keyPID)
	}
	r.mu.Unlock()
}

func (r *cancelRegistry) unregister(ss *session) {
	r.drop(ss)
	if r.routes != nil {
		r.routes.Remove(ss.keyPID)
	}
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
	if ss == nil && s.cancels.routes != nil {
		sent, err := s.cancels.routes.Forward(req.ProcessID, req.SecretKey)
		switch {
		case err != nil:
			s.log.Warn().Err(err).Msg("cancel request for another gateway's session not delivered")
		case sent:
			s.log.Info().Msg("cancel request forwarded to the gateway holding the session")
		default:
			s.log.Debug().Msg("cancel request for an unknown session ignored")
		}
		return
	}
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
	cfg := ss.target.Upstream
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

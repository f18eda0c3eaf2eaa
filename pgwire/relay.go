package pgwire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// maxPendingBatch bounds the client messages held back until their batch
// boundary; a larger batch is flushed early (side queries then get ErrBusy
// until the batch's Sync).
const maxPendingBatch = 1 << 20

var (
	errUpstreamLost = pgerr.Fatal(pgerr.ConnectionFailure, "upstream connection lost")
	errExpired      = pgerr.Fatal(pgerr.AdminShutdown, "session credential expired; reconnect for a new one")
)

// asFatal returns e with FATAL severity (a copy when it had another one):
// whatever ends a session reaches the client as FATAL.
func asFatal(e *pgerr.Error) *pgerr.Error {
	if e.Severity == pgerr.SeverityFatal {
		return e
	}
	c := *e
	c.Severity = pgerr.SeverityFatal
	return &c
}

// internalError is the FATAL XX000 a client sees for a pgwarden fault;
// cause is for the logs only.
func internalError(cause error) *pgerr.Error {
	return pgerr.Fatal(pgerr.InternalError, "internal error").WithCause(cause)
}

// writeErr marks an error writing to the other side (vs reading own side).
type writeErr struct{ error }

func (e writeErr) Unwrap() error { return e.error }

// refusal is a refused client message whose poison is on its way upstream.
type refusal struct {
	seq uint64
	rfq uint64 // number of the ReadyForQuery that closes its response
	err *pgerr.Error
}

// end records the first reason the session ends and unblocks both relay
// goroutines (read deadlines in the past). Later calls are ignored.
func (ss *session) end(why string, perr *pgerr.Error, cause error) {
	ss.endOnce.Do(func() {
		ss.endMu.Lock()
		ss.endWhy, ss.endErr, ss.endCause = why, perr, cause
		ss.endMu.Unlock()
		ss.cancel()
		past := time.Now().Add(-time.Second)
		ss.dlMu.Lock() // after cancel: see WatchClient's stop
		_ = ss.client.SetReadDeadline(past)
		ss.dlMu.Unlock()
		_ = ss.client.SetWriteDeadline(past)
		_ = ss.up.SetDeadline(past)
	})
}

// run relays until one side ends, then tears the session down.
func (ss *session) run() {
	ss.relaying.Store(true)
	ss.wg.Add(1)
	go func() { defer ss.wg.Done(); ss.clientLoop() }()
	if exp := ss.lease.Expiry(); !exp.IsZero() {
		ss.wg.Add(1)
		go func() { defer ss.wg.Done(); ss.keepAlive(exp) }()
	}
	// The server loop runs on this goroutine, which would otherwise only
	// wait: one goroutine stack less per idle session (make bench idle-sessions).
	ss.serverLoop()
	ss.wg.Wait()
	ss.relaying.Store(false)
	ss.flushCounters()

	ss.endMu.Lock()
	why, perr, cause := ss.endWhy, ss.endErr, ss.endCause
	ss.endMu.Unlock()
	if perr != nil && !(why == reasonUpstreamLost && ss.upstreamDead.Load()) {
		_ = ss.client.SetWriteDeadline(time.Now().Add(finalWriteWait))
		ss.cwMu.Lock()
		_, _ = ss.cw.Write(mustEncode(perr.Response()))
		_ = ss.cw.Flush()
		ss.cwMu.Unlock()
	}
	ss.client.Close()
	if why != reasonUpstreamLost && why != reasonClientTerminated {
		ss.closeUpstream()
	} else {
		ss.up.Close()
	}
	var herr error
	if perr != nil {
		herr = perr
	} else if cause != nil {
		herr = cause
	}
	if ss.hooks != nil {
		ss.hooks.Close(why, herr)
	}
	ev := ss.log.Info()
	if why == reasonError || why == reasonUpstreamLost {
		ev = ss.log.Warn()
	}
	if cause != nil {
		ev = ev.AnErr("cause", cause)
	}
	if perr != nil {
		ev = ev.Str("sqlstate", string(perr.Code))
	}
	ev.Str("reason", why).Dur("duration", time.Since(ss.info.StartedAt)).Msg("session ended")
}

// closeUpstream sends Terminate (best effort) and closes the upstream.
func (ss *session) closeUpstream() {
	_ = ss.up.SetWriteDeadline(time.Now().Add(finalWriteWait))
	_, _ = ss.up.Write([]byte{'X', 0, 0, 0, 4})
	ss.up.Close()
}

func (ss *session) flushCounters() {
	m := ss.srv.m
	if ss.c2sMsgs > 0 {
		m.bytesC2S.Add(float64(ss.c2sBytes))
		m.msgsC2S.Add(float64(ss.c2sMsgs))
		ss.c2sBytes, ss.c2sMsgs = 0, 0
	}
	if ss.s2cMsgs > 0 {
		m.bytesS2C.Add(float64(ss.s2cBytes))
		m.msgsS2C.Add(float64(ss.s2cMsgs))
		ss.s2cBytes, ss.s2cMsgs = 0, 0
	}
}

// isTimeout reports deadline errors (how end() unblocks the loops).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// ---------------------------------------------------------------- client -> server

// clientLoop reads client messages, asks the hooks, and forwards them.
func (ss *session) clientLoop() {
	err := ss.clientLoopErr()
	switch {
	case err == nil:
	case errors.Is(err, errClientTerminate):
		ss.end(reasonClientTerminated, nil, nil)
	default:
		if pe, ok := pgerr.As(err); ok {
			ss.end(reasonError, asFatal(pe), err)
			return
		}
		var we writeErr
		if errors.As(err, &we) {
			if isTimeout(err) {
				ss.end(reasonError, nil, err) // end() already ran; ignored
				return
			}
			ss.end(reasonUpstreamLost, errUpstreamLost, err)
			return
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			ss.end(reasonClientClosed, nil, nil)
			return
		}
		ss.end(reasonClientClosed, nil, err)
	}
}

var errClientTerminate = errors.New("client sent Terminate")

// commitPending moves the held batch into the upstream writer (it is
// decided); the socket is flushed by flushUpstream.
func (ss *session) commitPending() error {
	if len(ss.pending) == 0 {
		return nil
	}
	ss.tr.mu.Lock()
	ss.tr.owed += ss.pendingOwed
	ss.tr.unsyncedFlushed = ss.batchOpen
	ss.tr.mu.Unlock()
	ss.pendingOwed = 0
	_, err := ss.uw.Write(ss.pending)
	if cap(ss.pending) > 4*keepBodyCap {
		ss.pending = nil
	} else {
		ss.pending = ss.pending[:0]
	}
	if err != nil {
		return writeErr{err}
	}
	return nil
}

// flushUpstream flushes the upstream writer. Called whenever the client
// has nothing more buffered, so the relay never waits for the client while
// holding decided bytes.
func (ss *session) flushUpstream() error {
	if ss.uw.Buffered() > 0 {
		if err := ss.uw.Flush(); err != nil {
			return writeErr{err}
		}
	}
	if ss.c2sMsgs >= 64 {
		m := ss.srv.m
		m.bytesC2S.Add(float64(ss.c2sBytes))
		m.msgsC2S.Add(float64(ss.c2sMsgs))
		ss.c2sBytes, ss.c2sMsgs = 0, 0
	}
	return nil
}

// boundary reports client message types after which held messages go upstream.
func boundary(typ byte) bool {
	switch typ {
	case 'S', 'H', 'Q', 'F', 'c', 'f', 'X':
		return true
	}
	return false
}

func rfqProducing(typ byte) bool { return typ == 'Q' || typ == 'S' || typ == 'F' }

func extended(typ byte) bool {
	switch typ {
	case 'P', 'B', 'D', 'E', 'C', 'H':
		return true
	}
	return false
}

func (ss *session) clientLoopErr() error {
	f := ss.cf
	for {
		if ss.cr.Buffered() == 0 {
			// Never wait for the client with decided bytes unflushed.
			// With hooks, the undecided rest of a batch stays in pending
			// until its boundary (decide before forward).
			f.release()
			if err := ss.flushUpstream(); err != nil {
				return err
			}
		}
		typ, n, err := f.next()
		if err != nil {
			return err
		}
		if err := f.checkMax(); err != nil {
			return err
		}
		ss.c2sMsgs++
		ss.c2sBytes += 5 + n
		if typ == 'X' {
			// Before PostgreSQL can see the Terminate and close: the server
			// loop's EOF that follows is the client's doing, not a lost upstream.
			ss.clientTerminated.Store(true)
		}
		if ss.hooks == nil {
			if err := f.forward(ss.uw); err != nil {
				return err
			}
		} else if err := ss.hookClient(typ, n); err != nil {
			return err
		}
		if ss.hooks != nil && (boundary(typ) || len(ss.pending) > maxPendingBatch || typ == 'd' && ss.cr.Buffered() == 0) {
			if err := ss.commitPending(); err != nil {
				return err
			}
		}
		if typ == 'X' {
			if err := ss.flushUpstream(); err != nil {
				return err
			}
			return errClientTerminate
		}
	}
}

// hookClient handles one client message when hooks are installed: it is
// held in ss.pending (raw when not wanted; decided by OnClient when wanted).
func (ss *session) hookClient(typ byte, n int) error {
	f := ss.cf
	want := ss.hooks.WantClient(typ)
	if !want && !tracked(typ) {
		start := len(ss.pending)
		ss.pending = append(ss.pending, f.header()...)
		ss.pending = grow(ss.pending, n)
		f.pending = false
		if _, err := io.ReadFull(f.r, ss.pending[start+5:]); err != nil {
			return unexpectedEOF(err)
		}
		ss.noteForwarded(typ)
		return nil
	}
	body, err := f.body()
	if err != nil {
		return err
	}
	msg, err := decodeFrontend(&ss.fmsgs, typ, body, typ == 'Q' && f.take())
	if err != nil {
		return pgerr.Fatal(pgerr.ProtocolViolation, "malformed %s message", msgName(typ)).WithCause(err)
	}
	var v Verdict
	if want {
		v = ss.callOnClient(msg)
	}
	switch {
	case v.Refuse != nil:
		return ss.refuse(typ, msg, v.Refuse)
	case v.Replace != nil:
		start := len(ss.pending)
		out, err := v.Replace.Encode(ss.pending)
		if err != nil {
			return internalError(err)
		}
		ss.pending = out
		ss.noteForwarded(out[start]) // the replacement's own type byte
		ss.tr.client(v.Replace, &v)
	default:
		ss.pending = append(ss.pending, f.header()...)
		ss.pending = append(ss.pending, body...)
		ss.noteForwarded(typ)
		ss.tr.client(msg, &v)
	}
	return nil
}

// grow extends b by n bytes (contents undefined).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, max(2*cap(b), len(b)+n))
	copy(nb, b)
	return nb
}

// noteForwarded updates the batch bookkeeping for a message put in pending.
func (ss *session) noteForwarded(typ byte) {
	if rfqProducing(typ) {
		ss.pendingOwed++
		ss.rfqSent++
	}
	if typ == 'S' {
		ss.batchOpen = false
	} else if extended(typ) {
		ss.batchOpen = true
	}
}

func (ss *session) callOnClient(msg pgproto3.FrontendMessage) Verdict {
	ss.hookMu.Lock()
	if ss.hookCtx.Err() != nil && ss.ctx.Err() == nil {
		ss.hookCtx, ss.hookCancel = context.WithCancelCause(ss.ctx)
	}
	ctx := ss.hookCtx
	ss.inHook = true
	ss.hookMu.Unlock()
	ss.inOnClient = true
	v := ss.hooks.OnClient(ctx, msg)
	ss.inOnClient = false
	ss.hookMu.Lock()
	ss.inHook = false
	ss.hookMu.Unlock()
	return v
}

// refuse replaces a refused message by a poison that makes PostgreSQL fail
// without side effects, and queues the error the client will see instead
// of PostgreSQL's. A FATAL refusal ends the session.
func (ss *session) refuse(typ byte, msg pgproto3.FrontendMessage, e *pgerr.Error) error {
	if e.Severity == pgerr.SeverityFatal {
		return e
	}
	ss.seq++
	marker := ss.marker + strconv.FormatUint(ss.seq, 10)
	var poison pgproto3.FrontendMessage
	ptyp := typ
	rfq := ss.rfqSent + 1
	switch typ {
	case 'Q', 'F':
		poison, ptyp = &pgproto3.Query{String: marker}, 'Q'
	case 'P':
		poison = &pgproto3.Parse{Name: msg.(*pgproto3.Parse).Name, Query: marker}
	case 'B', 'E', 'D', 'C':
		// A named statement that cannot exist: the unnamed one survives.
		poison, ptyp = &pgproto3.Parse{Name: marker, Query: marker}, 'P'
	case 'd', 'c', 'f':
		poison, ptyp = &pgproto3.CopyFail{Message: marker}, 'f'
		rfq = ss.rfqSent // answered by the COPY statement's own ReadyForQuery
	default: // Sync, Flush, Terminate cannot be refused without desynchronising
		return asFatal(e)
	}
	out, err := poison.Encode(ss.pending)
	if err != nil {
		return internalError(err)
	}
	ss.pending = out
	ss.tr.mu.Lock()
	ss.tr.refusals = append(ss.tr.refusals, refusal{seq: ss.seq, rfq: rfq, err: e})
	ss.tr.mu.Unlock()
	ss.nRefusals.Add(1)
	ss.noteForwarded(ptyp)
	ss.tr.client(poison, &Verdict{}) // what PostgreSQL will answer
	return nil
}

// ---------------------------------------------------------------- server -> client

func (ss *session) serverLoop() {
	err := ss.serverLoopErr()
	if pe, ok := pgerr.As(err); ok {
		ss.end(reasonError, asFatal(pe), err)
		return
	}
	var we writeErr
	if errors.As(err, &we) {
		ss.end(reasonClientClosed, nil, err)
		return
	}
	if ss.clientTerminated.Load() {
		// PostgreSQL closed after the client's Terminate; the client loop
		// may not have reported it yet.
		ss.end(reasonClientTerminated, nil, nil)
		return
	}
	ss.end(reasonUpstreamLost, errUpstreamLost, err)
}

func (ss *session) flushClient() error {
	ss.cwMu.Lock()
	err := ss.cw.Flush()
	ss.cwMu.Unlock()
	if ss.s2cMsgs >= 64 {
		m := ss.srv.m
		m.bytesS2C.Add(float64(ss.s2cBytes))
		m.msgsS2C.Add(float64(ss.s2cMsgs))
		ss.s2cBytes, ss.s2cMsgs = 0, 0
	}
	if err != nil {
		return writeErr{err}
	}
	return nil
}

func (ss *session) serverLoopErr() error {
	f := ss.uf
	hooked := ss.hooks != nil
	for {
		if ss.ur.Buffered() == 0 {
			f.release()
			if err := ss.flushClient(); err != nil {
				return err
			}
		}
		typ, n, err := f.next()
		if err != nil {
			return err
		}
		ss.s2cMsgs++
		ss.s2cBytes += 5 + n
		if hooked {
			if sq := ss.side.Load(); sq != nil && !async(typ) {
				if err := ss.sideMessage(sq, typ); err != nil {
					return err
				}
				continue
			}
		}
		if typ == 'E' {
			if err := ss.serverError(); err != nil {
				return err
			}
		} else if hooked && ss.hooks.WantServer(typ) {
			if err := ss.hookServer(typ); err != nil {
				return err
			}
		} else if hooked && (typ == 'C' || typ == 'Z') {
			// the tracker reads the command tag and the transaction status
			if err := ss.forwardBody(); err != nil {
				return err
			}
		} else {
			ss.cwMu.Lock()
			err := f.forward(ss.cw)
			ss.cwMu.Unlock()
			if err != nil {
				return err
			}
		}
		if hooked {
			var body []byte
			if typ == 'C' || typ == 'Z' {
				body = f.lastBody()
			}
			ss.tr.server(typ, body)
		}
		switch typ {
		case 'Z':
			if hooked {
				ss.tr.mu.Lock()
				n := len(ss.tr.refusals)
				ss.tr.mu.Unlock()
				ss.nRefusals.Store(int32(n))
				ss.signalIdle()
			}
			if err := ss.flushClient(); err != nil {
				return err
			}
		case 'G', 'W':
			if hooked {
				ss.signalIdle()
			}
			if err := ss.flushClient(); err != nil {
				return err
			}
		}
	}
}

// async reports server messages that may arrive at any time.
func async(typ byte) bool { return typ == 'A' || typ == 'N' || typ == 'S' }

func (ss *session) signalIdle() {
	select {
	case ss.idle <- struct{}{}:
	default:
	}
}

// forwardBody forwards the current server message through the framer's
// body buffer, so the tracker can read it afterwards (lastBody).
func (ss *session) forwardBody() error {
	body, err := ss.uf.body()
	if err != nil {
		return err
	}
	ss.cwMu.Lock()
	_, _ = ss.cw.Write(ss.uf.header())
	_, err = ss.cw.Write(body)
	ss.cwMu.Unlock()
	if err != nil {
		return writeErr{err}
	}
	return nil
}

// serverError handles an ErrorResponse: a poison's error is replaced by the
// queued refusal; everything else goes to the hooks (if wanted) or as is.
func (ss *session) serverError() error {
	f := ss.uf
	body, err := f.body()
	if err != nil {
		return err
	}
	if fatalSeverity(body) {
		ss.upstreamDead.Store(true)
	}
	if ss.nRefusals.Load() > 0 {
		if e := ss.matchRefusal(body); e != nil {
			ss.cwMu.Lock()
			_, err := ss.cw.Write(mustEncode(e.Response()))
			ss.cwMu.Unlock()
			if err != nil {
				return writeErr{err}
			}
			return nil
		}
	}
	if ss.hooks != nil && ss.hooks.WantServer('E') {
		return ss.hookServerBody('E', body)
	}
	ss.cwMu.Lock()
	_, _ = ss.cw.Write(f.header())
	_, err = ss.cw.Write(body)
	ss.cwMu.Unlock()
	if err != nil {
		return writeErr{err}
	}
	return nil
}

// fatalSeverity reports whether an ErrorResponse body has severity FATAL or PANIC.
func fatalSeverity(body []byte) bool {
	for len(body) > 1 && body[0] != 0 {
		t := body[0]
		i := bytes.IndexByte(body[1:], 0)
		if i < 0 {
			return false
		}
		v := body[1 : 1+i]
		if t == 'V' || t == 'S' {
			if string(v) == "FATAL" || string(v) == "PANIC" {
				return true
			}
		}
		body = body[2+i:]
	}
	return false
}

// matchRefusal returns the queued refusal whose marker the error carries.
func (ss *session) matchRefusal(body []byte) *pgerr.Error {
	i := bytes.Index(body, []byte(ss.marker))
	if i < 0 {
		return nil
	}
	rest := body[i+len(ss.marker):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	seq, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	if err != nil {
		return nil
	}
	ss.tr.mu.Lock()
	defer ss.tr.mu.Unlock()
	for k, r := range ss.tr.refusals {
		if r.seq == seq {
			ss.tr.refusals = append(ss.tr.refusals[:k], ss.tr.refusals[k+1:]...)
			ss.nRefusals.Add(-1)
			return r.err
		}
	}
	return nil
}

func (ss *session) hookServer(typ byte) error {
	body, err := ss.uf.body()
	if err != nil {
		if pe, ok := pgerr.As(err); ok && pe == errTooLarge {
			return pgerr.Fatal(pgerr.ProtocolViolation, "server message too large to inspect")
		}
		return err
	}
	return ss.hookServerBody(typ, body)
}

func (ss *session) hookServerBody(typ byte, body []byte) error {
	msg, err := decodeBackend(&ss.bmsgs, typ, body)
	if err != nil {
		return pgerr.Fatal(pgerr.ProtocolViolation, "malformed server %s message", msgName(typ)).WithCause(err)
	}
	out, err := ss.hooks.OnServer(msg)
	if err != nil {
		if _, ok := pgerr.As(err); ok {
			return err
		}
		return internalError(err)
	}
	if out == nil {
		return nil
	}
	ss.cwMu.Lock()
	defer ss.cwMu.Unlock()
	if out == msg { // unchanged: the original bytes
		_, _ = ss.cw.Write(ss.uf.header())
		_, err = ss.cw.Write(body)
	} else {
		b, eerr := out.Encode(ss.wbuf[:0])
		if eerr != nil {
			return internalError(eerr)
		}
		_, err = ss.cw.Write(b)
		if cap(b) > keepBodyCap {
			b = nil
		}
		ss.wbuf = b
	}
	if err != nil {
		return writeErr{err}
	}
	return nil
}

// ---------------------------------------------------------------- Session

var _ Session = (*session)(nil)

func (ss *session) Info() SessionInfo { return ss.info }

// Tracker returns the session's protocol tracker.
func (ss *session) Tracker() *Tracker { return ss.tr }

// WatchClient reads ahead on the client connection while OnClient blocks
// (see Session.WatchClient). Only the client goroutine reads ss.cr, and it
// is inside OnClient until stop returns, so the watcher may: it only
// peeks, never consumes, so pipelined messages stay for the client loop.
func (ss *session) WatchClient() (stop func()) {
	if !ss.inOnClient || ss.client == nil {
		return func() {}
	}
	stopping := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		scanned := 0 // buffered bytes already walked message by message
		for {
			b, _ := ss.cr.Peek(ss.cr.Buffered())
			for scanned+5 <= len(b) {
				if b[scanned] == 'X' {
					ss.clientGone(reasonClientTerminated)
					return
				}
				scanned += 1 + int(binary.BigEndian.Uint32(b[scanned+1:]))
			}
			_, err := ss.cr.Peek(len(b) + 1)
			if err == nil {
				continue
			}
			select {
			case <-stopping:
				return
			default:
			}
			if errors.Is(err, bufio.ErrBufferFull) || isTimeout(err) {
				return // cannot look further ahead (or the session ends anyway)
			}
			ss.clientGone(reasonClientClosed) // EOF, reset: the client is gone
			return
		}
	}()
	return func() {
		close(stopping)
		ss.dlMu.Lock()
		_ = ss.client.SetReadDeadline(time.Now().Add(-time.Second))
		ss.dlMu.Unlock()
		<-done
		ss.dlMu.Lock()
		if ss.ctx.Err() == nil { // end() cancels before it sets its own deadline
			_ = ss.client.SetReadDeadline(time.Time{})
		}
		ss.dlMu.Unlock()
	}
}

// clientGone ends the session because the client left while OnClient
// blocked: OnClient's context ends with cause ErrClientGone.
func (ss *session) clientGone(why string) {
	if why == reasonClientTerminated {
		ss.clientTerminated.Store(true)
	}
	ss.hookMu.Lock()
	ss.hookCancel(ErrClientGone)
	ss.hookMu.Unlock()
	ss.end(why, nil, nil)
}

// Notice sends n to the client now (whole message, flushed).
func (ss *session) Notice(n *pgproto3.NoticeResponse) error {
	b, err := n.Encode(nil)
	if err != nil {
		return err
	}
	ss.cwMu.Lock()
	defer ss.cwMu.Unlock()
	if _, err := ss.cw.Write(b); err != nil {
		return err
	}
	return ss.cw.Flush()
}

// Terminate ends the session with err (sent as FATAL).
func (ss *session) Terminate(err *pgerr.Error) {
	if err == nil {
		err = pgerr.Fatal(pgerr.AdminShutdown, "session terminated")
	}
	ss.end(reasonTerminated, asFatal(err), nil)
}

// keepAlive renews the lease at 2/3 of its remaining lifetime and ends the
// session when it cannot be renewed and the expiry passes.
func (ss *session) keepAlive(expiry time.Time) {
	renewable := true
	for {
		wait := max(time.Until(expiry), 0)
		if renewable {
			wait = wait * 2 / 3
		}
		t := time.NewTimer(wait)
		select {
		case <-ss.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !renewable {
			if !time.Now().Before(expiry) {
				ss.log.Info().Msg("session credential expired")
				ss.end(reasonTerminated, errExpired, nil)
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(ss.ctx, 10*time.Second)
		exp, err := ss.lease.Renew(ctx)
		cancel()
		switch {
		case err == nil && exp.After(expiry):
			ss.log.Debug().Time("expiry", exp).Msg("credential renewed")
			expiry = exp
		case err == nil || errors.Is(err, credentials.ErrNotRenewable):
			// The lease's final expiry: a provider that capped the
			// renewal (e.g. Vault at max_ttl) returns a later one than
			// before; one that refused returns the current or an earlier
			// one.
			if !exp.IsZero() {
				expiry = exp
			}
			renewable = false
		default:
			// Transient failure: retry at 2/3 of what is left (shrinking),
			// until too little is left to bother.
			ss.log.Warn().Err(err).Msg("credential renewal failed")
			if time.Until(expiry) < 500*time.Millisecond {
				renewable = false
			}
		}
	}
}

// ---------------------------------------------------------------- side queries

// sideQuery collects the response to a Session.Query.
type sideQuery struct {
	rows [][]string
	err  error
	dr   pgproto3.DataRow
	done chan struct{}
}

const maxSideRows = 10000

// Query runs sql on the session's upstream connection (see Session.Query).
func (ss *session) Query(ctx context.Context, sql string, args ...string) ([][]string, error) {
	running := ss.relaying.Load()
	if running && !ss.inOnClient {
		return nil, errors.New("pgwire: Session.Query may only be called from OnClient")
	}
	if running {
		// Decided messages may still sit in the writer: they must reach
		// PostgreSQL for their ReadyForQuery to come back.
		if err := ss.flushUpstream(); err != nil {
			return nil, err
		}
		for {
			ss.tr.mu.Lock()
			busy := ss.tr.copyIn || ss.tr.unsyncedFlushed
			owed := ss.tr.owed
			ss.tr.mu.Unlock()
			if busy {
				return nil, ErrBusy
			}
			if owed == 0 {
				break
			}
			select {
			case <-ss.idle:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-ss.ctx.Done():
				return nil, ss.ctx.Err()
			}
		}
	}
	sq := &sideQuery{done: make(chan struct{})}
	name := ss.marker + "side"
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	var buf []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Close{ObjectType: 'P', Name: name},
		&pgproto3.Close{ObjectType: 'S', Name: name},
		&pgproto3.Parse{Name: name, Query: sql},
		&pgproto3.Bind{DestinationPortal: name, PreparedStatement: name, Parameters: params},
		&pgproto3.Execute{Portal: name},
		&pgproto3.Close{ObjectType: 'P', Name: name},
		&pgproto3.Close{ObjectType: 'S', Name: name},
		&pgproto3.Sync{},
	} {
		var err error
		if buf, err = m.Encode(buf); err != nil {
			return nil, err
		}
	}
	if running {
		ss.side.Store(sq)
	}
	if _, err := ss.uw.Write(buf); err != nil {
		ss.side.Store(nil)
		return nil, err
	}
	if err := ss.uw.Flush(); err != nil {
		ss.side.Store(nil)
		return nil, err
	}
	if !running { // during the HookFactory: read the answer ourselves
		for {
			typ, _, err := ss.uf.next()
			if err != nil {
				return nil, err
			}
			if async(typ) {
				if err := ss.uf.skip(); err != nil {
					return nil, err
				}
				continue
			}
			if err := ss.sideMessage(sq, typ); err != nil {
				return nil, err
			}
			if typ == 'Z' {
				return sq.rows, sq.err
			}
		}
	}
	select {
	case <-sq.done:
		return sq.rows, sq.err
	case <-ctx.Done():
		ss.cancelUpstream()
	case <-ss.ctx.Done():
		return nil, ss.ctx.Err()
	}
	select {
	case <-sq.done:
		return sq.rows, sq.err
	case <-ss.ctx.Done():
		return nil, ss.ctx.Err()
	}
}

// sideMessage consumes one upstream message belonging to a side query.
func (ss *session) sideMessage(sq *sideQuery, typ byte) error {
	f := ss.uf
	switch typ {
	case 'D':
		body, err := f.body()
		if err != nil {
			return err
		}
		if len(sq.rows) >= maxSideRows {
			if sq.err == nil {
				sq.err = errors.New("pgwire: side query returned too many rows")
			}
			return nil
		}
		if err := sq.dr.Decode(body); err != nil {
			return err
		}
		row := make([]string, len(sq.dr.Values))
		for i, v := range sq.dr.Values {
			row[i] = string(v)
		}
		sq.rows = append(sq.rows, row)
	case 'E':
		body, err := f.body()
		if err != nil {
			return err
		}
		var er pgproto3.ErrorResponse
		if err := er.Decode(body); err != nil {
			return err
		}
		if sq.err == nil {
			sq.err = pgconn.ErrorResponseToPgError(&er)
		}
		if fatalSeverity(body) {
			ss.upstreamDead.Store(true)
		}
	case 'Z':
		if err := f.skip(); err != nil {
			return err
		}
		ss.side.Store(nil)
		close(sq.done)
	default:
		return f.skip()
	}
	return nil
}

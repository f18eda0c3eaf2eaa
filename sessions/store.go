package sessions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pgwarden/pgwarden/internal/sharedstore"
)

// ErrNotFound is returned for an unknown session id.
var ErrNotFound = errors.New("sessions: no such session")

// Store reads a session store (read-only; safe while a Recorder writes it).
type Store struct {
	dir string             // <store.dir>/sessions
	db  *sharedstore.Store // the shared store instead (OpenSharedStore)
}

// OpenStore opens the store under storeDir (the `store.dir` key) read-only.
func OpenStore(storeDir string) (*Store, error) {
	dir := filepath.Join(storeDir, "sessions")
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("sessions: opening store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("sessions: %s is not a directory", dir)
	}
	return &Store{dir: dir}, nil
}

// Filter selects sessions in List. Zero fields match everything.
type Filter struct {
	User     string
	Database string    // sessions whose startup database is this one
	Profile  string    // sessions of this connection profile
	Since    time.Time // sessions with an event at or after Since
	Action   string    // sessions with a statement of this action
	Decision string    // sessions with a statement/approval of this decision
}

// Summary describes one recorded session.
type Summary struct {
	ID              string   `json:"id"`
	User            string   `json:"user"`
	Groups          []string `json:"groups,omitempty"`
	ClientAddr      string   `json:"client_addr,omitempty"`
	ApplicationName string   `json:"application_name,omitempty"`
	Database        string   `json:"database,omitempty"`
	Profile         string   `json:"profile,omitempty"`
	BackendUser     string   `json:"backend_user,omitempty"`
	StartedAt       string   `json:"started_at,omitempty"`
	EndedAt         string   `json:"ended_at,omitempty"`
	EndReason       string   `json:"end_reason,omitempty"`
	Active          bool     `json:"active"`
	Statements      int      `json:"statements"`
	Denied          int      `json:"denied"`
	Errors          int      `json:"errors"`
	Actions         []string `json:"actions"`
	Decisions       []string `json:"decisions"`
	lastTime        string
}

func addUniq(s []string, v ...string) []string {
	for _, x := range v {
		found := false
		for _, y := range s {
			if x == y {
				found = true
				break
			}
		}
		if !found && x != "" {
			s = append(s, x)
		}
	}
	return s
}

// each calls fn for every decodable event in store order. Undecodable
// lines are skipped (Verify reports them).
func (s *Store) each(fn func(raw []byte, ev *Event) error) error {
	if s.db != nil {
		return s.eachShared(fn, "")
	}
	names, err := listSegments(s.dir)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	var ev Event
	for _, name := range names {
		f, err := os.Open(filepath.Join(s.dir, name))
		if os.IsNotExist(err) {
			continue // deleted by retention meanwhile
		}
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		lr := newLineReader(f, 0)
		for {
			line, err := lr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return fmt.Errorf("sessions: %s: %w", name, err)
			}
			if decodeLoose(line, &ev) != nil {
				continue
			}
			if err := fn(line, &ev); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	return nil
}

// List returns the sessions matching f, oldest first.
func (s *Store) List(f Filter) ([]Summary, error) {
	byID := map[string]*Summary{}
	var order []string
	actionHit, decisionHit := map[string]bool{}, map[string]bool{}
	err := s.each(func(_ []byte, ev *Event) error {
		if ev.Session == "" {
			return nil
		}
		sm := byID[ev.Session]
		if sm == nil {
			sm = &Summary{ID: ev.Session, User: ev.User, Groups: ev.Groups, ClientAddr: ev.ClientAddr,
				ApplicationName: ev.ApplicationName, Database: ev.Database, Profile: ev.Profile,
				BackendUser: ev.BackendUser, StartedAt: ev.Time, Active: true, Actions: []string{}, Decisions: []string{}}
			byID[ev.Session] = sm
			order = append(order, ev.Session)
		}
		sm.lastTime = ev.Time
		switch ev.Type {
		case TypeStatement:
			sm.Statements++
			if ev.Decision == DecisionDeny || ev.Decision == DecisionDenied {
				sm.Denied++
			}
			if ev.Error != "" {
				sm.Errors++
			}
		case TypeError:
			sm.Errors++
		case TypeSessionEnd:
			sm.EndedAt, sm.EndReason, sm.Active = ev.Time, ev.Reason, false
		}
		sm.Actions = addUniq(sm.Actions, ev.Actions...)
		sm.Decisions = addUniq(sm.Decisions, ev.Decision)
		for _, a := range ev.Actions {
			if a == f.Action {
				actionHit[ev.Session] = true
			}
		}
		if f.Decision != "" && ev.Decision == f.Decision {
			decisionHit[ev.Session] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, id := range order {
		sm := byID[id]
		if f.User != "" && sm.User != f.User {
			continue
		}
		if f.Database != "" && sm.Database != f.Database {
			continue
		}
		if f.Profile != "" && sm.Profile != f.Profile {
			continue
		}
		if f.Action != "" && !actionHit[id] {
			continue
		}
		if f.Decision != "" && !decisionHit[id] {
			continue
		}
		if !f.Since.IsZero() {
			t, err := time.Parse(time.RFC3339Nano, sm.lastTime)
			if err != nil || t.Before(f.Since) {
				continue
			}
		}
		out = append(out, *sm)
	}
	return out, nil
}

// Get returns the events of one session in order.
func (s *Store) Get(id string) ([]Event, error) {
	var out []Event
	fn := func(_ []byte, ev *Event) error {
		if ev.Session == id {
			out = append(out, *ev)
		}
		return nil
	}
	var err error
	if s.db != nil {
		err = s.eachShared(fn, id)
	} else {
		err = s.each(fn)
	}
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// Export writes every event at or after since, in store order, as JSON
// Lines: format "jsonl" (the stored lines, hashes included) or "ocsf"
// (one OCSF Datastore Activity object per line; see docs/recording.md).
func (s *Store) Export(w io.Writer, since time.Time, format string) error {
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "ocsf" {
		return fmt.Errorf("sessions: unknown export format %q (jsonl or ocsf)", format)
	}
	var buf []byte
	return s.each(func(raw []byte, ev *Event) error {
		if !since.IsZero() && ev.TimeValue().Before(since) {
			return nil
		}
		buf = buf[:0]
		if format == "jsonl" {
			buf = append(buf, raw...)
		} else {
			if ev.Type == TypeRetention {
				return nil
			}
			b, err := OCSF(ev)
			if err != nil {
				return err
			}
			buf = append(buf, b...)
		}
		buf = append(buf, '\n')
		_, err := w.Write(buf)
		return err
	})
}

// Problem is the first broken place found by Verify.
type Problem struct {
	Segment string `json:"segment"`
	Line    int    `json:"line"` // 1-based; 0 = the file or store as a whole
	Seq     int64  `json:"seq,omitempty"`
	Session string `json:"session,omitempty"`
	Msg     string `json:"message"`
}

func (p *Problem) String() string {
	loc := p.Segment
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.Segment, p.Line)
	}
	s := loc + ": " + p.Msg
	if p.Seq > 0 {
		s += fmt.Sprintf(" (seq %d", p.Seq)
		if p.Session != "" {
			s += ", session " + p.Session
		}
		s += ")"
	}
	return s
}

// Verify checks the whole store: every line's canonical form and hash, the
// chain (seq +1, prev_hash = previous hash) across segments, a purged
// prefix only where a retention marker in the chain attests it, and the
// end against head.json (so removing trailing events is caught). It writes
// a one-line verdict to w. ok=false with the first problem on tampering;
// err only for I/O failures.
func (s *Store) Verify(w io.Writer) (bool, *Problem, error) {
	verify, unit := s.verify, "segments, chain intact"
	if s.db != nil {
		verify, unit = s.verifyShared, "gateway chains, every chain intact"
	}
	p, n, segs, err := verify()
	if err != nil {
		return false, nil, err
	}
	if p != nil {
		fmt.Fprintf(w, "FAILED: %s\n", p)
		return false, p, nil
	}
	fmt.Fprintf(w, "ok: %d events in %d %s\n", n, segs, unit)
	return true, nil, nil
}

func (s *Store) verify() (*Problem, int64, int, error) {
	// head first: a concurrent writer only moves it forward after the data
	hd, haveHead, herr := readHead(s.dir)
	if herr != nil {
		return &Problem{Segment: headFile, Msg: herr.Error()}, 0, 0, nil
	}
	names, err := listSegments(s.dir)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sessions: %w", err)
	}
	enc := newEncoder()
	var (
		ev                Event
		n                 int64
		prevSeq           int64
		prevHash          string
		firstSeq          int64
		firstPrev         string
		headSeen          bool
		retentionAttested bool
		markers           = map[int64]string{}
	)
	for si, name := range names {
		f, err := os.Open(filepath.Join(s.dir, name))
		if err != nil {
			return nil, 0, 0, fmt.Errorf("sessions: %w", err)
		}
		lr := newLineReader(f, 0)
		lines := 0
		for {
			line, err := lr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return &Problem{Segment: name, Line: lr.lineNo + 1, Msg: err.Error()}, n, 0, nil
			}
			lines++
			bad := func(msg string) (*Problem, int64, int, error) {
				f.Close()
				return &Problem{Segment: name, Line: lr.lineNo, Seq: ev.Seq, Session: ev.Session, Msg: msg}, n, 0, nil
			}
			if err := enc.checkLine(line, &ev); err != nil {
				return bad(err.Error())
			}
			if lines == 1 && ev.Seq != segFirstSeq(name) {
				return bad(fmt.Sprintf("segment starts with seq %d, its name says %d (renamed or reordered)", ev.Seq, segFirstSeq(name)))
			}
			if n == 0 {
				firstSeq, firstPrev = ev.Seq, ev.PrevHash
				if ev.Seq < 1 {
					return bad("seq must start at 1")
				}
				if ev.Seq == 1 && ev.PrevHash != "" {
					return bad("first event of the store must have an empty prev_hash")
				}
			} else {
				if ev.Seq != prevSeq+1 {
					return bad(fmt.Sprintf("seq %d follows %d (events deleted or reordered)", ev.Seq, prevSeq))
				}
				if ev.PrevHash != prevHash {
					return bad(fmt.Sprintf("prev_hash %s does not match the previous event's hash %s (events deleted, inserted or reordered)", short(ev.PrevHash), short(prevHash)))
				}
			}
			if ev.Type == TypeRetention {
				markers[ev.PurgedThroughSeq] = ev.PurgedThroughHash
			}
			if haveHead && ev.Seq == hd.Seq {
				if ev.Hash != hd.Hash {
					return bad(fmt.Sprintf("event differs from the one recorded in %s (%s)", headFile, short(hd.Hash)))
				}
				headSeen = true
			}
			prevSeq, prevHash = ev.Seq, ev.Hash
			n++
		}
		if lr.zero {
			// the zero tail of space allocated ahead: nothing may follow it
			// (tailAfter drops trailing NULs: what is left holds data)
			if gap, err := tailAfter(f, lr.off+int64(len(lr.rest()))); err != nil || len(gap) > 0 {
				f.Close()
				if err != nil {
					return nil, n, 0, fmt.Errorf("sessions: %w", err)
				}
				return &Problem{Segment: name, Line: lr.lineNo + 1, Msg: "data after a zero-filled gap (a torn write after a power loss?)"}, n, 0, nil
			}
		}
		if frag := lr.rest(); len(frag) > 0 {
			f.Close()
			msg := "incomplete last line (truncated or torn write)"
			if si == len(names)-1 {
				msg += "; if the gateway crashed, starting it repairs this"
			}
			return &Problem{Segment: name, Line: lr.lineNo + 1, Msg: msg}, n, 0, nil
		}
		f.Close()
		if lines == 0 && si != len(names)-1 {
			return &Problem{Segment: name, Msg: "empty segment"}, n, 0, nil
		}
	}
	if n > 0 && firstSeq > 1 {
		if h, ok := markers[firstSeq-1]; ok && h == firstPrev {
			retentionAttested = true
		}
		if !retentionAttested {
			return &Problem{Segment: names[0], Line: 1, Seq: firstSeq,
				Msg: fmt.Sprintf("store starts at seq %d but no retention marker attests the deletion of seq 1..%d (segments deleted)", firstSeq, firstSeq-1)}, n, 0, nil
		}
	}
	if haveHead && hd.Seq > 0 && !headSeen {
		seg := headFile
		if len(names) > 0 {
			seg = names[len(names)-1]
		}
		return &Problem{Segment: seg, Seq: hd.Seq,
			Msg: fmt.Sprintf("store ends at seq %d but %s records seq %d (trailing events removed)", prevSeq, headFile, hd.Seq)}, n, 0, nil
	}
	if !haveHead && n > 0 {
		return &Problem{Segment: headFile, Msg: "missing (it records the last fsynced event)"}, n, 0, nil
	}
	return nil, n, len(names), nil
}

// tail reads events in store order from a position, across segments, and
// can be polled for new events (webhook delivery, replay --follow).
type tail struct {
	dir   string
	seg   string // current segment name ("" = not positioned)
	off   int64
	after int64 // only events with seq > after
}

// read appends up to max events (and their raw lines) after the position.
func (t *tail) read(max, maxBytes int, fn func(raw []byte, ev *Event)) (int, error) {
	n, bytesRead := 0, 0
	for n < max && bytesRead < maxBytes {
		names, err := listSegments(t.dir)
		if err != nil {
			return n, err
		}
		if t.seg == "" {
			if len(names) == 0 {
				return n, nil
			}
			t.seg, t.off = names[0], 0
			for _, nm := range names {
				if segFirstSeq(nm) <= t.after+1 {
					t.seg = nm
				}
			}
		}
		f, err := os.Open(filepath.Join(t.dir, t.seg))
		if os.IsNotExist(err) {
			t.seg = "" // deleted by retention: reposition
			continue
		}
		if err != nil {
			return n, err
		}
		if _, err := f.Seek(t.off, io.SeekStart); err != nil {
			f.Close()
			return n, err
		}
		lr := newLineReader(f, t.off)
		var ev Event
		for n < max && bytesRead < maxBytes {
			line, err := lr.next()
			if err != nil {
				break
			}
			t.off = lr.off
			if decodeLoose(line, &ev) != nil || ev.Seq <= t.after {
				continue
			}
			t.after = ev.Seq
			fn(line, &ev)
			n++
			bytesRead += len(line)
		}
		f.Close()
		if n >= max || bytesRead >= maxBytes {
			return n, nil
		}
		// at the end of this segment: move on if a later one exists
		next := ""
		for _, nm := range names {
			if nm > t.seg {
				next = nm
				break
			}
		}
		if next == "" || len(lr.rest()) > 0 {
			return n, nil
		}
		t.seg, t.off = next, 0
	}
	return n, nil
}

// Replay writes a psql-like transcript of one session. With follow it
// keeps polling a live session until its session_end or ctx is done.
func (s *Store) Replay(ctx context.Context, w io.Writer, id string, follow bool) error {
	if s.db != nil {
		return s.replayShared(ctx, w, id, follow)
	}
	t := &tail{dir: s.dir}
	found, ended := false, false
	var werr error
	emit := func(_ []byte, ev *Event) {
		if ev.Session != id || werr != nil {
			return
		}
		if !found {
			found = true
			werr = replayHeader(w, ev)
		}
		if werr == nil {
			werr = replayEvent(w, ev)
		}
		if ev.Type == TypeSessionEnd {
			ended = true
		}
	}
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		for {
			n, err := t.read(1000, 16<<20, emit)
			if err != nil {
				return fmt.Errorf("sessions: %w", err)
			}
			if werr != nil {
				return werr
			}
			if n == 0 || ended {
				break
			}
		}
		if ended || !follow {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// replayShared is Replay over the shared store; follow polls the
// session's events.
func (s *Store) replayShared(ctx context.Context, w io.Writer, id string, follow bool) error {
	shown := 0
	tk := time.NewTicker(200 * time.Millisecond)
	defer tk.Stop()
	for {
		evs, err := s.Get(id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		ended := false
		for i := shown; i < len(evs); i++ {
			if i == 0 {
				if err := replayHeader(w, &evs[0]); err != nil {
					return err
				}
			}
			if err := replayEvent(w, &evs[i]); err != nil {
				return err
			}
			ended = ended || evs[i].Type == TypeSessionEnd
		}
		shown = max(shown, len(evs))
		if shown == 0 && !follow {
			return ErrNotFound
		}
		if ended || !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
}

package filestore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pgwarden/pgwarden/sessions/record"
)

type (
	event   = record.Event
	problem = record.Problem
)

// Reader reads the file store's segments (<store.dir>/sessions): the
// file store's implementation of sessions.Log. It is read-only and safe
// while a recorder writes the same directory.
type Reader struct {
	dir string
}

// NewReader returns the Reader of the segments in dir
// (<store.dir>/sessions).
func NewReader(dir string) *Reader { return &Reader{dir: dir} }

// Dir is the directory of the segments.
func (s *Reader) Dir() string { return s.dir }

// Verify checks every segment and the chain across them (see Store.Verify).
func (s *Reader) Verify() (record.Verdict, error) {
	p, n, segs, err := s.verify()
	return record.Verdict{Problem: p, Events: n, Parts: segs, Unit: "segments, chain intact"}, err
}

// Follow reads the store from its start, then what is appended.
func (s *Reader) Follow(string) record.Follower { return &fileFollow{t: NewTail(s.dir, 0)} }

type fileFollow struct{ t *Tail }

// Next passes up to 1000 events (16 MiB) after the position; it counts
// every event read, of any session.
func (f *fileFollow) Next(fn func(raw []byte, ev *event)) (int, error) {
	n, err := f.t.Read(1000, 16<<20, fn)
	if err != nil {
		return n, fmt.Errorf("sessions: %w", err)
	}
	return n, nil
}

// Each calls fn for every decodable event in store order (of session
// when it is not ""). Undecodable lines are skipped (Verify reports them).
func (s *Reader) Each(session string, fn func(raw []byte, ev *event) error) error {
	names, err := ListSegments(s.dir)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	var ev event
	for _, name := range names {
		f, err := os.Open(filepath.Join(s.dir, name))
		if os.IsNotExist(err) {
			continue // deleted by retention meanwhile
		}
		if err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		lr := NewLineReader(f, 0)
		for line, err := range lr.Lines() {
			if err != nil {
				f.Close()
				return fmt.Errorf("sessions: %s: %w", name, err)
			}
			if record.DecodeLoose(line, &ev) != nil || (session != "" && ev.Session != session) {
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

func (s *Reader) verify() (*problem, int64, int, error) {
	// head first: a concurrent writer only moves it forward after the data
	hd, haveHead, herr := ReadHead(s.dir)
	if herr != nil {
		return &problem{Segment: HeadFile, Msg: herr.Error()}, 0, 0, nil
	}
	names, err := ListSegments(s.dir)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sessions: %w", err)
	}
	enc := record.NewEncoder()
	var (
		ev                event
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
		lr := NewLineReader(f, 0)
		lines := 0
		for line, err := range lr.Lines() {
			if err != nil {
				f.Close()
				return &problem{Segment: name, Line: lr.lineNo + 1, Msg: err.Error()}, n, 0, nil
			}
			lines++
			bad := func(msg string) (*problem, int64, int, error) {
				f.Close()
				return &problem{Segment: name, Line: lr.lineNo, Seq: ev.Seq, Session: ev.Session, Msg: msg}, n, 0, nil
			}
			if err := enc.CheckLine(line, &ev); err != nil {
				return bad(err.Error())
			}
			if lines == 1 && ev.Seq != SegFirstSeq(name) {
				return bad(fmt.Sprintf("segment starts with seq %d, its name says %d (renamed or reordered)", ev.Seq, SegFirstSeq(name)))
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
					return bad(fmt.Sprintf("prev_hash %s does not match the previous event's hash %s (events deleted, inserted or reordered)", record.Short(ev.PrevHash), record.Short(prevHash)))
				}
			}
			if ev.Type == record.TypeRetention {
				markers[ev.PurgedThroughSeq] = ev.PurgedThroughHash
			}
			if haveHead && ev.Seq == hd.Seq {
				if ev.Hash != hd.Hash {
					return bad(fmt.Sprintf("event differs from the one recorded in %s (%s)", HeadFile, record.Short(hd.Hash)))
				}
				headSeen = true
			}
			prevSeq, prevHash = ev.Seq, ev.Hash
			n++
		}
		if lr.zero {
			// the zero tail of space allocated ahead: nothing may follow it
			// (tailAfter drops trailing NULs: what is left holds data)
			if gap, err := TailAfter(f, lr.off+int64(len(lr.Rest()))); err != nil || len(gap) > 0 {
				f.Close()
				if err != nil {
					return nil, n, 0, fmt.Errorf("sessions: %w", err)
				}
				return &problem{Segment: name, Line: lr.lineNo + 1, Msg: "data after a zero-filled gap (a torn write after a power loss?)"}, n, 0, nil
			}
		}
		if frag := lr.Rest(); len(frag) > 0 {
			f.Close()
			msg := "incomplete last line (truncated or torn write)"
			if si == len(names)-1 {
				msg += "; if the gateway crashed, starting it repairs this"
			}
			return &problem{Segment: name, Line: lr.lineNo + 1, Msg: msg}, n, 0, nil
		}
		f.Close()
		if lines == 0 && si != len(names)-1 {
			return &problem{Segment: name, Msg: "empty segment"}, n, 0, nil
		}
	}
	if n > 0 && firstSeq > 1 {
		if h, ok := markers[firstSeq-1]; ok && h == firstPrev {
			retentionAttested = true
		}
		if !retentionAttested {
			return &problem{Segment: names[0], Line: 1, Seq: firstSeq,
				Msg: fmt.Sprintf("store starts at seq %d but no retention marker attests the deletion of seq 1..%d (segments deleted)", firstSeq, firstSeq-1)}, n, 0, nil
		}
	}
	if haveHead && hd.Seq > 0 && !headSeen {
		seg := HeadFile
		if len(names) > 0 {
			seg = names[len(names)-1]
		}
		return &problem{Segment: seg, Seq: hd.Seq,
			Msg: fmt.Sprintf("store ends at seq %d but %s records seq %d (trailing events removed)", prevSeq, HeadFile, hd.Seq)}, n, 0, nil
	}
	if !haveHead && n > 0 {
		return &problem{Segment: HeadFile, Msg: "missing (it records the last fsynced event)"}, n, 0, nil
	}
	return nil, n, len(names), nil
}

// Tail reads events in store order from a position, across segments, and
// can be polled for new events (webhook delivery, replay --follow).
type Tail struct {
	dir   string
	seg   string // current segment name ("" = not positioned)
	off   int64
	after int64 // only events with seq > after
}

// NewTail returns a Tail of the segments in dir, at the events after seq after.
func NewTail(dir string, after int64) *Tail { return &Tail{dir: dir, after: after} }

// After is the seq of the last event read (or the start position).
func (t *Tail) After() int64 { return t.after }

// Read passes up to max events (and their raw lines) after the position.
func (t *Tail) Read(max, maxBytes int, fn func(raw []byte, ev *event)) (int, error) {
	n, bytesRead := 0, 0
	for n < max && bytesRead < maxBytes {
		names, err := ListSegments(t.dir)
		if err != nil {
			return n, err
		}
		if t.seg == "" {
			if len(names) == 0 {
				return n, nil
			}
			t.seg, t.off = names[0], 0
			for _, nm := range names {
				if SegFirstSeq(nm) <= t.after+1 {
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
		lr := NewLineReader(f, t.off)
		var ev event
		for n < max && bytesRead < maxBytes {
			line, err := lr.Next()
			if err != nil {
				break
			}
			t.off = lr.off
			if record.DecodeLoose(line, &ev) != nil || ev.Seq <= t.after {
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
		if next == "" || len(lr.Rest()) > 0 {
			return n, nil
		}
		t.seg, t.off = next, 0
	}
	return n, nil
}

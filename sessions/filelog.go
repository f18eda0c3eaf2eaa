package sessions

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// fileLog reads the file store's segments (<store.dir>/sessions).
type fileLog struct {
	dir string
}

var _ Log = (*fileLog)(nil)

// Verify checks every segment and the chain across them (see Store.Verify).
func (s *fileLog) Verify() (Verdict, error) {
	p, n, segs, err := s.verify()
	return Verdict{Problem: p, Events: n, Parts: segs, Unit: "segments, chain intact"}, err
}

// Follow reads the store from its start, then what is appended.
func (s *fileLog) Follow(string) Follower { return &fileFollow{t: &tail{dir: s.dir}} }

type fileFollow struct{ t *tail }

// Next passes up to 1000 events (16 MiB) after the position; it counts
// every event read, of any session.
func (f *fileFollow) Next(fn func(raw []byte, ev *Event)) (int, error) {
	n, err := f.t.read(1000, 16<<20, fn)
	if err != nil {
		return n, fmt.Errorf("sessions: %w", err)
	}
	return n, nil
}

// Each calls fn for every decodable event in store order (of session
// when it is not ""). Undecodable lines are skipped (Verify reports them).
func (s *fileLog) Each(session string, fn func(raw []byte, ev *Event) error) error {
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
			if decodeLoose(line, &ev) != nil || (session != "" && ev.Session != session) {
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

func (s *fileLog) verify() (*Problem, int64, int, error) {
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
			if err := enc.CheckLine(line, &ev); err != nil {
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

package record

import "fmt"

// Problem is the first broken place found by verifying a recording.
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

// Follower reads a recording in store order and can be polled for what
// was appended since (see sessions.Log.Follow).
type Follower interface {
	// Next passes to fn the events appended since the previous call (the
	// first call: from the start), possibly only a batch of them, and
	// returns how many it read; 0 means none yet.
	Next(fn func(raw []byte, ev *Event)) (int, error)
}

// Verdict is the result of verifying a recording (sessions.Log.Verify).
type Verdict struct {
	Problem *Problem // the first broken place; nil when intact
	Events  int64    // events checked
	Parts   int      // segments or gateway chains
	Unit    string   // what Parts counts, as sessions.Store.Verify prints it ("segments, chain intact")
}

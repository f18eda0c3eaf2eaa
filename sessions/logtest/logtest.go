// Package logtest is the conformance suite every sessions.Log
// implementation passes: what a Recorder writes is read back in store
// order (all of it, or one session's), verifies intact, and can be
// followed while it is written.
package logtest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pgwarden/pgwarden/sessions"
)

// Backend opens one empty recording for a test: a Recorder writing it and
// the Log reading it. The suite closes the Recorder.
type Backend func(t *testing.T) (*sessions.Recorder, sessions.Log)

// Run runs the suite.
func Run(t *testing.T, open Backend) {
	t.Run("EachInStoreOrder", func(t *testing.T) { testEach(t, open) })
	t.Run("EachStopsAtError", func(t *testing.T) { testEachError(t, open) })
	t.Run("VerifyIntact", func(t *testing.T) { testVerify(t, open) })
	t.Run("FollowSeesAppended", func(t *testing.T) { testFollow(t, open) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func start(r *sessions.Recorder, id string) *sessions.SessionRecorder {
	return r.Start(sessions.StartInfo{ID: id, User: "alice@example.com", Groups: []string{"analyst"}, Database: "vectors", Profile: "default"})
}

func stmt(t *testing.T, s *sessions.SessionRecorder, sql string) {
	t.Helper()
	must(t, s.Statement(sessions.StatementEvent{SQL: sql, Actions: []string{"read"}, Decision: sessions.DecisionAllow}))
	must(t, s.Written())
}

// writeTwo records two interleaved sessions of 4 events each and closes
// the recorder; it returns the SQL in the order written.
func writeTwo(t *testing.T, r *sessions.Recorder) []string {
	a, b := start(r, "a"), start(r, "b")
	var sqls []string
	for i := range 2 {
		for _, s := range []*sessions.SessionRecorder{a, b} {
			q := fmt.Sprintf("SELECT %d -- %s", i, s.ID())
			stmt(t, s, q)
			sqls = append(sqls, q)
		}
	}
	must(t, a.End("client_closed"))
	must(t, b.End("client_closed"))
	must(t, r.Close())
	return sqls
}

func testEach(t *testing.T, open Backend) {
	r, l := open(t)
	sqls := writeTwo(t, r)
	var got []string
	var seqs []int64
	n := 0
	must(t, l.Each("", func(raw []byte, ev *sessions.Event) error {
		n++
		if len(raw) == 0 || raw[len(raw)-1] == '\n' {
			t.Errorf("raw line %q: want the stored line without its newline", raw)
		}
		if ev.Hash == "" {
			t.Errorf("event %d without hash", ev.Seq)
		}
		seqs = append(seqs, ev.Seq)
		if ev.Type == sessions.TypeStatement {
			got = append(got, ev.SQL)
		}
		return nil
	}))
	if n != 8 {
		t.Fatalf("Each: %d events, want 8", n)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("Each: seqs %v, want 1..8 in order", seqs)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(sqls) {
		t.Fatalf("Each: statements %q, want %q", got, sqls)
	}
	var types []string
	must(t, l.Each("b", func(_ []byte, ev *sessions.Event) error {
		if ev.Session != "b" {
			t.Errorf("Each(b) passed an event of session %q", ev.Session)
		}
		types = append(types, ev.Type)
		return nil
	}))
	want := []string{sessions.TypeSessionStart, sessions.TypeStatement, sessions.TypeStatement, sessions.TypeSessionEnd}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("Each(b): %v, want %v", types, want)
	}
	must(t, l.Each("nope", func([]byte, *sessions.Event) error {
		t.Fatal("Each of an unknown session passed an event")
		return nil
	}))
}

func testEachError(t *testing.T, open Backend) {
	r, l := open(t)
	writeTwo(t, r)
	stop := errors.New("stop")
	n := 0
	err := l.Each("", func([]byte, *sessions.Event) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("Each: %v after %d events, want fn's error after 3", err, n)
	}
}

func testVerify(t *testing.T, open Backend) {
	r, l := open(t)
	writeTwo(t, r)
	v, err := l.Verify()
	must(t, err)
	if v.Problem != nil || v.Events != 8 || v.Parts != 1 || v.Unit == "" {
		t.Fatalf("Verify: %+v, want intact, 8 events in 1 part", v)
	}
}

func testFollow(t *testing.T, open Backend) {
	r, l := open(t)
	defer r.Close()
	s := start(r, "live")
	stmt(t, s, "SELECT 1")
	f := l.Follow("live")
	// next returns the SQL of the live session's statements Next passes
	// (a Follower may pass other sessions' events too: the caller filters)
	next := func() []string {
		var out []string
		for {
			n, err := f.Next(func(_ []byte, ev *sessions.Event) {
				if ev.Session == "live" && ev.Type == sessions.TypeStatement {
					out = append(out, ev.SQL)
				}
			})
			must(t, err)
			if n == 0 {
				return out
			}
		}
	}
	if got := next(); fmt.Sprint(got) != "[SELECT 1]" {
		t.Fatalf("first Next: %q", got)
	}
	if got := next(); len(got) != 0 {
		t.Fatalf("Next with nothing new: %q", got)
	}
	stmt(t, s, "SELECT 2")
	stmt(t, s, "SELECT 3")
	if got := next(); fmt.Sprint(got) != "[SELECT 2 SELECT 3]" {
		t.Fatalf("Next after two more: %q", got)
	}
	must(t, s.End("client_closed"))
}

package sessions

import (
	"bytes"
	"io"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink is where the recorder sends what it stored, besides the store
// itself. Two implementations: the stdout sink (every line, in store
// order) and the webhook sink (reads the store from its own cursor and
// delivers at least once). The "file" sink is the store.
type Sink interface {
	// Name identifies the sink in logs ("stdout", the webhook's URL
	// without query string or userinfo).
	Name() string
	// Start starts the sink's delivery once the recorder has recovered
	// the store (before the first session is recorded).
	Start()
	// Written is called with every batch of complete lines (each ending
	// in '\n') right after they were stored, in store order (under the
	// store's lock or from its single committer). It must not keep lines
	// after it returns and must not block the recorder beyond a bounded
	// queue.
	Written(lines []byte)
	// Close delivers what it can without waiting for an endpoint (the
	// stdout sink writes its last lines; a webhook stops, its undelivered
	// events stay in the store) and stops the sink.
	Close() error
}

// deliverySink is a Sink that reads the store behind the recorder:
// retention keeps every segment with an event it has not delivered.
type deliverySink interface {
	Sink
	// DeliveredSeq is the seq of the last event delivered.
	DeliveredSeq() int64
}

var (
	_ Sink         = (*stdoutWriter)(nil)
	_ deliverySink = (*webhook)(nil)
)

// stdoutSink is where the stdout sink writes (tests replace it).
var stdoutSink io.Writer = os.Stdout

// stdoutWriter is the stdout sink: it writes every stored line, in store
// order, from its own goroutine, so a slow reader of standard output does
// not hold the store lock; a full queue (stdoutQueue writes behind)
// blocks the recorder.
type stdoutWriter struct {
	w      io.Writer
	q      chan []byte
	wg     sync.WaitGroup
	errors prometheus.Counter
}

// newStdoutSink starts the stdout sink's writer (at once: the recovery
// events are written to it too).
func newStdoutSink(errors prometheus.Counter) *stdoutWriter {
	s := &stdoutWriter{w: stdoutSink, q: make(chan []byte, stdoutQueue), errors: errors}
	s.wg.Add(1)
	go s.loop()
	return s
}

func (s *stdoutWriter) Name() string { return "stdout" }

func (s *stdoutWriter) Start() {}

func (s *stdoutWriter) Written(lines []byte) { s.q <- bytes.Clone(lines) }

func (s *stdoutWriter) Close() error {
	close(s.q)
	s.wg.Wait()
	return nil
}

// loop writes the queued lines in store order until Close.
func (s *stdoutWriter) loop() {
	defer s.wg.Done()
	for b := range s.q {
		if _, err := s.w.Write(b); err != nil {
			s.errors.Inc()
		}
	}
}

package sessions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions/filestore"
)

// Webhook delivery tunables.
const (
	hookBatch      = 100
	hookBatchBytes = 1 << 20
	hookMinBackoff = 100 * time.Millisecond
	hookMaxBackoff = 30 * time.Second
	hookTimeout    = 10 * time.Second
)

// webhook delivers the store's events to one HTTP endpoint, at least once.
// The store itself is the on-disk buffer: the sink only keeps a cursor
// (last delivered seq and hash) in <store.dir>/outbox/<id>.cursor, so a
// SIEM outage or a gateway restart loses nothing; retention never deletes
// a segment with undelivered events.
type webhook struct {
	dir        string // the store's segments (<store.dir>/sessions)
	log        zerolog.Logger
	m          *metrics
	wg         sync.WaitGroup
	url        string
	safeURL    string // scheme://host/path: never log a query string or userinfo (may carry a token)
	format     string
	cursorPath string
	client     *http.Client
	delivered  atomic.Int64
	notify     chan struct{}
	ctx        context.Context
	cancel     context.CancelFunc
	sleep      func(ctx context.Context, d time.Duration) bool
}

type cursorFile struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash,omitempty"`
	URL  string `json:"url"`
}

// newWebhookSink makes the webhook sink s, reading the segments in dir;
// a sink without a cursor in outbox starts after startSeq.
func newWebhookSink(s config.Sink, dir, outbox string, startSeq int64, log zerolog.Logger, m *metrics) (*webhook, error) {
	if err := os.MkdirAll(outbox, 0o700); err != nil {
		return nil, fmt.Errorf("sessions: webhook outbox: %w", err)
	}
	format := s.Format
	if format == "" {
		format = "jsonl"
	}
	id := sha256.Sum256([]byte(s.URL + "|" + format))
	w := &webhook{dir: dir, log: log, m: m, url: s.URL, format: format,
		cursorPath: filepath.Join(outbox, hex.EncodeToString(id[:8])+".cursor"),
		client:     &http.Client{Timeout: hookTimeout},
		notify:     make(chan struct{}, 1),
		sleep: func(ctx context.Context, d time.Duration) bool {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return true
			case <-ctx.Done():
				return false
			}
		},
	}
	w.safeURL = "webhook"
	if u, err := url.Parse(s.URL); err == nil {
		w.safeURL = u.Scheme + "://" + u.Host + u.Path
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	b, err := os.ReadFile(w.cursorPath)
	switch {
	case err == nil:
		var c cursorFile
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("sessions: webhook cursor %s: %v", w.cursorPath, err)
		}
		w.delivered.Store(c.Seq)
	case os.IsNotExist(err):
		// a new sink starts at the current end (use `sessions export` to backfill)
		w.delivered.Store(startSeq)
		if err := w.saveCursor(startSeq, ""); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("sessions: webhook cursor: %w", err)
	}
	return w, nil
}

func (w *webhook) saveCursor(seq int64, hash string) error {
	b, _ := json.Marshal(cursorFile{Seq: seq, Hash: hash, URL: w.safeURL})
	return filestore.WriteFileAtomic(w.cursorPath, b)
}

// Name is the endpoint without query string or userinfo.
func (w *webhook) Name() string { return w.safeURL }

// DeliveredSeq is the seq of the last event delivered (or skipped).
func (w *webhook) DeliveredSeq() int64 { return w.delivered.Load() }

// Start starts delivery (from the cursor).
func (w *webhook) Start() {
	w.wg.Add(1)
	go w.run()
}

// Written wakes delivery: the events are read from the store.
func (w *webhook) Written([]byte) {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Close stops delivery; undelivered events stay in the store and are sent
// after the next Open.
func (w *webhook) Close() error {
	w.cancel()
	w.wg.Wait()
	return nil
}

type hookEvent struct {
	seq  int64
	hash string
	body []byte // the JSON object sent for this event
}

func (w *webhook) run() {
	defer w.wg.Done()
	t := filestore.NewTail(w.dir, w.delivered.Load())
	var batch []hookEvent
	failures := 0
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for {
		if w.ctx.Err() != nil {
			return
		}
		if len(batch) == 0 {
			_, err := t.Read(hookBatch, hookBatchBytes, func(raw []byte, ev *Event) {
				if ev.Type == TypeRetention && w.format == "ocsf" {
					return
				}
				he := hookEvent{seq: ev.Seq, hash: ev.Hash}
				if w.format == "ocsf" {
					he.body, _ = OCSF(ev)
				} else {
					he.body = append([]byte(nil), raw...)
				}
				batch = append(batch, he)
			})
			if err != nil {
				w.log.Error().Err(err).Str("sink", w.safeURL).Msg("webhook: reading the store")
			}
			if len(batch) == 0 {
				if t.After() > w.delivered.Load() { // only skipped events: advance the cursor
					w.delivered.Store(t.After())
					_ = w.saveCursor(t.After(), "")
				}
				select {
				case <-w.ctx.Done():
					return
				case <-w.notify:
				case <-idle.C:
				}
				continue
			}
		}
		if err := w.post(batch); err != nil {
			failures++
			w.m.hookFailures.Inc()
			d := hookMinBackoff << min(failures-1, 12)
			if d > hookMaxBackoff {
				d = hookMaxBackoff
			}
			d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1)) // jitter
			w.log.Warn().Err(err).Str("sink", w.safeURL).Int("events", len(batch)).Dur("retry_in", d).Msg("webhook delivery failed")
			if !w.sleep(w.ctx, d) {
				return
			}
			continue
		}
		failures = 0
		last := batch[len(batch)-1]
		if err := w.saveCursor(last.seq, last.hash); err != nil {
			w.log.Error().Err(err).Msg("webhook: saving cursor (events may be delivered again)")
		}
		w.delivered.Store(last.seq)
		w.m.hookDelivered.Add(float64(len(batch)))
		batch = batch[:0]
	}
}

// post sends one batch: a JSON array of events (jsonl: stored events with
// their hash; ocsf: OCSF objects, hash in metadata.uid). The header
// Idempotency-Key is the hash of the batch's first event; a retried batch
// is byte-identical.
func (w *webhook) post(batch []hookEvent) error {
	var body bytes.Buffer
	body.WriteByte('[')
	for i, e := range batch {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e.body)
	}
	body.WriteByte(']')
	ctx, cancel := context.WithTimeout(w.ctx, hookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", batch[0].hash)
	req.Header.Set("User-Agent", "pgwarden-sessions")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

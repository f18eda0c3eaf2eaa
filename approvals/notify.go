package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Webhook delivery bounds: deliveries run in the background, at most
// webhookInFlight at once (more are dropped with a log line, never queued
// without bound), each within webhookTimeout.
const (
	webhookInFlight = 8
	webhookTimeout  = 5 * time.Second
)

func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("must be an http(s) URL")
	}
	return nil
}

// notifier posts Slack-compatible {"text": ...} bodies. The URL is a
// secret (Slack webhook URLs carry their credential): it never appears in
// logs or errors.
type notifier struct {
	url    string
	client *http.Client
	log    zerolog.Logger
	sem    chan struct{}
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

func newNotifier(u string, c *http.Client, log zerolog.Logger) *notifier {
	if c == nil {
		c = &http.Client{Timeout: webhookTimeout}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &notifier{url: u, client: c, log: log, sem: make(chan struct{}, webhookInFlight), ctx: ctx, cancel: cancel}
}

func (n *notifier) send(text string) {
	select {
	case n.sem <- struct{}{}:
	default:
		n.log.Warn().Msg("approval webhook: too many deliveries in flight; notification dropped")
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { <-n.sem }()
		if err := n.post(text); err != nil {
			n.log.Warn().Str("error", err.Error()).Msg("approval webhook delivery failed")
		}
	}()
}

func (n *notifier) post(text string) error {
	body, err := json.Marshal(struct {
		Text string `json:"text"`
	}{text})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(n.ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("cannot build request")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // *url.Error prints the URL; keep only the cause
			return ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// close waits for deliveries in flight (each bounded by webhookTimeout).
func (n *notifier) close() {
	n.wg.Wait()
	n.cancel()
}

// holdText is the notification for a new request. It names who, what
// action, where and why, and how to act; it deliberately leaves out the
// SQL text and parameters (they may carry secrets, e.g. ALTER ROLE ...
// PASSWORD, or PII) — approvers read them with `pgwarden approvals show`.
func holdText(a *Approval) string {
	est := "unknown"
	if a.EstimateRows >= 0 {
		est = fmt.Sprintf("%d", a.EstimateRows)
	}
	reason := a.Reason
	if reason == "" {
		reason = "(none given)"
	}
	where := a.Database
	if a.Profile != "" {
		where += " (profile " + a.Profile + ")"
	}
	return fmt.Sprintf("pgwarden: %s asks for approval of a %s statement on database %s (planner estimate: %s rows). Reason: %s. Approval %s expires %s. Review: pgwarden approvals show %s — approve: pgwarden approvals approve %s — deny: pgwarden approvals deny %s --reason ...",
		a.RequesterVia(), a.Action, where, est, reason, a.ID, a.ExpiresAt.Format(time.RFC3339), a.ID, a.ID, a.ID)
}

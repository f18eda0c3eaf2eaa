package sessions

// The session record in the shared PostgreSQL store (store.dsn): the
// appender is pgstore.Appender (one hash chain per gateway in
// pgwarden.events, group commit), the reader pgstore.Reader.

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions/pgstore"
)

// OpenShared opens the session record of gateway in the shared store db:
// it continues the gateway's chain, ends with gateway_restart the
// sessions its previous process left open, and starts the committer.
// Webhook sinks need the file store's outbox (not yet in the shared store).
func OpenShared(cfg config.Recording, db *sharedstore.Store, gateway string, log zerolog.Logger, reg prometheus.Registerer) (*Recorder, error) {
	for _, s := range cfg.Sinks {
		if s.Type == "webhook" {
			return nil, errors.New("sessions: a webhook sink is not supported with store.dsn yet (its delivery cursor lives in store.dir); use the stdout sink and ship container logs")
		}
	}
	r := newRecorder(cfg, log, reg)
	r.gateway = gateway
	p := pgstore.NewAppender(host{r}, db, gateway)
	r.w = p
	for _, s := range cfg.Sinks {
		if s.Type == "stdout" {
			r.addSink(newStdoutSink(r.m.sinkErrors))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedstore.OpTimeout)
	defer cancel()
	if err := p.Recover(ctx); err != nil {
		r.closeSinks()
		r.m.unregister()
		return nil, err
	}
	p.Start()
	// Close the sessions the previous process left open, chained like any event.
	ended, err := p.EndSessions(ctx, gateway, ReasonGatewayRestart)
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("sessions: writing recovery events: %w", err)
	}
	if len(ended) > 0 {
		r.log.Warn().Int("sessions", len(ended)).Msg("recovered sessions left open by a crash (session_end gateway_restart)")
	}
	return r, nil
}

// EndSessionsOf writes session_end with reason gateway_lost for every
// session the dead gateway left open (into this gateway's chain) and
// returns them (identity fields: BackendUser names each one's credential).
func (r *Recorder) EndSessionsOf(ctx context.Context, gateway string) ([]Event, error) {
	p, ok := r.w.(*pgstore.Appender)
	if !ok {
		return nil, errors.New("sessions: EndSessionsOf needs the shared store")
	}
	return p.EndSessions(ctx, gateway, ReasonGatewayLost)
}

// OpenSharedStore reads the session record in the shared store: every
// gateway's events.
func OpenSharedStore(db *sharedstore.Store) *Store { return NewStore(pgstore.NewReader(db)) }

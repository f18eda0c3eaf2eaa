package gateway

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/pgstore"
	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/pgwire"
)

// cancelRoutes adapts the shared store's cancel routes to pgwire. It is
// handed to pgwire when the gateway is built and armed in Serve, once the
// address other gateways reach this one at is known.
type cancelRoutes struct {
	r atomic.Pointer[sharedstore.CancelRoutes]
}

func (c *cancelRoutes) Add(pid uint32, secret []byte) error {
	r := c.r.Load()
	if r == nil {
		return nil
	}
	err := r.Add(pid, secret)
	if errors.Is(err, sharedstore.ErrKeyTaken) {
		return pgwire.ErrKeyTaken
	}
	return err
}

func (c *cancelRoutes) Remove(pid uint32) {
	if r := c.r.Load(); r != nil {
		r.Remove(pid)
	}
}

func (c *cancelRoutes) Forward(pid uint32, secret []byte) (bool, error) {
	r := c.r.Load()
	if r == nil {
		return false, nil
	}
	return r.Forward(pid, secret)
}

// advertiseAddr is cluster.advertise, else the Postgres listener's own
// address when it names a host others can dial (not 0.0.0.0 / ::).
func advertiseAddr(configured string, l net.Addr) string {
	if configured != "" {
		return configured
	}
	ta, ok := l.(*net.TCPAddr)
	if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
		return ""
	}
	return ta.String()
}

// joinCluster records this gateway in the shared store, arms the cancel
// routes and runs the heartbeat loop until ctx is done (wait on the
// returned channel). On a clean stop it records the stop (Close).
func (g *Gateway) joinCluster(ctx context.Context, wl net.Listener) (<-chan struct{}, error) {
	done := make(chan struct{})
	if g.shared == nil {
		close(done)
		return done, nil
	}
	id := g.cfg.Cluster.ID()
	adv := advertiseAddr(g.cfg.Cluster.Advertise, wl.Addr())
	if adv == "" {
		g.log.Warn().Msg("cluster.advertise is not set and the listener has no dialable address: a CancelRequest sent to another gateway cannot reach this one's sessions")
	}
	if err := g.shared.Join(ctx, id, adv); err != nil {
		close(done)
		return done, err
	}
	g.routes.r.Store(g.shared.CancelRoutes(id, adv))
	every := g.cfg.Cluster.DeadAfter / 3
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				g.heartbeat(ctx, id)
			}
		}
	}()
	return done, nil
}

// heartbeat renews this gateway's heartbeat and cleans up after every
// gateway found silent for cluster.dead_after (exactly one live gateway
// claims each): its held requests expire, its open sessions get
// session_end gateway_lost, their native roles are dropped.
func (g *Gateway) heartbeat(ctx context.Context, id string) {
	if err := g.shared.Beat(ctx, id); err != nil {
		g.log.Warn().Err(err).Msg("heartbeat to the shared store failed")
		return
	}
	dead, err := g.shared.ClaimDead(ctx, id, g.cfg.Cluster.DeadAfter)
	if err != nil {
		g.log.Warn().Err(err).Msg("looking for lost gateways failed")
	}
	for _, gw := range dead {
		g.cleanUpLost(ctx, gw)
	}
}

func (g *Gateway) cleanUpLost(ctx context.Context, gw string) {
	log := g.log.With().Str("lost_gateway", gw).Logger()
	expired := 0
	if ps, ok := g.apStore.(*pgstore.Store); ok {
		list, err := ps.ExpireGateway(ctx, gw, approvals.GatewayLostNote)
		if err != nil {
			log.Error().Err(err).Msg("expiring a lost gateway's requests failed")
		}
		expired = len(list)
	}
	ended, err := g.recorder.EndSessionsOf(ctx, gw)
	if err != nil {
		log.Error().Err(err).Msg("ending a lost gateway's sessions failed")
	}
	// Each session's role lives on its own profile's server: sweep them
	// there, with that profile's provider.
	byProfile := map[*profile][]string{}
	for _, ev := range ended {
		if p := g.profileFor(ev.Profile, ev.Database); p != nil && ev.BackendUser != "" {
			byProfile[p] = append(byProfile[p], ev.BackendUser)
		}
	}
	swept := 0
	for p, roles := range byProfile {
		nat, ok := p.provider.(*credentials.Native)
		if !ok {
			continue
		}
		n, err := nat.SweepRoles(ctx, roles)
		swept += n
		if err != nil {
			log.Error().Err(err).Str("profile", p.name).Msg("dropping a lost gateway's session roles failed (they expire at their VALID UNTIL)")
		}
	}
	log.Warn().Int("requests_expired", expired).Int("sessions_ended", len(ended)).Int("roles_dropped", swept).
		Msg("a gateway stopped sending heartbeats: cleaned up after it")
}

package sharedstore

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Join records gateway id as running (a restart clears an earlier stop or
// loss) and drops the cancel routes its previous process left.
func (s *Store) Join(ctx context.Context, id, advertise string) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO pgwarden.gateways (id, advertise, started_at, heartbeat_at)
			VALUES ($1, $2, now(), now())
			ON CONFLICT (id) DO UPDATE SET advertise = $2, started_at = now(), heartbeat_at = now(),
			    stopped_at = NULL, lost_at = NULL, lost_by = NULL`, id, advertise); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM pgwarden.cancel_routes WHERE gateway = $1`, id)
		return err
	})
	return s.Unreachable(err)
}

// Beat renews gateway id's heartbeat (the store's clock, so gateways'
// clocks need not agree).
func (s *Store) Beat(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	_, err := s.Pool.Exec(ctx, `UPDATE pgwarden.gateways SET heartbeat_at = now() WHERE id = $1`, id)
	return s.Unreachable(err)
}

// Leave records a clean stop: nobody needs to clean up after id.
func (s *Store) Leave(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE pgwarden.gateways SET stopped_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM pgwarden.cancel_routes WHERE gateway = $1`, id)
		return err
	})
	return s.Unreachable(err)
}

// ClaimDead marks every gateway silent for deadAfter (neither stopped nor
// already found lost) as lost by me and returns them: exactly one live
// gateway claims each, so one cleans up after it.
func (s *Store) ClaimDead(ctx context.Context, me string, deadAfter time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	rows, err := s.Pool.Query(ctx, `UPDATE pgwarden.gateways SET lost_at = now(), lost_by = $1
		WHERE id <> $1 AND stopped_at IS NULL AND lost_at IS NULL
		  AND heartbeat_at < now() - make_interval(secs => $2)
		RETURNING id`, me, deadAfter.Seconds())
	if err != nil {
		return nil, s.Unreachable(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.Unreachable(err)
	}
	if len(ids) > 0 {
		if _, err := s.Pool.Exec(ctx, `DELETE FROM pgwarden.cancel_routes WHERE gateway = ANY($1)`, ids); err != nil {
			return ids, s.Unreachable(err)
		}
	}
	return ids, nil
}

// CancelRoutes shares the cancel keys of one gateway through the store
// (it implements pgwire.CancelRoutes).
type CancelRoutes struct {
	s         *Store
	gateway   string
	advertise string
	dial      time.Duration
}

// CancelRoutes returns the routes of gateway, reachable at advertise.
func (s *Store) CancelRoutes(gateway, advertise string) *CancelRoutes {
	return &CancelRoutes{s: s, gateway: gateway, advertise: advertise, dial: 5 * time.Second}
}

// ErrKeyTaken is a process id another gateway already issued.
var ErrKeyTaken = errors.New("cancel key taken")

// Add records a key issued here; ErrKeyTaken when another gateway holds pid.
func (c *CancelRoutes) Add(pid uint32, secret []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	_, err := c.s.Pool.Exec(ctx, `INSERT INTO pgwarden.cancel_routes (pid, secret, gateway, advertise) VALUES ($1, $2, $3, $4)`,
		int64(pid), secret, c.gateway, c.advertise)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return ErrKeyTaken
	}
	return c.s.Unreachable(err)
}

// Remove forgets a key issued here (its session ended).
func (c *CancelRoutes) Remove(pid uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	_, _ = c.s.Pool.Exec(ctx, `DELETE FROM pgwarden.cancel_routes WHERE pid = $1 AND gateway = $2`, int64(pid), c.gateway)
}

// Forward delivers a CancelRequest whose key this gateway did not issue to
// the gateway that did. It reports whether it sent one. A wrong secret, an
// unknown key or a route back to this gateway sends nothing (no loops).
func (c *CancelRoutes) Forward(pid uint32, secret []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), OpTimeout)
	defer cancel()
	var stored []byte
	var gw, addr string
	err := c.s.Pool.QueryRow(ctx, `SELECT secret, gateway, advertise FROM pgwarden.cancel_routes WHERE pid = $1`, int64(pid)).Scan(&stored, &gw, &addr)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, c.s.Unreachable(err)
	}
	if subtle.ConstantTimeCompare(stored, secret) != 1 || gw == c.gateway || addr == "" {
		return false, nil
	}
	d := net.Dialer{Timeout: c.dial}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, fmt.Errorf("cancel: gateway %s unreachable: %w", gw, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.dial))
	req := pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}
	buf, err := req.Encode(nil)
	if err != nil {
		return false, err
	}
	if _, err := conn.Write(buf); err != nil {
		return false, fmt.Errorf("cancel: write to gateway %s: %w", gw, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1024)) // the gateway closes when done
	return true, nil
}

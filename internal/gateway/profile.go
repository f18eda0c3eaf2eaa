package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/credentials"
	"github.com/pgwarden/pgwarden/internal/analysis"
	"github.com/pgwarden/pgwarden/masking"
	"github.com/pgwarden/pgwarden/pgwire"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

// profile is one connection profile at run time: its server, credential
// provider, policy and masking, and the per-database catalog views its
// sessions mask with. Nothing in it is shared with another profile: two
// databases (of one server or of two) never share a masking catalog, so a
// table OID is only ever looked up in the database it came from.
type profile struct {
	name     string
	upstream config.Upstream
	provider credentials.Provider
	policy   *sqlpolicy.Policy
	// functions is the closed world of functions, per database.
	functions  *analysis.Catalog
	maskCfg    config.Masking
	maskActive bool   // any rule or detector configured
	catalogDSN string // "" : no catalog (every rule applies by column name only where the plan can tell)

	mu  sync.Mutex
	dbs map[string]*dbView
}

// dbView is what sessions of one database of a profile mask with: the
// engine (its statement traces are valid for this database only) and the
// catalog cache of (table OID, attnum) → column for this database.
type dbView struct {
	masker    *masking.Engine
	pgCatalog *masking.PGCatalog // nil without rules or a catalog connection
	pool      *pgxpool.Pool
}

// newProfile builds a profile from its resolved configuration.
func newProfile(ctx context.Context, p config.Profile, log zerolog.Logger) (*profile, error) {
	pr := &profile{
		name: p.Name, upstream: p.Upstream, maskCfg: p.Masking,
		maskActive: len(p.Masking.Rules) > 0 || len(p.Masking.Detectors) > 0,
		dbs:        map[string]*dbView{},
	}
	plog := log.With().Str("profile", p.Name).Logger()
	var err error
	if pr.provider, err = newProvider(ctx, p.Credentials, plog); err != nil {
		return nil, fmt.Errorf("profile %s: credentials: %w", p.Name, err)
	}
	pr.policy = sqlpolicy.NewPolicy(p.Policy)
	pr.catalogDSN = p.Masking.CatalogDSN
	if pr.catalogDSN == "" && p.Credentials.Provider == "native" {
		pr.catalogDSN = p.Credentials.Native.AdminDSN // the profile's own admin connection
	}
	if pr.functions, err = newFunctionCatalog(p.Policy.Functions, pr.catalogDSN, plog); err != nil {
		pr.close()
		return nil, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	// The rules must compile before the first session asks for a view.
	if _, err := masking.New(p.Masking, nil); err != nil {
		pr.close()
		return nil, fmt.Errorf("profile %s: masking: %w", p.Name, err)
	}
	return pr, nil
}

// target is the profile as pgwire routes sessions to it.
func (p *profile) target() pgwire.Target {
	return pgwire.Target{
		Name: p.name, Databases: p.upstream.Databases,
		Upstream: pgwire.Upstream{
			Host: p.upstream.Host, Port: p.upstream.Port,
			SSLMode: p.upstream.SSLMode, ConnectTimeout: p.upstream.ConnectTimeout,
		},
		Provider: p.provider,
		DBRoles:  p.policy.DBRoles,
	}
}

// view returns the masking view of database, creating it on first use.
// Its catalog connection goes to that database of the profile's server
// (the catalog DSN with its database replaced), never to another one.
func (p *profile) view(database string) (*dbView, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v := p.dbs[database]; v != nil {
		return v, nil
	}
	v := &dbView{}
	var cat masking.Catalog
	if p.catalogDSN != "" && len(p.maskCfg.Rules) > 0 {
		pc, err := pgxpool.ParseConfig(p.catalogDSN)
		if err != nil {
			return nil, errors.New("the masking catalog connection (catalog_dsn) is not a valid connection string")
		}
		pc.ConnConfig.Database = database
		pc.MaxConns = 4
		pool, err := pgxpool.NewWithConfig(context.Background(), pc) // connects lazily
		if err != nil {
			return nil, fmt.Errorf("masking catalog: %w", err)
		}
		v.pool = pool
		v.pgCatalog = masking.NewPGCatalog(pool)
		cat = v.pgCatalog
	}
	m, err := masking.New(p.maskCfg, cat)
	if err != nil {
		v.close()
		return nil, fmt.Errorf("masking: %w", err)
	}
	v.masker = m
	// Views are kept while the gateway runs: a session holds its view, and
	// the databases a profile reaches are those its server has (a client
	// must hold a valid token and name an existing database to get one).
	p.dbs[database] = v
	return v, nil
}

// generation changes whenever the view's catalog cache is dropped (DDL
// through the gateway, or expiry): cached row descriptions die with it.
func (v *dbView) generation() uint64 {
	if v.pgCatalog == nil {
		return 0
	}
	return v.pgCatalog.Generation()
}

func (v *dbView) invalidate() {
	if v.pgCatalog != nil {
		v.pgCatalog.Invalidate()
	}
}

func (v *dbView) close() {
	if v.pool != nil {
		v.pool.Close()
	}
}

// checkUpstream reports whether the profile's server accepts TCP connections.
func (p *profile) checkUpstream(ctx context.Context) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.upstream.Host, fmt.Sprint(p.upstream.Port)))
	if err != nil {
		return errors.New("upstream PostgreSQL unreachable")
	}
	return conn.Close()
}

func (p *profile) close() {
	p.mu.Lock()
	for db, v := range p.dbs {
		v.close()
		delete(p.dbs, db)
	}
	p.mu.Unlock()
	if p.provider != nil {
		_ = p.provider.Close()
	}
}

// profileFor finds a recorded session's profile: by name when the record
// has it, else by its database (records written before profiles).
func (g *Gateway) profileFor(name, database string) *profile {
	if p := g.profiles[name]; p != nil {
		return p
	}
	if cp, ok := g.cfg.ProfileFor(database); ok {
		return g.profiles[cp.Name]
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

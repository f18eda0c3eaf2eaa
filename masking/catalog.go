package masking

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ColumnRef names a column a RowDescription field comes from.
type ColumnRef struct {
	Schema, Table, Column string
	TypeOID               uint32
	// ViewDef is the definition (a SELECT) when the relation is a view or a
	// materialized view; Attnum is then the column's position in it.
	ViewDef string
	Attnum  int16
	// Ancestors are the tables this one inherits from or is a partition of
	// ("schema.table"): a rule on a parent covers its partitions.
	Ancestors []string
}

// Catalog maps a RowDescription's (table OID, attribute number) to names.
type Catalog interface {
	Column(ctx context.Context, tableOID uint32, attnum int16) (ColumnRef, bool, error)
}

// ViewResolver is implemented by catalogs that can find views by name, so
// derived tracing can follow a view in a FROM clause to its base tables.
type ViewResolver interface {
	// ViewsNamed returns the definitions of the views or materialized
	// views called name (in schema, or in any schema when schema is "").
	ViewsNamed(ctx context.Context, schema, name string) ([]string, error)
}

// PGCatalog is a Catalog backed by the gateway's own connection pool. It
// caches every relation it has read; Invalidate drops the cache (call it
// when DDL passes through the gateway). An OID it has not seen is fetched
// on demand, so new tables are found without an invalidation.
type PGCatalog struct {
	pool *pgxpool.Pool

	mu    sync.RWMutex
	rels  map[uint32]*relInfo
	views map[string][]string // "schema.name" or ".name" -> definitions
	cols  map[string][]string // same keys -> column names
	anc   map[string][]string // same keys -> ancestors
	gen   uint64
	born  time.Time // of the current cache generation

	// MaxAge bounds how long cached entries live, so DDL that did not pass
	// through this gateway (another gateway, a DBA on the database) is
	// picked up. Default 1 minute; 0 disables expiry.
	MaxAge time.Duration
}

// Generation changes whenever the cache is dropped (Invalidate or expiry);
// the Engine drops its cached statement traces when it changes.
func (c *PGCatalog) Generation() uint64 {
	c.mu.RLock()
	expired := c.MaxAge > 0 && time.Since(c.born) > c.MaxAge
	g := c.gen
	c.mu.RUnlock()
	if expired {
		c.Invalidate()
		c.mu.RLock()
		g = c.gen
		c.mu.RUnlock()
	}
	return g
}

type relInfo struct {
	schema, name string
	viewDef      string
	cols         map[int16]colInfo
	ancestors    []string
}

type colInfo struct {
	name string
	typ  uint32
}

// ColumnLister is implemented by catalogs that can list a table's columns,
// so `*` over a table expands to exact columns in derived tracing.
type ColumnLister interface {
	// TableColumns returns the columns, in order, of table name (in schema,
	// or, when schema is "", of the first such table: public first).
	TableColumns(ctx context.Context, schema, name string) ([]string, error)
}

// AncestorResolver is implemented by catalogs that know table inheritance
// and partitioning, so a rule on a parent also covers a child named in SQL.
type AncestorResolver interface {
	// Ancestors returns "schema.table" of every parent of the tables
	// called name (in schema, or in any schema when schema is "").
	Ancestors(ctx context.Context, schema, name string) ([]string, error)
}

var (
	_ AncestorResolver = (*PGCatalog)(nil)
	_ Catalog          = (*PGCatalog)(nil)
	_ ViewResolver     = (*PGCatalog)(nil)
	_ ColumnLister     = (*PGCatalog)(nil)
)

// NewPGCatalog returns a catalog that queries pg_class, pg_namespace and
// pg_attribute through pool.
func NewPGCatalog(pool *pgxpool.Pool) *PGCatalog {
	return &PGCatalog{pool: pool, rels: map[uint32]*relInfo{}, views: map[string][]string{}, cols: map[string][]string{}, anc: map[string][]string{},
		born: time.Now(), MaxAge: time.Minute}
}

// Invalidate forgets everything cached (after DDL).
func (c *PGCatalog) Invalidate() {
	c.mu.Lock()
	c.rels = map[uint32]*relInfo{}
	c.views = map[string][]string{}
	c.cols = map[string][]string{}
	c.anc = map[string][]string{}
	c.gen++
	c.born = time.Now()
	c.mu.Unlock()
}

const relQuery = `SELECT n.nspname, c.relname,
  CASE WHEN c.relkind IN ('v','m') THEN pg_catalog.pg_get_viewdef(c.oid) ELSE '' END,
  a.attnum, a.attname, a.atttypid
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = $1`

func (c *PGCatalog) load(ctx context.Context, oid uint32) (*relInfo, error) {
	rows, err := c.pool.Query(ctx, relQuery, oid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ri *relInfo
	for rows.Next() {
		var schema, name, def string
		var attnum *int16
		var attname *string
		var typ *uint32
		if err := rows.Scan(&schema, &name, &def, &attnum, &attname, &typ); err != nil {
			return nil, err
		}
		if ri == nil {
			ri = &relInfo{schema: schema, name: name, viewDef: def, cols: map[int16]colInfo{}}
		}
		if attnum != nil {
			ri.cols[*attnum] = colInfo{name: *attname, typ: *typ}
		}
	}
	if err := rows.Err(); err != nil || ri == nil {
		return ri, err
	}
	ri.ancestors, err = c.queryStrings(ctx, ancByOID, oid)
	return ri, err
}

const ancCTE = `WITH RECURSIVE anc(oid) AS (
  SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid IN (%s)
  UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN anc ON i.inhrelid = anc.oid)
SELECT n.nspname || '.' || c.relname FROM anc
JOIN pg_catalog.pg_class c ON c.oid = anc.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`

var (
	ancByOID  = strings.Replace(ancCTE, "%s", "$1::oid", 1)
	ancByName = strings.Replace(ancCTE, "%s", `SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relname = $1 AND ($2 = '' OR n.nspname = $2)`, 1)
)

func (c *PGCatalog) queryStrings(ctx context.Context, sql string, args ...any) ([]string, error) {
	rows, err := c.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Ancestors implements AncestorResolver.
func (c *PGCatalog) Ancestors(ctx context.Context, schema, name string) ([]string, error) {
	key := schema + "." + name
	c.mu.RLock()
	a, ok := c.anc[key]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return a, nil
	}
	a, err := c.queryStrings(ctx, ancByName, name, schema)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.anc[key] = a
	}
	c.mu.Unlock()
	return a, nil
}

// Column implements Catalog.
func (c *PGCatalog) Column(ctx context.Context, oid uint32, attnum int16) (ColumnRef, bool, error) {
	c.Generation() // expire an old cache
	c.mu.RLock()
	ri := c.rels[oid]
	gen := c.gen
	c.mu.RUnlock()
	if ri == nil || (attnum > 0 && ri.cols[attnum].name == "") {
		var err error
		ri, err = c.load(ctx, oid)
		if err != nil {
			return ColumnRef{}, false, err
		}
		if ri == nil {
			return ColumnRef{}, false, nil
		}
		c.mu.Lock()
		if c.gen == gen {
			c.rels[oid] = ri
		}
		c.mu.Unlock()
	}
	col, ok := ri.cols[attnum]
	if !ok {
		return ColumnRef{}, false, nil
	}
	return ColumnRef{Schema: ri.schema, Table: ri.name, Column: col.name, TypeOID: col.typ, ViewDef: ri.viewDef, Attnum: attnum, Ancestors: ri.ancestors}, true, nil
}

const viewQuery = `SELECT pg_catalog.pg_get_viewdef(c.oid)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v','m') AND c.relname = $1 AND ($2 = '' OR n.nspname = $2)`

// ViewsNamed implements ViewResolver. An unqualified name matches views of
// that name in every schema (the client's search_path is unknown).
func (c *PGCatalog) ViewsNamed(ctx context.Context, schema, name string) ([]string, error) {
	key := schema + "." + name
	c.mu.RLock()
	defs, ok := c.views[key]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return defs, nil
	}
	rows, err := c.pool.Query(ctx, viewQuery, name, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	defs = []string{}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.views[key] = defs
	}
	c.mu.Unlock()
	return defs, nil
}

const colsQuery = `WITH r AS (
  SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r','p','f') AND c.relname = $1 AND ($2 = '' OR n.nspname = $2)
  ORDER BY (n.nspname = 'public') DESC, n.nspname LIMIT 1)
SELECT a.attname FROM pg_catalog.pg_attribute a JOIN r ON a.attrelid = r.oid
WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`

// TableColumns implements ColumnLister.
func (c *PGCatalog) TableColumns(ctx context.Context, schema, name string) ([]string, error) {
	key := schema + "." + name
	c.mu.RLock()
	names, ok := c.cols[key]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return names, nil
	}
	rows, err := c.pool.Query(ctx, colsQuery, name, schema)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names = []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.cols[key] = names
	}
	c.mu.Unlock()
	return names, nil
}

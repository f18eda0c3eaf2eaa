package main

// `pgwarden policy check`: least privilege, checked. The database's own
// privileges are the first line of defence, pgwarden's classification the
// second: a db_role of policy.roles should not be able to do, over a direct
// connection that bypasses pgwarden, more than the policy lets its group do
// through pgwarden — and should not read a masked column at all unless the
// group has unmask.
//
// The command only reads the catalog (has_*_privilege, pg_roles, the ACLs)
// through an administrative connection, in a read-only session; it changes
// nothing. Every finding that is a WARN comes with the statement that would
// close it, identifiers quoted by the server's own quote_ident.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sqlpolicy"
)

func policyCheckCmd(g *globals) *cobra.Command {
	var cfgPath, dsn, prof string
	var timeout time.Duration
	var opt checkOptions
	cmd := &cobra.Command{
		Use:   "check --config FILE [--profile P] [--dsn DSN]",
		Short: "compare each policy.roles db_role's privileges in the database with the group's actions and masking; exit 1 on any WARN",
		Long: `Connects with masking.catalog_dsn (else credentials.native.admin_dsn, or --dsn)
and reports, for every group of policy.roles with a db_role: masked columns the
role could read directly (bypassing pgwarden) although the group has no unmask,
table, schema and database privileges and role attributes beyond the group's
actions, and db_roles that do not exist. Every WARN comes with the statement that
would close it. Exit status 1 when there is any WARN.

Revoking SELECT on a masked column makes the database refuse it to the role
outright: through pgwarden, too, the group then gets permission denied instead
of masked values. A group that needs masked values keeps the grant; run with
--allow-masked-reads to report such columns as notes (and keep the db_role
NOLOGIN and granted to no one but pgwarden).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadRequiredConfig(cfgPath)
			if err != nil {
				return err
			}
			if cfg, err = profileConfig(cfg, prof); err != nil {
				return err
			}
			d, err := checkDSN(cfg, dsn)
			if err != nil {
				return err
			}
			opt.timeout = timeout
			warns, err := runPolicyCheck(cmd.Context(), g.stdout, cfg, d, opt)
			if err != nil {
				return err
			}
			if warns > 0 {
				return fmt.Errorf("policy check: %d warning(s)", warns)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file")
	cmd.Flags().StringVar(&prof, "profile", "", "connection profile to check (required with several under upstreams:)")
	cmd.Flags().StringVar(&dsn, "dsn", "", "administrative connection (default: masking.catalog_dsn, else credentials.native.admin_dsn)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "deadline of the connection and of each query")
	cmd.Flags().BoolVar(&opt.allowMaskedReads, "allow-masked-reads", false, "report masked columns a db_role can SELECT as notes, not warnings (for groups that need masked values through pgwarden)")
	return cmd
}

// checkDSN picks the administrative connection: --dsn, else
// masking.catalog_dsn, else credentials.native.admin_dsn.
func checkDSN(cfg *config.Config, flag string) (string, error) {
	switch {
	case flag != "":
		return flag, nil
	case cfg.Masking.CatalogDSN != "":
		return cfg.Masking.CatalogDSN, nil
	case cfg.Credentials.Native.AdminDSN != "":
		return cfg.Credentials.Native.AdminDSN, nil
	}
	return "", usageError{errors.New("policy check needs an administrative connection to the database: set masking.catalog_dsn or credentials.native.admin_dsn in the configuration, or pass --dsn")}
}

// checkOptions tune the check.
type checkOptions struct {
	timeout          time.Duration
	allowMaskedReads bool // masked columns a role can SELECT are notes, not warnings
}

// checkDB runs every query under its own deadline.
type checkDB struct {
	conn    *pgx.Conn
	timeout time.Duration
}

// each runs sql and calls scan for every row, within the deadline.
func (d *checkDB) each(ctx context.Context, scan func(pgx.Rows) error, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	rows, err := d.conn.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (d *checkDB) row(ctx context.Context, sql string, args []any, dst ...any) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	return d.conn.QueryRow(ctx, sql, args...).Scan(dst...)
}

func (d *checkDB) strings(ctx context.Context, sql string, args ...any) ([]string, error) {
	var out []string
	err := d.each(ctx, func(r pgx.Rows) error {
		var s string
		if err := r.Scan(&s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	}, sql, args...)
	return out, err
}

// A relation (table, partitioned table, view, materialized view, foreign
// table) outside the system schemas.
type chkRel struct {
	oid          uint32
	schema, name string
	qname        string // quoted schema.name
	kind         string // relkind
	invoker      bool   // a view with security_invoker
	ancestors    [][2]string
	cols         []chkCol
}

type chkCol struct {
	attnum int16
	name   string
	qname  string
}

func (r *chkRel) label() string { return r.schema + "." + r.name }

// objectKeyword names the relation kind in ALTER ... OWNER TO.
func (r *chkRel) objectKeyword() string {
	switch r.kind {
	case "v":
		return "VIEW"
	case "m":
		return "MATERIALIZED VIEW"
	case "f":
		return "FOREIGN TABLE"
	}
	return "TABLE"
}

// A masked column: a column some masking rule covers.
type maskedCol struct {
	rel  *chkRel
	col  chkCol
	rule int // index into masking.rules
}

// A view or materialized view whose definition reads a masked column (or
// another such view).
type taintedView struct {
	rel  *chkRel
	what string // the masked column (or view) it reads, for the message
}

const userSchemas = `n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'`

const relsQuery = `WITH RECURSIVE anc(child, parent) AS (
  SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits
  UNION SELECT anc.child, i.inhparent FROM anc JOIN pg_catalog.pg_inherits i ON i.inhrelid = anc.parent)
SELECT c.oid, n.nspname, c.relname,
  pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
  c.relkind::text,
  coalesce((SELECT lower(o.option_value) FROM pg_catalog.pg_options_to_table(c.reloptions) o WHERE o.option_name = 'security_invoker'), ''),
  ARRAY(SELECT pn.nspname FROM anc JOIN pg_catalog.pg_class p ON p.oid = anc.parent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace WHERE anc.child = c.oid ORDER BY p.oid),
  ARRAY(SELECT p.relname::text FROM anc JOIN pg_catalog.pg_class p ON p.oid = anc.parent WHERE anc.child = c.oid ORDER BY p.oid)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r','p','v','m','f') AND ` + userSchemas + `
ORDER BY n.nspname, c.relname`

const colsQuery = `SELECT a.attrelid, a.attnum, a.attname, pg_catalog.quote_ident(a.attname)
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f') AND ` + userSchemas + `
ORDER BY a.attrelid, a.attnum`

// viewDepsQuery: the columns each view's or materialized view's definition reads.
const viewDepsQuery = `SELECT DISTINCT rw.ev_class, d.refobjid, d.refobjsubid
FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite rw ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> rw.ev_class AND d.refobjsubid > 0`

// The ACL entries of an object that reach a role (its own grants, PUBLIC's,
// and those of roles it inherits from), without the owner's own entry.
// $1: the object's ACL and owner (a subquery's two columns), $2: role oid.
const aclSources = `SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END, a.grantee = $2::oid, a.privilege_type
FROM (%s) o(acl, owner) CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) a
LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
WHERE a.grantee <> o.owner AND (a.grantee = 0 OR pg_catalog.pg_has_role($2::oid, a.grantee, 'USAGE'))
ORDER BY 1`

var (
	relACL    = fmt.Sprintf(aclSources, `SELECT coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner)), c.relowner FROM pg_catalog.pg_class c WHERE c.oid = $1`)
	schemaACL = fmt.Sprintf(aclSources, `SELECT coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner)), n.nspowner FROM pg_catalog.pg_namespace n WHERE n.oid = $1`)
	dbACL     = fmt.Sprintf(aclSources, `SELECT coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba)), d.datdba FROM pg_catalog.pg_database d WHERE d.oid = $1`)
)

// colACL: column-level grants of SELECT on relation $1's columns $3 reaching role $2.
const colACL = `SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END, a.grantee = $2::oid, pg_catalog.quote_ident(at.attname)
FROM pg_catalog.pg_attribute at CROSS JOIN LATERAL pg_catalog.aclexplode(at.attacl) a
LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
WHERE at.attrelid = $1::oid AND at.attnum = ANY($3::int2[]) AND a.privilege_type = 'SELECT'
  AND (a.grantee = 0 OR pg_catalog.pg_has_role($2::oid, a.grantee, 'USAGE'))
ORDER BY 1, at.attnum`

// grantSource is one way a role holds a privilege.
type grantSource struct {
	grantee string // quoted role name, or PUBLIC
	self    bool   // the role itself
}

func (s grantSource) describe(role string) string {
	switch {
	case s.self:
		return "granted to " + role
	case s.grantee == "PUBLIC":
		return "granted to PUBLIC, i.e. every role"
	}
	return "granted to " + s.grantee + ", which " + role + " inherits from"
}

// checkRole is the db_role of a group, as the catalog has it.
type checkRole struct {
	oid    uint32
	name   string // as configured
	q      string // quote_ident
	login  bool
	attrs  []string // SUPERUSER, CREATEROLE, ... it has
	super  bool
	exists bool
}

var roleAttrs = []struct{ attr, col string }{
	{"SUPERUSER", "rolsuper"}, {"CREATEROLE", "rolcreaterole"}, {"CREATEDB", "rolcreatedb"},
	{"BYPASSRLS", "rolbypassrls"}, {"REPLICATION", "rolreplication"},
}

// checker holds what every group's section needs.
type checker struct {
	d        *checkDB
	w        io.Writer
	cfg      *config.Config
	dbOID    uint32
	dbName   string // quoted
	rels     []*chkRel
	masked   []maskedCol
	maskedBy map[uint32]map[int16]bool
	views    []taintedView
	warns    int
	infos    int
	fixed    map[string]bool // fix statements printed in the current group
	// maskedKind is the kind of a masked-column finding: WARN, or info
	// with --allow-masked-reads.
	maskedKind string
	maskedHits int // masked-column findings in the current group
}

func (c *checker) line(kind, format string, args ...any) {
	switch kind {
	case "WARN":
		c.warns++
	case "info":
		c.infos++
	}
	fmt.Fprintf(c.w, "%-5s %s\n", kind, fmt.Sprintf(format, args...))
}

// fix prints a statement that closes the finding above it, once per group
// (a grant often explains several findings).
func (c *checker) fix(stmt string) {
	if c.fixed[stmt] {
		return
	}
	c.fixed[stmt] = true
	fmt.Fprintf(c.w, "      fix: %s\n", stmt)
}

// runPolicyCheck connects with dsn, writes the report to w and returns the
// number of WARN lines.
func runPolicyCheck(ctx context.Context, w io.Writer, cfg *config.Config, dsn string, opt checkOptions) (int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	timeout := opt.timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	pcfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return 0, usageError{fmt.Errorf("policy check: invalid DSN: %v", redactDSNError(err))}
	}
	// Belt and braces: this command only reads.
	pcfg.RuntimeParams["default_transaction_read_only"] = "on"
	pcfg.RuntimeParams["application_name"] = "pgwarden policy check"
	cctx, cancel := context.WithTimeout(ctx, timeout)
	conn, err := pgx.ConnectConfig(cctx, pcfg)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("policy check: connecting to %s:%d/%s as %s: %w", pcfg.Host, pcfg.Port, pcfg.Database, pcfg.User, err)
	}
	defer conn.Close(context.Background())
	c := &checker{d: &checkDB{conn: conn, timeout: timeout}, w: w, cfg: cfg, maskedBy: map[uint32]map[int16]bool{}, maskedKind: "WARN"}
	if opt.allowMaskedReads {
		c.maskedKind = "info"
	}
	if err := c.run(ctx); err != nil {
		return c.warns, fmt.Errorf("policy check: %w", err)
	}
	return c.warns, nil
}

// redactDSNError keeps a password in a malformed DSN out of the message.
func redactDSNError(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "@") || strings.Contains(strings.ToLower(msg), "password") {
		return "cannot parse the connection string"
	}
	return msg
}

func (c *checker) run(ctx context.Context) error {
	var db, user, version string
	if err := c.d.row(ctx, `SELECT d.oid, pg_catalog.quote_ident(d.datname), d.datname, current_user, pg_catalog.current_setting('server_version')
		FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()`, nil, &c.dbOID, &c.dbName, &db, &user, &version); err != nil {
		return err
	}
	fmt.Fprintf(c.w, "pgwarden policy check: database %s as %s (PostgreSQL %s)\n", db, user, version)
	var others []string
	for _, x := range c.cfg.Upstream.Databases {
		if x != db {
			others = append(others, x)
		}
	}
	if len(others) > 0 {
		c.line("info", "upstream.databases also lists %s: tables there are not checked by this run (run again with --dsn naming each)", strings.Join(others, ", "))
	}
	if err := c.loadRelations(ctx); err != nil {
		return err
	}
	c.resolveRules(db)
	if err := c.traceViews(ctx); err != nil {
		return err
	}

	groups := make([]string, 0, len(c.cfg.Policy.Roles))
	for name := range c.cfg.Policy.Roles {
		groups = append(groups, name)
	}
	sort.Strings(groups)
	checked := 0
	for _, gname := range groups {
		r := c.cfg.Policy.Roles[gname]
		if r.DBRole == "" {
			fmt.Fprintf(c.w, "\ngroup %s: no db_role\n", gname)
			c.line("info", "group %s has no db_role: nothing to check", gname)
			continue
		}
		checked++
		if err := c.checkGroup(ctx, gname, r); err != nil {
			return fmt.Errorf("group %s: %w", gname, err)
		}
	}
	fmt.Fprintf(c.w, "\nsummary: %d group(s) checked, %d warning(s), %d note(s)\n", checked, c.warns, c.infos)
	return nil
}

func (c *checker) loadRelations(ctx context.Context) error {
	byOID := map[uint32]*chkRel{}
	err := c.d.each(ctx, func(r pgx.Rows) error {
		rel := &chkRel{}
		var inv string
		var ansp, anames []string
		if err := r.Scan(&rel.oid, &rel.schema, &rel.name, &rel.qname, &rel.kind, &inv, &ansp, &anames); err != nil {
			return err
		}
		rel.invoker = rel.kind == "v" && (inv == "true" || inv == "on" || inv == "yes" || inv == "1")
		for i := range ansp {
			if i < len(anames) {
				rel.ancestors = append(rel.ancestors, [2]string{ansp[i], anames[i]})
			}
		}
		c.rels = append(c.rels, rel)
		byOID[rel.oid] = rel
		return nil
	}, relsQuery)
	if err != nil {
		return err
	}
	return c.d.each(ctx, func(r pgx.Rows) error {
		var oid uint32
		var col chkCol
		if err := r.Scan(&oid, &col.attnum, &col.name, &col.qname); err != nil {
			return err
		}
		if rel := byOID[oid]; rel != nil {
			rel.cols = append(rel.cols, col)
		}
		return nil
	}, colsQuery)
}

// ruleTarget splits a rule as the masking engine does: table "" = any
// table, a table without a schema = any schema; names compare case-insensitively.
func ruleTarget(r config.MaskRule) (schema, table, column string) {
	if t := strings.ToLower(r.Table); t != "" {
		if dot := strings.LastIndexByte(t, '.'); dot >= 0 {
			schema, table = t[:dot], t[dot+1:]
		} else {
			table = t
		}
	}
	return schema, table, strings.ToLower(r.Column)
}

// ruleLabel names a rule as configured.
func ruleLabel(r config.MaskRule) string {
	switch {
	case r.Table == "":
		return r.Column + ", any table"
	case !strings.Contains(r.Table, "."):
		return r.Table + "." + r.Column + ", any schema"
	}
	return r.Table + "." + r.Column
}

func ruleCoversRel(schema, table, rs, rt string) bool {
	return (rt == "" || strings.EqualFold(rt, table)) && (rs == "" || strings.EqualFold(rs, schema))
}

// resolveRules finds the columns each rule covers (a rule on a parent
// covers its partitions and inheritance children) and reports rules that
// cover nothing in this database.
func (c *checker) resolveRules(db string) {
	type best struct {
		rule, spec int
	}
	found := map[[2]uint32]best{} // (rel oid, attnum) -> most specific rule
	for i, rule := range c.cfg.Masking.Rules {
		rs, rt, rc := ruleTarget(rule)
		spec := 1
		if rs != "" {
			spec = 3
		} else if rt != "" {
			spec = 2
		}
		tableSeen, colSeen := false, false
		for _, rel := range c.rels {
			covers := ruleCoversRel(rel.schema, rel.name, rs, rt)
			for _, a := range rel.ancestors {
				covers = covers || ruleCoversRel(a[0], a[1], rs, rt)
			}
			if !covers {
				continue
			}
			tableSeen = true
			for _, col := range rel.cols {
				if !strings.EqualFold(col.name, rc) {
					continue
				}
				colSeen = true
				k := [2]uint32{rel.oid, uint32(uint16(col.attnum))}
				if b, ok := found[k]; !ok || spec > b.spec {
					found[k] = best{i, spec}
				}
			}
		}
		switch {
		case colSeen:
		case rt == "":
			c.line("info", "masking.rules[%d] (%s): not found: no column %s in database %s", i, ruleLabel(rule), rc, db)
		case !tableSeen:
			c.line("info", "masking.rules[%d] (%s): not found: no table %s in database %s", i, ruleLabel(rule), rule.Table, db)
		default:
			c.line("info", "masking.rules[%d] (%s): not found: table %s has no column %s in database %s", i, ruleLabel(rule), rule.Table, rc, db)
		}
	}
	for _, rel := range c.rels {
		for _, col := range rel.cols {
			if b, ok := found[[2]uint32{rel.oid, uint32(uint16(col.attnum))}]; ok {
				c.masked = append(c.masked, maskedCol{rel: rel, col: col, rule: b.rule})
				if c.maskedBy[rel.oid] == nil {
					c.maskedBy[rel.oid] = map[int16]bool{}
				}
				c.maskedBy[rel.oid][col.attnum] = true
			}
		}
	}
}

// traceViews finds the views and materialized views whose definition reads
// a masked column, directly or through another view. (A whole-row reference
// such as SELECT c::text FROM customers c records no column dependency and
// is not found.)
func (c *checker) traceViews(ctx context.Context) error {
	type dep struct {
		ref uint32
		att int16
	}
	deps := map[uint32][]dep{}
	err := c.d.each(ctx, func(r pgx.Rows) error {
		var v, ref uint32
		var att int16
		if err := r.Scan(&v, &ref, &att); err != nil {
			return err
		}
		deps[v] = append(deps[v], dep{ref, att})
		return nil
	}, viewDepsQuery)
	if err != nil {
		return err
	}
	byOID := map[uint32]*chkRel{}
	for _, r := range c.rels {
		byOID[r.oid] = r
	}
	colName := func(rel *chkRel, att int16) string {
		for _, col := range rel.cols {
			if col.attnum == att {
				return col.name
			}
		}
		return fmt.Sprint(att)
	}
	tainted := map[uint32]string{}
	for changed := true; changed; {
		changed = false
		for _, rel := range c.rels {
			if (rel.kind != "v" && rel.kind != "m") || tainted[rel.oid] != "" {
				continue
			}
			for _, d := range deps[rel.oid] {
				ref := byOID[d.ref]
				if ref == nil {
					continue
				}
				if c.maskedBy[d.ref][d.att] {
					tainted[rel.oid] = ref.label() + "." + colName(ref, d.att)
				} else if w := tainted[d.ref]; w != "" {
					tainted[rel.oid] = ref.label() + " (which reads " + w + ")"
				}
				if tainted[rel.oid] != "" {
					changed = true
					break
				}
			}
		}
	}
	for _, rel := range c.rels {
		// A security_invoker view reads with its reader's own privileges:
		// the checks of the relations under it cover it.
		if w := tainted[rel.oid]; w != "" && !rel.invoker {
			c.views = append(c.views, taintedView{rel: rel, what: w})
		}
	}
	return nil
}

// groupActions expands a group's actions ("all" = every action).
func groupActions(r config.Role) map[sqlpolicy.Action]bool {
	out := map[sqlpolicy.Action]bool{sqlpolicy.ActionSession: true}
	for _, a := range r.Actions {
		if a == sqlpolicy.All {
			for _, x := range sqlpolicy.Actions() {
				out[x] = true
			}
			continue
		}
		if act, ok := sqlpolicy.ParseAction(a); ok {
			out[act] = true
		}
	}
	return out
}

func actionList(r config.Role) string {
	if len(r.Actions) == 0 {
		return "(none)"
	}
	return strings.Join(r.Actions, ", ")
}

// privNeeds maps a privilege to the actions any one of which justifies it.
var privNeeds = []struct {
	priv  string
	needs []sqlpolicy.Action
}{
	{"INSERT", []sqlpolicy.Action{sqlpolicy.ActionInsert}},
	{"UPDATE", []sqlpolicy.Action{sqlpolicy.ActionUpdate}},
	{"DELETE", []sqlpolicy.Action{sqlpolicy.ActionDelete, sqlpolicy.ActionBulkDelete}},
	{"TRUNCATE", []sqlpolicy.Action{sqlpolicy.ActionTruncate}},
}

func allowedAny(acts map[sqlpolicy.Action]bool, needs []sqlpolicy.Action) bool {
	for _, n := range needs {
		if acts[n] {
			return true
		}
	}
	return false
}

func needsText(needs []sqlpolicy.Action) string {
	s := make([]string, len(needs))
	for i, n := range needs {
		s[i] = string(n)
	}
	return strings.Join(s, " or ")
}

func (c *checker) lookupRole(ctx context.Context, name string) (*checkRole, error) {
	ro := &checkRole{name: name}
	var flags [5]bool
	err := c.d.row(ctx, `SELECT oid, pg_catalog.quote_ident(rolname), rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication
		FROM pg_catalog.pg_roles WHERE rolname = $1`, []any{name},
		&ro.oid, &ro.q, &ro.login, &flags[0], &flags[1], &flags[2], &flags[3], &flags[4])
	if errors.Is(err, pgx.ErrNoRows) {
		return ro, nil
	}
	if err != nil {
		return nil, err
	}
	ro.exists = true
	for i, f := range flags {
		if f {
			ro.attrs = append(ro.attrs, roleAttrs[i].attr)
		}
	}
	ro.super = flags[0]
	return ro, nil
}

func (c *checker) checkGroup(ctx context.Context, gname string, r config.Role) error {
	c.fixed = map[string]bool{}
	c.maskedHits = 0
	acts := groupActions(r)
	unmask := ""
	if r.Unmask {
		unmask = ", unmask"
	}
	fmt.Fprintf(c.w, "\ngroup %s: db_role %s, actions %s%s\n", gname, r.DBRole, actionList(r), unmask)
	ro, err := c.lookupRole(ctx, r.DBRole)
	if err != nil {
		return err
	}
	if !ro.exists {
		q, err := c.quoteIdent(ctx, r.DBRole)
		if err != nil {
			return err
		}
		c.line("WARN", "db_role %s does not exist: sessions of group %s cannot get a database credential (or policy.roles.%s.db_role is misspelt)", r.DBRole, gname, gname)
		c.fix("CREATE ROLE " + q + " NOLOGIN;")
		return nil
	}
	if ro.login {
		c.line("info", "%s can log in (LOGIN): a direct connection as it bypasses pgwarden, so its privileges below are what such a connection gets", ro.q)
	} else {
		c.line("info", "%s is NOLOGIN: it is reached through pgwarden's per-session roles and any role granted it", ro.q)
	}
	if err := c.checkAttributes(ctx, gname, ro, acts); err != nil {
		return err
	}
	if ro.super {
		c.checkSuperuser(gname, ro, r, acts)
		return nil
	}
	if err := c.checkMasked(ctx, ro, r); err != nil {
		return err
	}
	if acts[sqlpolicy.ActionInsert] && acts[sqlpolicy.ActionUpdate] && acts[sqlpolicy.ActionDelete] && acts[sqlpolicy.ActionTruncate] && acts[sqlpolicy.ActionDDL] {
		c.line("ok", "the policy gives group %s insert, update, delete, truncate and ddl: no table or schema privilege exceeds it", gname)
		return nil
	}
	n := c.warns
	if err := c.checkTables(ctx, gname, ro, acts); err != nil {
		return err
	}
	if err := c.checkCreate(ctx, gname, ro, acts); err != nil {
		return err
	}
	if c.warns == n {
		c.line("ok", "table, schema and database privileges of %s are within group %s's actions", ro.q, gname)
	}
	return nil
}

func (c *checker) quoteIdent(ctx context.Context, s string) (string, error) {
	var q string
	err := c.d.row(ctx, `SELECT pg_catalog.quote_ident($1)`, []any{s}, &q)
	return q, err
}

// checkAttributes: role attributes, and roles it can SET ROLE to that have
// them or are predefined roles of server files and programs, need admin.
func (c *checker) checkAttributes(ctx context.Context, gname string, ro *checkRole, acts map[sqlpolicy.Action]bool) error {
	admin := acts[sqlpolicy.ActionAdmin]
	for _, a := range ro.attrs {
		if admin {
			c.line("ok", "%s has %s: group %s has action admin", ro.q, a, gname)
			continue
		}
		c.line("WARN", "%s has %s, which needs action admin: group %s lacks it", ro.q, a, gname)
		c.fix(fmt.Sprintf("ALTER ROLE %s NO%s;", ro.q, a))
	}
	var found bool
	err := c.d.each(ctx, func(rows pgx.Rows) error {
		var parent, target string
		var f [5]bool
		if err := rows.Scan(&parent, &target, &f[0], &f[1], &f[2], &f[3], &f[4]); err != nil {
			return err
		}
		var what []string
		for i, x := range f {
			if x {
				what = append(what, roleAttrs[i].attr)
			}
		}
		if len(what) == 0 {
			what = []string{"server-side file, program or signal powers"}
		}
		found = true
		if admin {
			c.line("ok", "%s is a member of %s (%s): group %s has action admin", ro.q, target, strings.Join(what, ", "), gname)
			return nil
		}
		via := ""
		if parent != target {
			via = " through " + parent
		}
		c.line("WARN", "%s is a member of %s%s, which has %s (SET ROLE %s), needing action admin: group %s lacks it", ro.q, target, via, strings.Join(what, ", "), target, gname)
		c.fix(fmt.Sprintf("REVOKE %s FROM %s;", parent, ro.q))
		return nil
	}, `SELECT pg_catalog.quote_ident(p.rolname), pg_catalog.quote_ident(t.rolname), t.rolsuper, t.rolcreaterole, t.rolcreatedb, t.rolbypassrls, t.rolreplication
		FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles p ON p.oid = m.roleid
		JOIN pg_catalog.pg_roles t ON pg_catalog.pg_has_role(p.oid, t.oid, 'MEMBER')
		WHERE m.member = $1::oid AND (t.rolsuper OR t.rolcreaterole OR t.rolcreatedb OR t.rolbypassrls OR t.rolreplication
		   OR t.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program', 'pg_signal_backend'))
		ORDER BY 1, 2`, ro.oid)
	if err != nil {
		return err
	}
	if len(ro.attrs) == 0 && !found {
		c.line("ok", "%s has no role attribute needing admin (SUPERUSER, CREATEROLE, CREATEDB, BYPASSRLS, REPLICATION)", ro.q)
	}
	return nil
}

// checkSuperuser: a superuser passes every privilege check, so there is no
// grant to revoke — only the attribute. When checkAttributes has already
// warned about it (the group lacks admin), its consequences are notes, so
// one problem is not counted three times.
func (c *checker) checkSuperuser(gname string, ro *checkRole, r config.Role, acts map[sqlpolicy.Action]bool) {
	fix := fmt.Sprintf("ALTER ROLE %s NOSUPERUSER;", ro.q)
	kind := "WARN"
	if !acts[sqlpolicy.ActionAdmin] {
		kind = "info" // the SUPERUSER WARN above, and its fix, cover it
	}
	if len(c.masked) > 0 || len(c.views) > 0 {
		if r.Unmask {
			c.line("ok", "%s is SUPERUSER and reads every masked column: group %s has unmask", ro.q, gname)
		} else {
			c.line(kind, "%s is SUPERUSER: a direct connection as it reads all %d masked column(s) unmasked; group %s has no unmask", ro.q, len(c.masked), gname)
			c.fix(fix)
		}
	}
	var missing []string
	for _, p := range privNeeds {
		if !allowedAny(acts, p.needs) {
			missing = append(missing, p.priv)
		}
	}
	if !acts[sqlpolicy.ActionDDL] {
		missing = append(missing, "CREATE")
	}
	if len(missing) > 0 {
		c.line(kind, "%s is SUPERUSER: it holds %s on everything, beyond group %s's actions", ro.q, strings.Join(missing, ", "), gname)
		c.fix(fix)
	} else {
		c.line("ok", "%s is SUPERUSER: its table privileges are within group %s's actions", ro.q, gname)
	}
}

// fixes collects statements in order without duplicates.
type fixes struct {
	seen map[string]bool
	list []string
}

func (f *fixes) add(s string) {
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	if !f.seen[s] {
		f.seen[s] = true
		f.list = append(f.list, s)
	}
}

// relSources returns the ACL entries of relation oid that reach the role,
// by privilege type.
func (c *checker) relSources(ctx context.Context, acl string, obj, role uint32) (map[string][]grantSource, error) {
	out := map[string][]grantSource{}
	err := c.d.each(ctx, func(r pgx.Rows) error {
		var s grantSource
		var priv string
		if err := r.Scan(&s.grantee, &s.self, &priv); err != nil {
			return err
		}
		out[priv] = append(out[priv], s)
		return nil
	}, acl, obj, role)
	return out, err
}

// ownsRel reports whether role is, or inherits from, the owner of obj.
func (c *checker) ownsRel(ctx context.Context, rel, role uint32) (bool, string, error) {
	var owns bool
	var owner string
	err := c.d.row(ctx, `SELECT pg_catalog.pg_has_role($2::oid, c.relowner, 'USAGE'), pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner))
		FROM pg_catalog.pg_class c WHERE c.oid = $1::oid`, []any{rel, role}, &owns, &owner)
	return owns, owner, err
}

// predefinedVia returns the roles granted directly to role through which it
// inherits the predefined role name ("" when it does not).
func (c *checker) predefinedVia(ctx context.Context, role uint32, name string) ([]string, error) {
	return c.d.strings(ctx, `SELECT pg_catalog.quote_ident(p.rolname) FROM pg_catalog.pg_auth_members m
		JOIN pg_catalog.pg_roles p ON p.oid = m.roleid
		WHERE m.member = $1::oid AND pg_catalog.pg_has_role($1::oid, $2::name, 'USAGE') AND pg_catalog.pg_has_role(p.oid, $2::name, 'USAGE')
		ORDER BY 1`, role, name)
}

// checkMasked: masked columns (and views over them) the role can SELECT.
func (c *checker) checkMasked(ctx context.Context, ro *checkRole, r config.Role) error {
	if len(c.masked) == 0 && len(c.views) == 0 {
		return nil
	}
	rels := make([]uint32, len(c.masked))
	atts := make([]int16, len(c.masked))
	for i, m := range c.masked {
		rels[i], atts[i] = m.rel.oid, m.col.attnum
	}
	readable := make([]bool, 0, len(c.masked))
	err := c.d.each(ctx, func(rows pgx.Rows) error {
		var ok bool
		if err := rows.Scan(&ok); err != nil {
			return err
		}
		readable = append(readable, ok)
		return nil
	}, `SELECT pg_catalog.has_column_privilege($1::oid, x.rel, x.att, 'SELECT')
		FROM unnest($2::oid[], $3::int2[]) WITH ORDINALITY AS x(rel, att, i) ORDER BY x.i`, ro.oid, rels, atts)
	if err != nil {
		return err
	}
	var readAll []string // pg_read_all_data route, if any
	if !r.Unmask {
		if readAll, err = c.predefinedVia(ctx, ro.oid, "pg_read_all_data"); err != nil {
			return err
		}
	}
	// Walk masked columns relation by relation.
	for i := 0; i < len(c.masked); {
		j := i
		for j < len(c.masked) && c.masked[j].rel == c.masked[i].rel {
			j++
		}
		if err := c.maskedRel(ctx, ro, r, c.masked[i:j], readable[i:j], readAll); err != nil {
			return err
		}
		i = j
	}
	for _, v := range c.views {
		var ok bool
		if err := c.d.row(ctx, `SELECT pg_catalog.has_any_column_privilege($1::oid, $2::oid, 'SELECT')`, []any{ro.oid, v.rel.oid}, &ok); err != nil {
			return err
		}
		kind := "view"
		if v.rel.kind == "m" {
			kind = "materialized view"
		}
		switch {
		case !ok:
			c.line("ok", "%s %s reads %s: %s cannot SELECT it", kind, v.rel.qname, v.what, ro.q)
			continue
		case r.Unmask:
			c.line("ok", "%s %s reads %s: %s can SELECT it; the group has unmask", kind, v.rel.qname, v.what, ro.q)
			continue
		}
		var fx fixes
		srcs, err := c.selectSources(ctx, ro, v.rel, nil, readAll, &fx, false)
		if err != nil {
			return err
		}
		c.line(c.maskedKind, "%s %s reads %s: %s can SELECT it (%s), so a direct connection as %s bypassing pgwarden sees the data unmasked", kind, v.rel.qname, v.what, ro.q, srcs, ro.q)
		c.maskedHits++
		for _, s := range fx.list {
			c.fix(s)
		}
	}
	if c.maskedHits > 0 {
		c.line("info", "revoking SELECT on masked columns makes the database refuse them to %s outright: queries of this group through pgwarden that read them then fail (permission denied) instead of returning masked values; if the group needs masked values, keep the grants, keep %s NOLOGIN and granted to no one but pgwarden, and run with --allow-masked-reads", ro.q, ro.q)
	}
	return nil
}

func (c *checker) maskedRel(ctx context.Context, ro *checkRole, r config.Role, cols []maskedCol, readable []bool, readAll []string) error {
	rel := cols[0].rel
	var fx fixes
	var warns []string
	for k, m := range cols {
		rule := c.cfg.Masking.Rules[m.rule]
		desc := fmt.Sprintf("%s.%s (masking.rules[%d], method %s", rel.qname, m.col.qname, m.rule, rule.Method)
		if len(rule.JSONKeys) > 0 {
			desc += ", json_keys " + strings.Join(rule.JSONKeys, ", ") + "; a direct reader gets the whole value"
		}
		desc += ")"
		switch {
		case !readable[k]:
			c.line("ok", "%s: %s cannot SELECT it", desc, ro.q)
			continue
		case r.Unmask:
			c.line("ok", "%s: %s can SELECT it; the group has unmask", desc, ro.q)
			continue
		}
		srcs, err := c.selectSources(ctx, ro, rel, []int16{m.col.attnum}, readAll, &fx, true)
		if err != nil {
			return err
		}
		warns = append(warns, fmt.Sprintf("%s: %s can SELECT it (%s); pgwarden masks it, but a direct connection as %s bypassing pgwarden would see it", desc, ro.q, srcs, ro.q))
	}
	// The WARNs of a relation together, then what closes them all.
	for _, w := range warns {
		c.line(c.maskedKind, "%s", w)
		c.maskedHits++
	}
	for _, s := range fx.list {
		c.fix(s)
	}
	return nil
}

// selectSources explains how the role holds SELECT on rel (on the columns
// atts; nil: any column) and adds the statements that remove it to fx.
// keepUnmasked: after revoking a table-level grant, grant the columns no
// rule masks back to the same grantee.
func (c *checker) selectSources(ctx context.Context, ro *checkRole, rel *chkRel, atts []int16, readAll []string, fx *fixes, keepUnmasked bool) (string, error) {
	var why []string
	tbl, err := c.relSources(ctx, relACL, rel.oid, ro.oid)
	if err != nil {
		return "", err
	}
	for _, s := range tbl["SELECT"] {
		why = append(why, "table-level SELECT "+s.describe(ro.q))
		fx.add(fmt.Sprintf("REVOKE SELECT ON %s FROM %s;", rel.qname, s.grantee))
		if keepUnmasked {
			var keep []string
			for _, col := range rel.cols {
				if !c.maskedBy[rel.oid][col.attnum] {
					keep = append(keep, col.qname)
				}
			}
			if len(keep) > 0 {
				fx.add(fmt.Sprintf("GRANT SELECT (%s) ON %s TO %s;", strings.Join(keep, ", "), rel.qname, s.grantee))
			}
		}
	}
	if atts == nil {
		atts = make([]int16, len(rel.cols))
		for i, col := range rel.cols {
			atts[i] = col.attnum
		}
	}
	type colGrant struct {
		src  grantSource
		cols []string
	}
	var cg []*colGrant
	err = c.d.each(ctx, func(rows pgx.Rows) error {
		var s grantSource
		var col string
		if err := rows.Scan(&s.grantee, &s.self, &col); err != nil {
			return err
		}
		if len(cg) == 0 || cg[len(cg)-1].src != s {
			cg = append(cg, &colGrant{src: s})
		}
		cg[len(cg)-1].cols = append(cg[len(cg)-1].cols, col)
		return nil
	}, colACL, rel.oid, ro.oid, atts)
	if err != nil {
		return "", err
	}
	for _, g := range cg {
		why = append(why, "column-level SELECT "+g.src.describe(ro.q))
		fx.add(fmt.Sprintf("REVOKE SELECT (%s) ON %s FROM %s;", strings.Join(g.cols, ", "), rel.qname, g.src.grantee))
	}
	if len(readAll) > 0 {
		why = append(why, "member of pg_read_all_data")
		for _, p := range readAll {
			fx.add(fmt.Sprintf("REVOKE %s FROM %s;", p, ro.q))
		}
	}
	owns, owner, err := c.ownsRel(ctx, rel.oid, ro.oid)
	if err != nil {
		return "", err
	}
	if owns {
		why = append(why, ownerText(ro.q, owner, rel.label()))
		fx.add(fmt.Sprintf("ALTER %s %s OWNER TO <another role>;  -- an owner keeps every privilege", rel.objectKeyword(), rel.qname))
	}
	if len(why) == 0 {
		why = append(why, "no grant found in the ACLs")
		fx.add(fmt.Sprintf("-- no grant to revoke found: inspect \\dp %s", rel.qname))
	}
	return strings.Join(why, "; "), nil
}

func ownerText(role, owner, obj string) string {
	if role == owner {
		return role + " owns " + obj
	}
	return role + " inherits from " + owner + ", the owner of " + obj
}

// checkTables: INSERT/UPDATE/DELETE/TRUNCATE beyond the group's actions.
func (c *checker) checkTables(ctx context.Context, gname string, ro *checkRole, acts map[sqlpolicy.Action]bool) error {
	type hit struct {
		rel   *chkRel
		privs []string
	}
	byOID := map[uint32]*chkRel{}
	for _, r := range c.rels {
		byOID[r.oid] = r
	}
	var hits []hit
	err := c.d.each(ctx, func(rows pgx.Rows) error {
		var oid uint32
		var p [4]bool
		if err := rows.Scan(&oid, &p[0], &p[1], &p[2], &p[3]); err != nil {
			return err
		}
		rel := byOID[oid]
		if rel == nil {
			return nil
		}
		h := hit{rel: rel}
		for i, x := range p {
			if x && !allowedAny(acts, privNeeds[i].needs) {
				h.privs = append(h.privs, privNeeds[i].priv)
			}
		}
		if len(h.privs) > 0 {
			hits = append(hits, h)
		}
		return nil
	}, `SELECT c.oid,
		pg_catalog.has_any_column_privilege($1::oid, c.oid, 'INSERT'), pg_catalog.has_any_column_privilege($1::oid, c.oid, 'UPDATE'),
		pg_catalog.has_table_privilege($1::oid, c.oid, 'DELETE'), pg_catalog.has_table_privilege($1::oid, c.oid, 'TRUNCATE')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r','p','v','f') AND `+userSchemas+`
		ORDER BY n.nspname, c.relname`, ro.oid)
	if err != nil {
		return err
	}
	var writeAll []string
	if len(hits) > 0 {
		if writeAll, err = c.predefinedVia(ctx, ro.oid, "pg_write_all_data"); err != nil {
			return err
		}
	}
	for _, h := range hits {
		tbl, err := c.relSources(ctx, relACL, h.rel.oid, ro.oid)
		if err != nil {
			return err
		}
		// Column-level INSERT/UPDATE grants: a table-level REVOKE removes them too.
		colSrc := map[string][]grantSource{}
		err = c.d.each(ctx, func(rows pgx.Rows) error {
			var s grantSource
			var priv string
			if err := rows.Scan(&s.grantee, &s.self, &priv); err != nil {
				return err
			}
			colSrc[priv] = append(colSrc[priv], s)
			return nil
		}, `SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END, a.grantee = $2::oid, a.privilege_type
			FROM pg_catalog.pg_attribute at CROSS JOIN LATERAL pg_catalog.aclexplode(at.attacl) a
			LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
			WHERE at.attrelid = $1::oid AND at.attnum > 0 AND NOT at.attisdropped
			  AND (a.grantee = 0 OR pg_catalog.pg_has_role($2::oid, a.grantee, 'USAGE'))
			ORDER BY 1`, h.rel.oid, ro.oid)
		if err != nil {
			return err
		}
		owns, owner, err := c.ownsRel(ctx, h.rel.oid, ro.oid)
		if err != nil {
			return err
		}
		byGrantee := map[string][]string{}
		var grantees []string
		for _, priv := range h.privs {
			var why []string
			seen := map[string]bool{}
			for _, s := range append(append([]grantSource(nil), tbl[priv]...), colSrc[priv]...) {
				if seen[s.grantee] {
					continue
				}
				seen[s.grantee] = true
				why = append(why, s.describe(ro.q))
				if byGrantee[s.grantee] == nil {
					grantees = append(grantees, s.grantee)
				}
				byGrantee[s.grantee] = append(byGrantee[s.grantee], priv)
			}
			if len(writeAll) > 0 && priv != "TRUNCATE" {
				why = append(why, "member of pg_write_all_data")
			}
			if owns {
				why = append(why, ownerText(ro.q, owner, h.rel.label()))
			}
			if len(why) == 0 {
				why = append(why, "no grant found in the ACLs")
			}
			need := privNeedsOf(priv)
			c.line("WARN", "%s on %s (%s): that needs action %s, which group %s lacks", priv, h.rel.qname, strings.Join(why, "; "), needsText(need), gname)
		}
		for _, g := range grantees {
			c.fix(fmt.Sprintf("REVOKE %s ON %s FROM %s;", strings.Join(byGrantee[g], ", "), h.rel.qname, g))
		}
		if len(writeAll) > 0 {
			for _, p := range writeAll {
				c.fix(fmt.Sprintf("REVOKE %s FROM %s;", p, ro.q))
			}
		}
		if owns {
			c.fix(fmt.Sprintf("ALTER %s %s OWNER TO <another role>;  -- an owner keeps every privilege", h.rel.objectKeyword(), h.rel.qname))
		}
	}
	return nil
}

func privNeedsOf(priv string) []sqlpolicy.Action {
	for _, p := range privNeeds {
		if p.priv == priv {
			return p.needs
		}
	}
	return nil
}

// checkCreate: CREATE on a schema or on the database needs ddl.
func (c *checker) checkCreate(ctx context.Context, gname string, ro *checkRole, acts map[sqlpolicy.Action]bool) error {
	if acts[sqlpolicy.ActionDDL] {
		return nil
	}
	type obj struct {
		oid   uint32
		qname string
		owns  bool
		owner string
	}
	var schemas []obj
	err := c.d.each(ctx, func(rows pgx.Rows) error {
		var o obj
		if err := rows.Scan(&o.oid, &o.qname, &o.owns, &o.owner); err != nil {
			return err
		}
		schemas = append(schemas, o)
		return nil
	}, `SELECT n.oid, pg_catalog.quote_ident(n.nspname), pg_catalog.pg_has_role($1::oid, n.nspowner, 'USAGE'), pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(n.nspowner))
		FROM pg_catalog.pg_namespace n WHERE `+userSchemas+` AND pg_catalog.has_schema_privilege($1::oid, n.oid, 'CREATE')
		ORDER BY n.nspname`, ro.oid)
	if err != nil {
		return err
	}
	report := func(what, kw, qname, acl string, oid uint32, owns bool, owner string) error {
		src, err := c.relSources(ctx, acl, oid, ro.oid)
		if err != nil {
			return err
		}
		var why []string
		for _, s := range src["CREATE"] {
			why = append(why, s.describe(ro.q))
		}
		if owns {
			why = append(why, ownerText(ro.q, owner, what))
		}
		if len(why) == 0 {
			why = append(why, "no grant found in the ACLs")
		}
		c.line("WARN", "CREATE on %s (%s): that needs action ddl, which group %s lacks", what, strings.Join(why, "; "), gname)
		for _, s := range src["CREATE"] {
			c.fix(fmt.Sprintf("REVOKE CREATE ON %s %s FROM %s;", kw, qname, s.grantee))
		}
		if owns {
			c.fix(fmt.Sprintf("ALTER %s %s OWNER TO <another role>;  -- an owner keeps every privilege", kw, qname))
		}
		return nil
	}
	for _, s := range schemas {
		if err := report("schema "+s.qname, "SCHEMA", s.qname, schemaACL, s.oid, s.owns, s.owner); err != nil {
			return err
		}
	}
	var dbCreate, dbOwns bool
	var dbOwner string
	if err := c.d.row(ctx, `SELECT pg_catalog.has_database_privilege($1::oid, d.oid, 'CREATE'), pg_catalog.pg_has_role($1::oid, d.datdba, 'USAGE'),
		pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(d.datdba)) FROM pg_catalog.pg_database d WHERE d.oid = $2`, []any{ro.oid, c.dbOID}, &dbCreate, &dbOwns, &dbOwner); err != nil {
		return err
	}
	if dbCreate {
		return report("database "+c.dbName, "DATABASE", c.dbName, dbACL, c.dbOID, dbOwns, dbOwner)
	}
	return nil
}

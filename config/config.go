// Package config owns pgwarden's YAML configuration: the schema (one struct
// per section, every field documented in docs/SPEC.md), ${ENV} expansion,
// strict decoding (unknown keys are errors), defaults in one place, and
// validation whose errors name the offending key path. It never opens a
// connection or a file other than the config file itself.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole pgwarden configuration.
type Config struct {
	Listen   string   `yaml:"listen"`
	TLS      TLS      `yaml:"tls"`
	Admin    Admin    `yaml:"admin"`
	Upstream Upstream `yaml:"upstream"` // the single profile "default" when Upstreams is empty
	// Upstreams are the connection profiles by name; when set, Upstream
	// is not used (see Profiles).
	Upstreams   map[string]UpstreamProfile `yaml:"upstreams"`
	Auth        Auth                       `yaml:"auth"`
	Credentials Credentials                `yaml:"credentials"`
	Policy      Policy                     `yaml:"policy"`
	Masking     Masking                    `yaml:"masking"`
	Recording   Recording                  `yaml:"recording"`
	Store       Store                      `yaml:"store"`
	Cluster     Cluster                    `yaml:"cluster"`
	MCP         MCP                        `yaml:"mcp"`
	Limits      Limits                     `yaml:"limits"`
	Log         Log                        `yaml:"log"`
}

type TLS struct {
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	SelfSigned bool   `yaml:"self_signed"`
	Require    bool   `yaml:"require"`
}

type Admin struct {
	Listen string `yaml:"listen"`
	// PublicURL is where browsers reach the admin listener (the OIDC
	// callback is PublicURL/ui/callback). Default with a loopback listen:
	// http://<listen>.
	PublicURL string `yaml:"public_url"`
}

// BrowserURL is public_url, else http://<listen> when listen is a loopback
// address, else "" (browser sign-in then needs public_url).
func (a Admin) BrowserURL() string {
	if a.PublicURL != "" {
		return strings.TrimRight(a.PublicURL, "/")
	}
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return "http://" + a.Listen
	}
	return ""
}

type Upstream struct {
	Host           string        `yaml:"host"`
	Port           int           `yaml:"port"`
	Databases      []string      `yaml:"databases"`
	SSLMode        string        `yaml:"sslmode"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

type Auth struct {
	OIDC OIDC `yaml:"oidc"`
	// SAML is browser sign-in for IdPs that speak SAML 2.0 only; after it
	// pgwarden issues its own short-lived tokens (GatewayTokens).
	SAML          SAML          `yaml:"saml"`
	GatewayTokens GatewayTokens `yaml:"gateway_tokens"`
}

// SAML configures pgwarden as a SAML 2.0 service provider. It is
// configured when entity_id or either metadata key is set.
type SAML struct {
	IDPMetadataURL    string `yaml:"idp_metadata_url"`  // exactly one of these two
	IDPMetadataFile   string `yaml:"idp_metadata_file"` //
	EntityID          string `yaml:"entity_id"`         // the SP's entity id (an absolute URL); the assertions' audience
	UsernameAttribute string `yaml:"username_attribute"`
	GroupsAttribute   string `yaml:"groups_attribute"`
	CertFile          string `yaml:"cert_file"` // the SP's signing key pair (both or neither)
	KeyFile           string `yaml:"key_file"`
}

// Configured reports whether SAML sign-in is asked for.
func (s SAML) Configured() bool {
	return s.EntityID != "" || s.IDPMetadataURL != "" || s.IDPMetadataFile != ""
}

// GatewayTokens are the tokens pgwarden itself issues after a SAML login.
type GatewayTokens struct {
	TTL time.Duration `yaml:"ttl"` // default 1h, 1m..12h
	// KeyFile is the ES256 signing key (PEM, 0600; created on first use).
	// Default: <store.dir>/gateway-token.key. Gateways sharing a store must
	// share this file (e.g. one Secret) so each accepts the others' tokens.
	KeyFile string `yaml:"key_file"`
}

type OIDC struct {
	Issuer        string        `yaml:"issuer"`
	Audience      string        `yaml:"audience"`
	UsernameClaim string        `yaml:"username_claim"`
	GroupsClaim   string        `yaml:"groups_claim"`
	ClockSkew     time.Duration `yaml:"clock_skew"`
	CAFile        string        `yaml:"ca_file"`
	// Browser sign-in to /ui/ (authorization code + PKCE): the client
	// registered for pgwarden's admin page. "" : no browser sign-in.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
}

type Credentials struct {
	Provider string        `yaml:"provider"`
	TTL      time.Duration `yaml:"ttl"`
	Native   Native        `yaml:"native"`
	Vault    Vault         `yaml:"vault"`
	Static   Static        `yaml:"static"`
}

type Native struct {
	AdminDSN   string `yaml:"admin_dsn"`
	RolePrefix string `yaml:"role_prefix"`
}

type Vault struct {
	Address  string `yaml:"address"`
	Auth     string `yaml:"auth"`
	JWTRole  string `yaml:"jwt_role"`
	JWTMount string `yaml:"jwt_mount"` // auth mount path for auth: jwt (default "jwt")
	Mount    string `yaml:"mount"`
	// AppRole login (auth: approle); secret id may come from ${ENV}.
	RoleID   string `yaml:"role_id"`
	SecretID string `yaml:"secret_id"`
	CAFile   string `yaml:"ca_file"`
	// RoleOrder ranks db_role names, strongest first: a principal whose
	// groups map to several db_roles gets the first listed one it has
	// (none listed: the first in sorted order). Vault reads one role per session.
	RoleOrder []string `yaml:"role_order"`
}

type Static struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

type Policy struct {
	Roles     map[string]Role `yaml:"roles"`
	Approval  Approval        `yaml:"approval"`
	Functions Functions       `yaml:"functions"`
}

// Functions is the operator's vouching for user-defined functions, which
// are otherwise opaque (docs/SPEC.md "Functions: a closed world").
type Functions struct {
	// Allow lists functions ("schema.name" or "name") whose result is
	// traced like a pure function's.
	Allow []string `yaml:"allow"`
	// VolatileAction is the action calling an allowed VOLATILE function
	// needs (default update).
	VolatileAction string `yaml:"volatile_action"`
	// CatalogMaxAge is how long a database's pg_proc snapshot is used
	// before it is reloaded in the background (default 5m).
	CatalogMaxAge time.Duration `yaml:"catalog_max_age"`
	// CatalogTimeout bounds each pg_proc load (default 3s).
	CatalogTimeout time.Duration `yaml:"catalog_timeout"`
}

type Role struct {
	Actions []string `yaml:"actions"`
	DBRole  string   `yaml:"db_role"`
	Unmask  bool     `yaml:"unmask"`
}

type Approval struct {
	Actions       []string      `yaml:"actions"`
	Approvers     []string      `yaml:"approvers"`
	Timeout       time.Duration `yaml:"timeout"`
	Mode          string        `yaml:"mode"`
	BulkRows      int64         `yaml:"bulk_rows"`
	RequireReason bool          `yaml:"require_reason"`
	Webhook       string        `yaml:"webhook"` // Slack-compatible notification URL; "" = off
}

type Masking struct {
	HMACKey   string     `yaml:"hmac_key"`
	Rules     []MaskRule `yaml:"rules"`
	Detectors []string   `yaml:"detectors"`
	Derived   string     `yaml:"derived"`
	// DenyPredicates refuses, for groups without unmask, statements whose
	// WHERE/JOIN/HAVING reads a masked column (an inference channel).
	DenyPredicates bool `yaml:"deny_predicates"`
	// CatalogDSN is the connection the masking catalog cache reads
	// pg_class/pg_attribute with (a role that may read the catalog; no data
	// privileges needed). Default: credentials.native.admin_dsn.
	CatalogDSN string `yaml:"catalog_dsn"`
}

type MaskRule struct {
	Table    string   `yaml:"table"`
	Column   string   `yaml:"column"`
	Method   string   `yaml:"method"`
	KeepLast int      `yaml:"keep_last"`
	JSONKeys []string `yaml:"json_keys"`
}

type Recording struct {
	Results  bool   `yaml:"results"`
	MaxRows  int    `yaml:"max_rows"`
	Sinks    []Sink `yaml:"sinks"`
	FailOpen bool   `yaml:"fail_open"` // true: run statements even when the store cannot be written (loud metric)
	// Rotation and retention of the file store.
	RotateBytes int64         `yaml:"rotate_bytes"`
	RotateAge   time.Duration `yaml:"rotate_age"`
	Retention   time.Duration `yaml:"retention"`
	SyncEvery   time.Duration `yaml:"sync_interval"`
}

type Sink struct {
	Type   string `yaml:"type"`
	URL    string `yaml:"url"`
	Format string `yaml:"format"`
}

type Store struct {
	Dir string `yaml:"dir"`
	// DSN names a shared PostgreSQL store: approvals, session events,
	// cancel-key routes and gateway heartbeats live there instead of in
	// files under Dir, so several gateways act as one.
	DSN string `yaml:"dsn"`
	// Migrate is "auto" (create/upgrade the schema at start) or "off"
	// (`pgwarden store migrate` does it; a gateway refuses an old schema).
	Migrate string `yaml:"migrate"`
}

// Cluster names this gateway among those sharing store.dsn.
type Cluster struct {
	GatewayID string        `yaml:"gateway_id"` // default: the hostname
	Advertise string        `yaml:"advertise"`  // host:port of this gateway's Postgres listener for other gateways (cancel forwarding)
	DeadAfter time.Duration `yaml:"dead_after"` // a gateway silent this long is dead
}

// ID is the gateway's name in the shared store: gateway_id, else the
// hostname, else "pgwarden".
func (c Cluster) ID() string {
	if c.GatewayID != "" {
		return c.GatewayID
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "pgwarden"
}

// MCP serves the Model Context Protocol to agents at /mcp on the admin
// listener (docs/agents.md). Every tool call runs through the gateway's own
// Postgres listener as the caller, so policy, approvals, masking and
// recording are a psql session's.
type MCP struct {
	Enabled bool `yaml:"enabled"`
	// Database is the database the endpoint's sessions open ("" = the
	// first database the first profile lists; /mcp?database=D picks another).
	Database string `yaml:"database"`
	// MaxRows bounds the rows one tool result returns (a call may ask for fewer).
	MaxRows int `yaml:"max_rows"`
	// MaxBytes bounds the row data (as JSON) one tool result carries.
	MaxBytes int       `yaml:"max_bytes"`
	Limits   MCPLimits `yaml:"limits"`
}

// MCPLimits are per identity (the user, or user and actor of a delegated
// token); 0 is unlimited.
type MCPLimits struct {
	CallsPerMinute int `yaml:"calls_per_minute"`
	RowsPerHour    int `yaml:"rows_per_hour"` // rows returned in any rolling hour
}

// MCP bounds: a result bigger than this would not fit an agent's context
// anyway, and the gateway holds it in memory while it encodes it.
const (
	MCPMaxRowsLimit  = 10000
	MCPMaxBytesLimit = 16 << 20
)

// MCPDatabase is the database the /mcp endpoint's sessions open by
// default: mcp.database, else the first database listed by the first
// profile (by name) that lists any; "" when none does.
func (c *Config) MCPDatabase() string {
	if c.MCP.Database != "" {
		return c.MCP.Database
	}
	for _, p := range c.Profiles() {
		if len(p.Upstream.Databases) > 0 {
			return p.Upstream.Databases[0]
		}
	}
	return ""
}

// ServesDatabase reports whether a session naming database is routed to
// some profile (one that lists it, or one that lists none and so serves any).
func (c *Config) ServesDatabase(database string) bool {
	_, ok := c.ProfileFor(database)
	return ok
}

// ProfileFor is the profile a session naming database is routed to: the
// one that lists it, else the one that lists no database (validation
// allows at most one of each). The gateway's listener routes by the same
// rule (pgwire's router, built from these profiles).
func (c *Config) ProfileFor(database string) (Profile, bool) {
	var catchAll *Profile
	profiles := c.Profiles()
	for i := range profiles {
		p := &profiles[i]
		if slices.Contains(p.Upstream.Databases, database) {
			return *p, true
		}
		if len(p.Upstream.Databases) == 0 && catchAll == nil {
			catchAll = p
		}
	}
	if catchAll == nil {
		return Profile{}, false
	}
	return *catchAll, true
}

type Limits struct {
	MaxConnections  int           `yaml:"max_connections"`
	MaxMessageBytes int           `yaml:"max_message_bytes"`
	StartupTimeout  time.Duration `yaml:"startup_timeout"`
}

type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Error is a configuration error naming the key path that is wrong.
// Callers exit with status 2 on it.
type Error struct {
	Path string // e.g. "policy.roles.analyst.actions[1]"
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "config: " + e.Msg
	}
	return "config: " + e.Path + ": " + e.Msg
}

// IsConfigError reports whether err is a configuration error (exit 2).
func IsConfigError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}

// Default returns a configuration with every default filled in.
func Default() *Config {
	return &Config{
		Listen:   "127.0.0.1:6432",
		TLS:      TLS{Require: true},
		Admin:    Admin{Listen: "127.0.0.1:6480"},
		Upstream: defaultUpstream(),
		Auth: Auth{OIDC: OIDC{
			Audience: "pgwarden", UsernameClaim: "email", GroupsClaim: "groups", ClockSkew: 30 * time.Second,
		}, SAML: SAML{UsernameAttribute: "email", GroupsAttribute: "groups"},
			GatewayTokens: GatewayTokens{TTL: time.Hour}},
		Credentials: defaultCredentials(),
		Policy:      defaultPolicy(),
		Masking:     defaultMasking(),
		Recording:   Recording{Results: true, MaxRows: 100, RotateBytes: 64 << 20, SyncEvery: time.Second},
		Store:       Store{Dir: "./data", Migrate: "auto"},
		Cluster:     Cluster{DeadAfter: 15 * time.Second},
		MCP:         MCP{MaxRows: 200, MaxBytes: 256 << 10, Limits: MCPLimits{CallsPerMinute: 120, RowsPerHour: 50000}},
		Limits:      Limits{MaxConnections: 1000, MaxMessageBytes: 64 << 20, StartupTimeout: 10 * time.Second},
		Log:         Log{Level: "info", Format: "json"},
	}
}

// The section defaults below are the only place they are written: Default
// uses them for the top-level sections and profile decoding (upstreams:)
// for a profile's own sections. Each call returns fresh slices.

func defaultUpstream() Upstream {
	return Upstream{Host: "127.0.0.1", Port: 5432, SSLMode: "prefer", ConnectTimeout: 5 * time.Second}
}

func defaultCredentials() Credentials {
	return Credentials{
		Provider: "native", TTL: 15 * time.Minute,
		Native: Native{RolePrefix: "pgw_"},
		Vault:  Vault{Address: "http://127.0.0.1:8200", Auth: "token", JWTRole: "pgwarden", JWTMount: "jwt", Mount: "database"},
	}
}

func defaultPolicy() Policy {
	return Policy{Approval: Approval{
		Actions: []string{"bulk_delete", "truncate", "drop", "index", "admin"},
		Timeout: 10 * time.Minute, Mode: "wait", BulkRows: 1000,
	}, Functions: Functions{VolatileAction: "update", CatalogMaxAge: 5 * time.Minute, CatalogTimeout: 3 * time.Second}}
}

func defaultMasking() Masking {
	return Masking{Derived: "mask"}
}

// Load reads, expands, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	return Parse(data)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// ExpandEnv replaces ${NAME} (and ${NAME:-default}) with the environment's value.
func ExpandEnv(s string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := envRef.FindStringSubmatch(m)
		if v, ok := os.LookupEnv(sub[1]); ok && v != "" {
			return v
		}
		return sub[3]
	})
}

// Parse decodes YAML bytes on top of the defaults and validates the result.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Msg: "invalid YAML: " + err.Error()}
	}
	cfg := Default()
	if len(root.Content) == 0 { // empty document
		return cfg, cfg.Validate()
	}
	doc := root.Content[0]
	expandNode(doc)
	if err := checkKeys(doc, reflect.TypeOf(*cfg), ""); err != nil {
		return nil, err
	}
	if err := checkProfileNodes(doc); err != nil {
		return nil, err
	}
	if err := doc.Decode(cfg); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	return cfg, cfg.Validate()
}

func expandNode(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = ExpandEnv(n.Value)
		// The parser tags a plain ${NAME} !!str; a quoted or explicitly
		// tagged one stays a string. A plain one is re-resolved so that
		// port: ${PORT} can be an int, except when the expansion reads as
		// null ("", ~, null), which would silently drop the key.
		switch n.Value {
		case "", "~", "null", "Null", "NULL":
			return
		}
		if n.Style != 0 {
			return
		}
		n.Tag = "" // let the decoder resolve the expanded value's type
	}
	for _, c := range n.Content {
		expandNode(c)
	}
}

// checkKeys walks the node tree against the struct type and reports the
// first unknown key (or wrong shape) with its full path.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(time.Duration(0)) {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return &Error{Path: orRoot(path), Msg: "expected a mapping"}
		}
		fields := map[string]reflect.Type{}
		yamlFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ft, ok := fields[key]
			p := join(path, key)
			if !ok {
				return &Error{Path: p, Msg: "unknown key"}
			}
			if err := checkKeys(n.Content[i+1], ft, p); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return &Error{Path: orRoot(path), Msg: "expected a mapping"}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
				return nil
			}
			return &Error{Path: orRoot(path), Msg: "expected a list"}
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return &Error{Path: orRoot(path), Msg: "expected a single value"}
		}
		if t == reflect.TypeOf(time.Duration(0)) {
			if _, err := time.ParseDuration(n.Value); err != nil {
				return &Error{Path: path, Msg: fmt.Sprintf("invalid duration %q (use e.g. 30s, 15m)", n.Value)}
			}
			return nil
		}
		var probe = reflect.New(t).Interface()
		if err := n.Decode(probe); err != nil {
			return &Error{Path: path, Msg: fmt.Sprintf("invalid value %q for a %s", n.Value, t.Kind())}
		}
	}
	return nil
}

// yamlFields adds the YAML keys of struct t to fields, with the keys of
// ",inline" struct fields as if they were t's own.
func yamlFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		if slices.Contains(tag[1:], "inline") && f.Type.Kind() == reflect.Struct {
			yamlFields(f.Type, fields)
			continue
		}
		if tag[0] != "" && tag[0] != "-" {
			fields[tag[0]] = f.Type
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

// Actions are the statement classes of docs/SPEC.md; "all" allows every one.
var Actions = []string{"search", "read", "insert", "update", "delete", "bulk_delete", "truncate", "ddl", "drop", "index", "export", "admin", "session"}

func isAction(a string) bool {
	for _, x := range Actions {
		if x == a {
			return true
		}
	}
	return false
}

func oneOf(path, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return &Error{Path: path, Msg: fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))}
}

// httpURL checks that v is an absolute http(s) URL (webhooks). The value is
// never echoed: webhook URLs often carry their credential.
func httpURL(path, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{Path: path, Msg: "must be an absolute http(s) URL"}
	}
	return nil
}

func (c *Config) validateSAML() error {
	if t := c.Auth.GatewayTokens.TTL; t < time.Minute || t > 12*time.Hour {
		return &Error{Path: "auth.gateway_tokens.ttl", Msg: "must be between 1m and 12h"}
	}
	s := c.Auth.SAML
	if !s.Configured() {
		return nil
	}
	if (s.IDPMetadataURL == "") == (s.IDPMetadataFile == "") {
		return &Error{Path: "auth.saml.idp_metadata_url", Msg: "exactly one of idp_metadata_url and idp_metadata_file is required"}
	}
	if s.IDPMetadataURL != "" {
		if err := httpURL("auth.saml.idp_metadata_url", s.IDPMetadataURL); err != nil {
			return err
		}
	}
	if s.EntityID == "" {
		return &Error{Path: "auth.saml.entity_id", Msg: "required"}
	}
	if u, err := url.Parse(s.EntityID); err != nil || !u.IsAbs() || (u.Host == "" && u.Opaque == "") {
		return &Error{Path: "auth.saml.entity_id", Msg: "must be an absolute URL"}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return &Error{Path: "auth.saml.key_file", Msg: "cert_file and key_file must be set together"}
	}
	if s.UsernameAttribute == "" {
		return &Error{Path: "auth.saml.username_attribute", Msg: "required"}
	}
	if s.GroupsAttribute == "" {
		return &Error{Path: "auth.saml.groups_attribute", Msg: "required"}
	}
	if c.Admin.BrowserURL() == "" {
		return &Error{Path: "admin.public_url", Msg: "required for SAML sign-in (auth.saml) when admin.listen is not a loopback address"}
	}
	return nil
}

func (c *Config) validateMCP() error {
	m := c.MCP
	if m.MaxRows < 1 || m.MaxRows > MCPMaxRowsLimit {
		return &Error{Path: "mcp.max_rows", Msg: fmt.Sprintf("must be between 1 and %d", MCPMaxRowsLimit)}
	}
	if m.MaxBytes < 1024 || m.MaxBytes > MCPMaxBytesLimit {
		return &Error{Path: "mcp.max_bytes", Msg: fmt.Sprintf("must be between 1024 and %d", MCPMaxBytesLimit)}
	}
	if m.Limits.CallsPerMinute < 0 {
		return &Error{Path: "mcp.limits.calls_per_minute", Msg: "must not be negative (0 is unlimited)"}
	}
	if m.Limits.RowsPerHour < 0 {
		return &Error{Path: "mcp.limits.rows_per_hour", Msg: "must not be negative (0 is unlimited)"}
	}
	if !m.Enabled {
		return nil
	}
	if c.Admin.Listen == "" {
		return &Error{Path: "mcp.enabled", Msg: "needs admin.listen (MCP is served at /mcp on the admin listener)"}
	}
	db := c.MCPDatabase()
	if db == "" {
		return &Error{Path: "mcp.database", Msg: "required when no profile lists its databases"}
	}
	if !c.ServesDatabase(db) {
		return &Error{Path: "mcp.database", Msg: fmt.Sprintf("%q is not routed to any profile (upstream.databases / upstreams.<name>.databases)", db)}
	}
	return nil
}

func hostPort(path, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return &Error{Path: path, Msg: fmt.Sprintf("%q is not host:port", v)}
	}
	return nil
}

// Validate checks values and cross-field rules, naming the bad key path.
func (c *Config) Validate() error {
	if err := hostPort("listen", c.Listen); err != nil {
		return err
	}
	if c.Admin.Listen != "" {
		if err := hostPort("admin.listen", c.Admin.Listen); err != nil {
			return err
		}
	}
	if !c.TLS.SelfSigned && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return &Error{Path: "tls.key_file", Msg: "cert_file and key_file must be set together"}
	}
	if c.TLS.Require && !c.TLS.SelfSigned && c.TLS.CertFile == "" {
		return &Error{Path: "tls.require", Msg: "TLS is required but neither cert_file/key_file nor self_signed is set"}
	}
	if len(c.Upstreams) == 0 {
		if err := validateUpstream("upstream", c.Upstream); err != nil {
			return err
		}
	}
	if c.Auth.OIDC.Issuer == "" {
		return &Error{Path: "auth.oidc.issuer", Msg: "required"}
	}
	if !strings.HasPrefix(c.Auth.OIDC.Issuer, "https://") && !strings.HasPrefix(c.Auth.OIDC.Issuer, "http://") {
		return &Error{Path: "auth.oidc.issuer", Msg: "must be an http(s) URL"}
	}
	if c.Auth.OIDC.Audience == "" {
		return &Error{Path: "auth.oidc.audience", Msg: "required"}
	}
	if c.Auth.OIDC.UsernameClaim == "" {
		return &Error{Path: "auth.oidc.username_claim", Msg: "required"}
	}
	if c.Admin.PublicURL != "" {
		if err := httpURL("admin.public_url", c.Admin.PublicURL); err != nil {
			return err
		}
	}
	if c.Auth.OIDC.ClientID != "" && c.Admin.BrowserURL() == "" {
		return &Error{Path: "admin.public_url", Msg: "required for browser sign-in (auth.oidc.client_id) when admin.listen is not a loopback address"}
	}
	if c.Auth.OIDC.ClientSecret != "" && c.Auth.OIDC.ClientID == "" {
		return &Error{Path: "auth.oidc.client_id", Msg: "required with client_secret"}
	}
	if c.Auth.OIDC.ClockSkew < 0 {
		return &Error{Path: "auth.oidc.clock_skew", Msg: "must not be negative"}
	}
	if err := c.validateSAML(); err != nil {
		return err
	}
	if err := c.validateSections(); err != nil {
		return err
	}
	if c.Recording.MaxRows < 0 {
		return &Error{Path: "recording.max_rows", Msg: "must not be negative"}
	}
	for i, s := range c.Recording.Sinks {
		p := fmt.Sprintf("recording.sinks[%d]", i)
		if err := oneOf(p+".type", s.Type, "file", "webhook", "stdout"); err != nil {
			return err
		}
		if s.Type == "webhook" {
			if s.URL == "" {
				return &Error{Path: p + ".url", Msg: "required for a webhook sink"}
			}
			if err := httpURL(p+".url", s.URL); err != nil {
				return err
			}
		}
		if s.Format != "" {
			if err := oneOf(p+".format", s.Format, "jsonl", "ocsf"); err != nil {
				return err
			}
		}
	}
	if c.Store.DSN != "" {
		if c.Recording.Retention > 0 {
			return &Error{Path: "recording.retention", Msg: "applies to the file store only; with store.dsn every gateway's chain is kept (see docs/deploy.md, sizing)"}
		}
		for i, s := range c.Recording.Sinks {
			if s.Type == "webhook" {
				return &Error{Path: fmt.Sprintf("recording.sinks[%d]", i), Msg: "a webhook sink is not supported with store.dsn yet (its delivery cursor lives in store.dir); use the stdout sink"}
			}
		}
		if !strings.HasPrefix(c.Store.DSN, "postgres://") && !strings.HasPrefix(c.Store.DSN, "postgresql://") {
			return &Error{Path: "store.dsn", Msg: "must be a postgres:// URL"}
		}
	}
	if err := oneOf("store.migrate", c.Store.Migrate, "auto", "off"); err != nil {
		return err
	}
	if c.Cluster.DeadAfter < 3*time.Second {
		return &Error{Path: "cluster.dead_after", Msg: "must be at least 3s (heartbeats go out every dead_after/3)"}
	}
	if len(c.Cluster.GatewayID) > 63 || strings.ContainsAny(c.Cluster.GatewayID, " \t\r\n/") {
		return &Error{Path: "cluster.gateway_id", Msg: "at most 63 characters, no spaces or slashes"}
	}
	if c.Cluster.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Cluster.Advertise); err != nil {
			return &Error{Path: "cluster.advertise", Msg: "must be host:port"}
		}
	}
	if c.Store.Dir == "" {
		return &Error{Path: "store.dir", Msg: "required"}
	}
	if err := c.validateMCP(); err != nil {
		return err
	}
	if c.Limits.MaxConnections <= 0 {
		return &Error{Path: "limits.max_connections", Msg: "must be positive"}
	}
	if c.Limits.MaxMessageBytes < 1024 {
		return &Error{Path: "limits.max_message_bytes", Msg: "must be at least 1024"}
	}
	if c.Limits.StartupTimeout <= 0 {
		return &Error{Path: "limits.startup_timeout", Msg: "must be positive"}
	}
	if err := oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error"); err != nil {
		return err
	}
	if err := oneOf("log.format", c.Log.Format, "json", "console"); err != nil {
		return err
	}
	return nil
}

var rolePrefixRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,15}$`)

// The section validators below take the path their section's keys hang
// under: validateUpstream the path of the upstream mapping itself
// ("upstream", "upstreams.kb"), the others the path of the mapping that
// holds their section ("" for the top level, "upstreams.kb" for a
// profile's own). Their messages never echo a DSN, password or secret.

func validateUpstream(path string, u Upstream) error {
	if u.Port <= 0 || u.Port > 65535 {
		return &Error{Path: join(path, "port"), Msg: fmt.Sprintf("%d is not a port", u.Port)}
	}
	if err := oneOf(join(path, "sslmode"), u.SSLMode, "disable", "prefer", "require", "verify-full"); err != nil {
		return err
	}
	if u.ConnectTimeout <= 0 {
		return &Error{Path: join(path, "connect_timeout"), Msg: "must be positive"}
	}
	seen := map[string]bool{}
	for i, d := range u.Databases {
		p := fmt.Sprintf("%s[%d]", join(path, "databases"), i)
		if d == "" {
			return &Error{Path: p, Msg: "must not be empty"}
		}
		if seen[d] {
			return &Error{Path: p, Msg: fmt.Sprintf("%q is listed twice", d)}
		}
		seen[d] = true
	}
	return nil
}

func validateCredentials(prefix string, c Credentials) error {
	p := func(key string) string { return join(prefix, "credentials."+key) }
	if err := oneOf(p("provider"), c.Provider, "native", "vault", "static"); err != nil {
		return err
	}
	if c.TTL < time.Minute {
		return &Error{Path: p("ttl"), Msg: "must be at least 1m"}
	}
	switch c.Provider {
	case "native":
		if c.Native.AdminDSN == "" {
			return &Error{Path: p("native.admin_dsn"), Msg: "required for provider native"}
		}
		if !rolePrefixRe.MatchString(c.Native.RolePrefix) {
			return &Error{Path: p("native.role_prefix"), Msg: "must be 1-16 lowercase letters, digits or _"}
		}
	case "vault":
		if err := oneOf(p("vault.auth"), c.Vault.Auth, "token", "jwt", "approle"); err != nil {
			return err
		}
		if c.Vault.Address == "" {
			return &Error{Path: p("vault.address"), Msg: "required for provider vault"}
		}
		if c.Vault.Mount == "" {
			return &Error{Path: p("vault.mount"), Msg: "required for provider vault"}
		}
		if c.Vault.Auth == "approle" && (c.Vault.RoleID == "" || c.Vault.SecretID == "") {
			return &Error{Path: p("vault.role_id"), Msg: "role_id and secret_id are required for auth approle"}
		}
		seen := map[string]bool{}
		for i, r := range c.Vault.RoleOrder {
			rp := fmt.Sprintf("%s[%d]", p("vault.role_order"), i)
			if r == "" {
				return &Error{Path: rp, Msg: "must not be empty"}
			}
			if seen[r] {
				return &Error{Path: rp, Msg: fmt.Sprintf("%q is listed twice", r)}
			}
			seen[r] = true
		}
	case "static":
		if c.Static.User == "" {
			return &Error{Path: p("static.user"), Msg: "required for provider static"}
		}
	}
	return nil
}

func validatePolicy(prefix string, pol Policy) error {
	p := func(key string) string { return join(prefix, "policy."+key) }
	for name, r := range pol.Roles {
		for i, a := range r.Actions {
			if a != "all" && !isAction(a) {
				return &Error{Path: fmt.Sprintf("%s.%s.actions[%d]", p("roles"), name, i), Msg: fmt.Sprintf("unknown action %q (one of all, %s)", a, strings.Join(Actions, ", "))}
			}
		}
	}
	if va := pol.Functions.VolatileAction; va != "" && !isAction(va) {
		return &Error{Path: p("functions.volatile_action"), Msg: fmt.Sprintf("unknown action %q (one of %s)", va, strings.Join(Actions, ", "))}
	}
	for i, f := range pol.Functions.Allow {
		if strings.TrimSpace(f) == "" || strings.Count(f, ".") > 1 || strings.ContainsAny(f, "() ") {
			return &Error{Path: fmt.Sprintf("%s[%d]", p("functions.allow"), i), Msg: fmt.Sprintf("%q is not a function name (schema.name or name, without arguments)", f)}
		}
	}
	ap := pol.Approval
	for i, a := range ap.Actions {
		if !isAction(a) {
			return &Error{Path: fmt.Sprintf("%s[%d]", p("approval.actions"), i), Msg: fmt.Sprintf("unknown action %q", a)}
		}
	}
	if ap.Webhook != "" {
		if err := httpURL(p("approval.webhook"), ap.Webhook); err != nil {
			return err
		}
	}
	if err := oneOf(p("approval.mode"), ap.Mode, "wait", "retry"); err != nil {
		return err
	}
	if ap.Timeout <= 0 {
		return &Error{Path: p("approval.timeout"), Msg: "must be positive"}
	}
	if ap.BulkRows < 0 {
		return &Error{Path: p("approval.bulk_rows"), Msg: "must not be negative"}
	}
	for i, g := range ap.Approvers {
		if _, ok := pol.Roles[g]; !ok && len(pol.Roles) > 0 {
			return &Error{Path: fmt.Sprintf("%s[%d]", p("approval.approvers"), i), Msg: fmt.Sprintf("group %q has no entry under %s", g, p("roles"))}
		}
	}
	return nil
}

// validateMasking checks a masking section; provider is the credentials
// provider of the same scope (the catalog rule depends on it).
func validateMasking(prefix string, m Masking, provider string) error {
	if err := validateMaskingRules(prefix, m); err != nil {
		return err
	}
	return validateCatalog(prefix, m, provider)
}

// validateCatalog is the catalog rule: without a catalog no column can be
// told from another and everything would be masked, so say so instead.
// Only provider native has a fallback (its admin_dsn).
func validateCatalog(prefix string, m Masking, provider string) error {
	if len(m.Rules) == 0 || m.CatalogDSN != "" || provider == "native" {
		return nil
	}
	if prefix == "" {
		return &Error{Path: "masking.catalog_dsn", Msg: "required with masking rules when credentials.provider is not native (the catalog cache maps result columns to tables with it)"}
	}
	return &Error{Path: join(prefix, "masking.catalog_dsn"), Msg: "required with masking rules when the profile's credentials provider is not native (the catalog cache maps result columns to tables on this profile's server with it; a top-level masking.catalog_dsn is not inherited)"}
}

// validateMaskingRules checks a masking section except the catalog rule.
func validateMaskingRules(prefix string, m Masking) error {
	p := func(key string) string { return join(prefix, "masking."+key) }
	if err := oneOf(p("derived"), m.Derived, "mask", "deny"); err != nil {
		return err
	}
	for i, r := range m.Rules {
		rp := fmt.Sprintf("%s[%d]", p("rules"), i)
		if r.Column == "" {
			return &Error{Path: rp + ".column", Msg: "required"}
		}
		if err := oneOf(rp+".method", r.Method, "redact", "null", "partial", "email", "hash"); err != nil {
			return err
		}
		if r.Method == "partial" && r.KeepLast <= 0 {
			return &Error{Path: rp + ".keep_last", Msg: "method partial needs keep_last > 0"}
		}
		if r.Method == "hash" && m.HMACKey == "" {
			return &Error{Path: p("hmac_key"), Msg: fmt.Sprintf("required by %s (method hash)", rp)}
		}
	}
	for i, d := range m.Detectors {
		if err := oneOf(fmt.Sprintf("%s[%d]", p("detectors"), i), d, "email", "phone", "credit_card", "ssn"); err != nil {
			return err
		}
	}
	return nil
}

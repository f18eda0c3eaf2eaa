package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// base is a valid config without upstream sections; the top-level
// credentials, policy and masking are set so inheritance can be seen.
const base = `
tls: { self_signed: true }
auth: { oidc: { issuer: https://idp.example.com } }
credentials:
  native: { admin_dsn: "postgres://top:toppw@top/db" }
policy:
  roles: { analyst: { actions: [read] }, dba: { actions: [all] } }
  approval: { approvers: [dba] }
masking:
  catalog_dsn: "postgres://cat:catpw@top/db"
  rules: [ { table: users, column: email, method: email } ]
`

func TestLegacyUpstreamIsTheDefaultProfile(t *testing.T) {
	c, err := Parse([]byte(base + "upstream: { host: db1, port: 5433, databases: [kb] }\n"))
	if err != nil {
		t.Fatal(err)
	}
	ps := c.Profiles()
	if len(ps) != 1 {
		t.Fatalf("want one profile, got %d", len(ps))
	}
	p := ps[0]
	if p.Name != DefaultProfile || p.Upstream.Host != "db1" || p.Upstream.Port != 5433 || !reflect.DeepEqual(p.Upstream.Databases, []string{"kb"}) {
		t.Fatalf("upstream: %+v", p)
	}
	if !reflect.DeepEqual(p.Credentials, c.Credentials) || !reflect.DeepEqual(p.Policy, c.Policy) || !reflect.DeepEqual(p.Masking, c.Masking) {
		t.Fatalf("default profile must carry the top-level sections: %+v", p)
	}
	if p.Masking.CatalogDSN == "" {
		t.Fatal("the single legacy profile keeps masking.catalog_dsn")
	}
	if got, ok := c.Profile(DefaultProfile); !ok || !reflect.DeepEqual(got, p) {
		t.Fatalf("Profile(default) = %+v, %v", got, ok)
	}
	if _, ok := c.Profile("kb"); ok {
		t.Fatal("Profile(kb) found without upstreams:")
	}
	// No upstream: at all: still one default profile with the defaults.
	c, err = Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if ps := c.Profiles(); len(ps) != 1 || ps[0].Name != DefaultProfile || ps[0].Upstream.Host != "127.0.0.1" || ps[0].Upstream.Port != 5432 {
		t.Fatalf("profiles: %+v", ps)
	}
}

const twoProfiles = base + `
upstreams:
  kb:
    host: 10.0.0.5
    databases: [kb, kb_staging]
    sslmode: verify-full
    credentials: { provider: native, native: { admin_dsn: "postgres://kb:kbpw@10.0.0.5/kb" } }
    policy: { roles: { readers: { actions: [read] }, owners: { actions: [all] } }, approval: { approvers: [owners] } }
    masking: { rules: [ { table: t, column: ssn, method: redact } ] }
  crm:
    host: 10.0.0.6
    port: 6543
    connect_timeout: 2s
    databases: [crm]
`

func TestProfilesResolveOwnAndInheritedSections(t *testing.T) {
	c, err := Parse([]byte(twoProfiles))
	if err != nil {
		t.Fatal(err)
	}
	ps := c.Profiles()
	if len(ps) != 2 || ps[0].Name != "crm" || ps[1].Name != "kb" {
		t.Fatalf("want [crm kb] sorted, got %+v", ps)
	}
	crm, kb := ps[0], ps[1]

	// Upstream keys default like upstream:.
	if kb.Upstream.Port != 5432 || kb.Upstream.ConnectTimeout != 5*time.Second || kb.Upstream.SSLMode != "verify-full" || kb.Upstream.Host != "10.0.0.5" {
		t.Fatalf("kb upstream: %+v", kb.Upstream)
	}
	if crm.Upstream.Port != 6543 || crm.Upstream.SSLMode != "prefer" || crm.Upstream.ConnectTimeout != 2*time.Second {
		t.Fatalf("crm upstream: %+v", crm.Upstream)
	}

	// Own sections are decoded on the package defaults.
	if kb.Credentials.Native.AdminDSN != "postgres://kb:kbpw@10.0.0.5/kb" || kb.Credentials.TTL != 15*time.Minute || kb.Credentials.Native.RolePrefix != "pgw_" {
		t.Fatalf("kb credentials: %+v", kb.Credentials)
	}
	ap := kb.Policy.Approval
	if ap.Timeout != 10*time.Minute || ap.Mode != "wait" || ap.BulkRows != 1000 || len(ap.Actions) != 5 || !reflect.DeepEqual(ap.Approvers, []string{"owners"}) {
		t.Fatalf("kb approval: %+v", ap)
	}
	if kb.Policy.Functions.VolatileAction != "update" || kb.Policy.Functions.CatalogMaxAge != 5*time.Minute {
		t.Fatalf("kb functions: %+v", kb.Policy.Functions)
	}
	if _, ok := kb.Policy.Roles["analyst"]; ok || len(kb.Policy.Roles) != 2 {
		t.Fatalf("kb roles must be its own only: %+v", kb.Policy.Roles)
	}
	if kb.Masking.Derived != "mask" || len(kb.Masking.Rules) != 1 || kb.Masking.Rules[0].Column != "ssn" || kb.Masking.CatalogDSN != "" {
		t.Fatalf("kb masking: %+v", kb.Masking)
	}

	// Inherited sections equal the top-level ones, except masking's catalog.
	if !reflect.DeepEqual(crm.Credentials, c.Credentials) || !reflect.DeepEqual(crm.Policy, c.Policy) {
		t.Fatalf("crm must inherit credentials and policy: %+v", crm)
	}
	want := c.Masking
	want.CatalogDSN = ""
	if !reflect.DeepEqual(crm.Masking, want) {
		t.Fatalf("crm masking = %+v, want the top-level one without catalog_dsn", crm.Masking)
	}
	if c.Masking.CatalogDSN == "" {
		t.Fatal("resolving must not clear the top-level catalog_dsn")
	}

	if got, ok := c.Profile("kb"); !ok || !reflect.DeepEqual(got, kb) {
		t.Fatalf("Profile(kb) = %+v, %v", got, ok)
	}
	if _, ok := c.Profile(DefaultProfile); ok {
		t.Fatal("no default profile with upstreams:")
	}
	if c.Upstreams["crm"].Credentials != nil || c.Upstreams["kb"].Credentials == nil {
		t.Fatal("UpstreamProfile must keep absent sections nil")
	}
}

func TestProfileOwnCatalogAndInheritedCatalogCleared(t *testing.T) {
	// One profile under upstreams: still drops the inherited catalog_dsn.
	c, err := Parse([]byte(base + "upstreams: { kb: { host: h } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Profile("kb"); p.Masking.CatalogDSN != "" || len(p.Masking.Rules) != 1 {
		t.Fatalf("inherited masking: %+v", p.Masking)
	}
	// A profile's own masking section keeps its own catalog_dsn.
	c, err = Parse([]byte(base + "upstreams: { kb: { host: h, masking: { catalog_dsn: \"postgres://kbcat@h/kb\", rules: [ { column: x, method: \"null\" } ] } } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Profile("kb"); p.Masking.CatalogDSN != "postgres://kbcat@h/kb" {
		t.Fatalf("own masking: %+v", p.Masking)
	}
}

func TestProfileEnvExpansion(t *testing.T) {
	t.Setenv("KB_HOST", "kb.internal")
	t.Setenv("KB_PORT", "6000")
	t.Setenv("KB_DSN", "postgres://u:p w#x@kb.internal/kb")
	c, err := Parse([]byte(base + `
upstreams:
  kb:
    host: ${KB_HOST}
    port: ${KB_PORT}
    connect_timeout: ${KB_TIMEOUT:-7s}
    credentials: { native: { admin_dsn: "${KB_DSN}" } }
`))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.Profile("kb")
	if !ok || p.Upstream.Host != "kb.internal" || p.Upstream.Port != 6000 || p.Upstream.ConnectTimeout != 7*time.Second || p.Credentials.Native.AdminDSN != "postgres://u:p w#x@kb.internal/kb" {
		t.Fatalf("expansion: %+v", p)
	}
}

func TestProfileErrorsNameTheKeyPath(t *testing.T) {
	topBase := "tls: { self_signed: true }\nauth: { oidc: { issuer: https://idp.example.com } }\ncredentials: { native: { admin_dsn: \"postgres://h/db\" } }\n"
	cases := []struct{ name, doc, want string }{
		{"duplicate database", base + "upstreams: { a: { databases: [kb] }, b: { databases: [kb] } }\n",
			`upstreams.b.databases[0]: "kb" is already routed to profile "a"`},
		{"database twice in one profile", base + "upstreams: { a: { databases: [kb, kb] } }\n",
			`upstreams.a.databases[1]: "kb" is listed twice`},
		{"missing databases with two profiles", base + "upstreams: { a: { databases: [kb] }, b: { host: h } }\n",
			"upstreams.b.databases: required when several profiles are configured"},
		{"bad profile name", base + "upstreams: { KB: { host: h } }\n", "upstreams.KB: a profile name is"},
		{"profile name too long", base + "upstreams: { " + strings.Repeat("a", 64) + ": { host: h } }\n", "upstreams." + strings.Repeat("a", 64) + ": a profile name"},
		{"unknown key in profile", base + "upstreams: { kb: { polcy: {} } }\n", "upstreams.kb.polcy: unknown key"},
		{"unknown key in profile section", base + "upstreams: { kb: { credentials: { nativ: {} } } }\n", "upstreams.kb.credentials.nativ: unknown key"},
		{"unknown key deep in profile", base + "upstreams: { kb: { masking: { rules: [ { colum: x } ] } } }\n", "upstreams.kb.masking.rules[0].colum: unknown key"},
		{"bad duration in profile", base + "upstreams: { kb: { connect_timeout: soon } }\n", "upstreams.kb.connect_timeout: invalid duration"},
		{"null profile", base + "upstreams: { kb: }\n", "upstreams.kb: expected a mapping"},
		{"both upstream and upstreams", base + "upstream: { host: h }\nupstreams: { kb: { host: h } }\n",
			`upstream: use either upstream or upstreams (upstream is the single profile "default")`},
		{"bad port", base + "upstreams: { kb: { port: 70000 } }\n", "upstreams.kb.port: 70000 is not a port"},
		{"bad sslmode", base + "upstreams: { kb: { sslmode: maybe } }\n", "upstreams.kb.sslmode"},
		{"native without admin_dsn", base + "upstreams: { kb: { credentials: { provider: native } } }\n",
			"upstreams.kb.credentials.native.admin_dsn: required for provider native"},
		{"vault approle without secret", base + "upstreams: { kb: { credentials: { provider: vault, vault: { auth: approle, role_id: r } } } }\n",
			"upstreams.kb.credentials.vault.role_id"},
		{"approver not in the profile's roles", base + "upstreams: { kb: { policy: { roles: { readers: { actions: [read] } }, approval: { approvers: [dba] } } } }\n",
			`upstreams.kb.policy.approval.approvers[0]: group "dba" has no entry under upstreams.kb.policy.roles`},
		{"bad action in profile role", base + "upstreams: { kb: { policy: { roles: { r: { actions: [fly] } } } } }\n",
			"upstreams.kb.policy.roles.r.actions[0]"},
		{"bad masking method", base + "upstreams: { kb: { masking: { rules: [ { column: x, method: blur } ] } } }\n",
			"upstreams.kb.masking.rules[0].method"},
		{"hash without key", base + "upstreams: { kb: { masking: { rules: [ { column: x, method: hash } ] } } }\n",
			"upstreams.kb.masking.hmac_key: required by upstreams.kb.masking.rules[0] (method hash)"},
		{"own masking rules, vault, no catalog", base + "upstreams: { kb: { credentials: { provider: vault }, masking: { rules: [ { column: x, method: redact } ] } } }\n",
			"upstreams.kb.masking.catalog_dsn: required with masking rules when the profile's credentials provider is not native"},
		{"inherited masking rules, vault, top-level catalog not inherited", base + "upstreams: { kb: { credentials: { provider: vault } } }\n",
			"upstreams.kb.masking.catalog_dsn: required with masking rules"},
		{"inherited credentials are validated at the top level", strings.Replace(topBase, "credentials: { native: { admin_dsn: \"postgres://h/db\" } }", "credentials: { provider: vault, vault: { auth: magic } }", 1) + "upstreams: { kb: { host: h } }\n",
			"credentials.vault.auth"},
		{"inherited masking is validated at the top level", strings.Replace(base, "masking:\n", "masking:\n  derived: maybe\n", 1) + "upstreams: { kb: { host: h } }\n",
			"masking.derived"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want error containing %q, got %v", tc.name, tc.want, err)
		}
		if tc.name == "inherited masking is validated at the top level" && err != nil && strings.Contains(err.Error(), "upstreams.") {
			t.Errorf("%s: top-level key reported under a profile: %v", tc.name, err)
		}
	}
}

// With upstreams:, a top-level section no profile inherits is not in use and
// is not required to be valid (the default credentials have no admin_dsn).
func TestUnusedTopLevelCredentialsNotRequired(t *testing.T) {
	doc := `
tls: { self_signed: true }
auth: { oidc: { issuer: https://idp.example.com } }
upstreams:
  a: { databases: [a], credentials: { native: { admin_dsn: "postgres://h/a" } } }
  b: { databases: [b], credentials: { provider: static, static: { user: u } } }
`
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	// One profile, no databases: any database (today's behaviour).
	if _, err := Parse([]byte(base + "upstreams: { only: { host: h } }\n")); err != nil {
		t.Fatal(err)
	}
	// upstreams: {} is no profiles: upstream: is the default profile.
	c, err := Parse([]byte(base + "upstream: { host: h }\nupstreams: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ps := c.Profiles(); len(ps) != 1 || ps[0].Name != DefaultProfile || ps[0].Upstream.Host != "h" {
		t.Fatalf("profiles: %+v", ps)
	}
}

func TestProfileErrorsNeverEchoSecrets(t *testing.T) {
	const secret = "s3cr3t-Value"
	t.Setenv("PGW_SECRET", secret)
	docs := []string{
		base + "upstreams: { kb: { port: 0, credentials: { native: { admin_dsn: \"postgres://u:${PGW_SECRET}@h/db\" } } } }\n",
		base + "upstreams: { kb: { credentials: { provider: vault, vault: { auth: approle, secret_id: \"${PGW_SECRET}\" } } } }\n",
		base + "upstreams: { kb: { credentials: { provider: static, static: { password: \"${PGW_SECRET}\" } } } }\n",
		base + "upstreams: { kb: { credentials: { provider: vault, vault: { secret_id: \"${PGW_SECRET}\" } }, masking: { rules: [ { column: x, method: redact } ] } } }\n",
		base + "upstreams: { kb: { masking: { catalog_dsn: \"postgres://u:${PGW_SECRET}@h/db\", rules: [ { column: x, method: blur } ] } } }\n",
		base + "upstreams: { kb: { policy: { approval: { webhook: \"ftp://hooks/${PGW_SECRET}\" } } } }\n",
	}
	for i, doc := range docs {
		_, err := Parse([]byte(doc))
		if err == nil {
			t.Errorf("doc %d: want an error", i)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("doc %d: error echoes the secret: %v", i, err)
		}
	}
}

// ProfileFor routes as the listener does: the profile listing the
// database, else the one listing none, else nothing.
func TestProfileFor(t *testing.T) {
	c, err := Parse([]byte(twoProfiles))
	if err != nil {
		t.Fatal(err)
	}
	for db, want := range map[string]string{"kb_staging": "kb", "crm": "crm", "other": ""} {
		p, ok := c.ProfileFor(db)
		if p.Name != want || ok != (want != "") {
			t.Errorf("ProfileFor(%q) = %q, %v; want %q", db, p.Name, ok, want)
		}
	}
	// one profile listing no database serves any (several must list theirs)
	c, err = Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.ProfileFor("other"); !ok || p.Name != DefaultProfile {
		t.Errorf("one profile: ProfileFor(other) = %q, %v", p.Name, ok)
	}
	if c.ServesDatabase("other") != true {
		t.Error("ServesDatabase disagrees with ProfileFor")
	}
}

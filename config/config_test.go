package config

import (
	"strings"
	"testing"
	"time"
)

const minimal = `
tls: { self_signed: true }
auth:
  oidc:
    issuer: https://idp.example.com
credentials:
  native:
    admin_dsn: ${PGW_DSN}
`

func TestDefaultsAndExpansion(t *testing.T) {
	t.Setenv("PGW_DSN", "postgres://a:b#c: d@h/db")
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:6432" || c.Upstream.Port != 5432 || c.Credentials.TTL != 15*time.Minute || c.Policy.Approval.BulkRows != 1000 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.Credentials.Native.AdminDSN != "postgres://a:b#c: d@h/db" {
		t.Fatalf("expansion: %q", c.Credentials.Native.AdminDSN)
	}
}

func TestErrorsNameTheKeyPath(t *testing.T) {
	t.Setenv("PGW_DSN", "postgres://h/db")
	cases := map[string]string{
		minimal + "limits: { max_conections: 3 }\n":                          "limits.max_conections: unknown key",
		minimal + "policy: { roles: { a: { actions: [read, fly] } } }\n":     "policy.roles.a.actions[1]",
		minimal + "upstream: { connect_timeout: soon }\n":                    "upstream.connect_timeout: invalid duration",
		minimal + "upstream: { port: many }\n":                               "upstream.port",
		minimal + "masking: { rules: [ { column: x, method: partial } ] }\n": "masking.rules[0].keep_last",
		minimal + "masking: { rules: [ { column: x, method: hash } ] }\n":    "masking.hmac_key",
		minimal + "recording: { sinks: [ { type: webhook } ] }\n":            "recording.sinks[0].url",
		minimal + "policy: { approval: { mode: later } }\n":                  "policy.approval.mode",
		"tls: { self_signed: true }\nauth: { oidc: { issuer: https://idp.example.com } }\ncredentials: { provider: static, static: { user: u } }\nmasking: { rules: [ { column: email, method: redact } ] }\n": "masking.catalog_dsn",
		minimal + "policy: { approval: { webhook: ftp://x } }\n":                                                                  "policy.approval.webhook: must be an absolute http(s) URL",
		minimal + "recording: { sinks: [ { type: webhook, url: siem } ] }\n":                                                      "recording.sinks[0].url: must be",
		minimal + "store: { dsn: mysql://h/db }\n":                                                                                "store.dsn: must be a postgres:// URL",
		minimal + "store: { dsn: postgres://h/db }\nrecording: { sinks: [ { type: webhook, url: https://siem.example.com } ] }\n": "recording.sinks[0]: a webhook sink is not supported with store.dsn",
		minimal + "store: { dsn: postgres://h/db }\nrecording: { retention: 24h }\n":                                              "recording.retention: applies to the file store only",
		minimal + "store: { migrate: sometimes }\n":                                                                               "store.migrate",
		minimal + "cluster: { dead_after: 1s }\n":                                                                                 "cluster.dead_after",
		minimal + "cluster: { gateway_id: a/b }\n":                                                                                "cluster.gateway_id",
		minimal + "cluster: { advertise: nohostport }\n":                                                                          "cluster.advertise",
		"listen: [1, 2]\n": "listen: expected a single value",
	}
	for doc, want := range cases {
		_, err := Parse([]byte(doc))
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}

func TestTLSRequiredNeedsCert(t *testing.T) {
	t.Setenv("PGW_DSN", "postgres://h/db")
	_, err := Parse([]byte(strings.Replace(minimal, "tls: { self_signed: true }", "tls: { require: true }", 1)))
	if err == nil || !strings.Contains(err.Error(), "tls.require") {
		t.Fatalf("got %v", err)
	}
}

func TestExpansionOfTypedValues(t *testing.T) {
	t.Setenv("PGW_DSN", "postgres://h/db")
	t.Setenv("PGW_PORT", "6000")
	t.Setenv("PGW_BOOL", "true")
	t.Setenv("PGW_NULL", "null")
	c, err := Parse([]byte(minimal + "upstream:\n  port: ${PGW_PORT}\n  host: ${PGW_NULL}\nrecording:\n  results: ${PGW_BOOL}\nlog:\n  level: '${PGW_LEVEL:-warn}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream.Port != 6000 || !c.Recording.Results || c.Upstream.Host != "null" || c.Log.Level != "warn" {
		t.Fatalf("typed expansion: port %d results %v host %q level %q", c.Upstream.Port, c.Recording.Results, c.Upstream.Host, c.Log.Level)
	}
}

const samlBase = `
tls: { self_signed: true }
credentials:
  native:
    admin_dsn: postgres://h/db
`

func samlDoc(saml, extra string) string {
	return samlBase + "auth:\n  oidc: { issuer: https://idp.example.com }\n  saml: " + saml + "\n" + extra
}

func TestSAMLDefaultsAndGatewayTokens(t *testing.T) {
	c, err := Parse([]byte(samlDoc("{ idp_metadata_url: https://idp.example.com/saml/metadata, entity_id: https://pgw.example.com/saml, cert_file: saml.crt, key_file: saml.key }", "")))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Auth.SAML
	if !s.Configured() || s.UsernameAttribute != "email" || s.GroupsAttribute != "groups" || s.CertFile != "saml.crt" || s.KeyFile != "saml.key" {
		t.Fatalf("saml: %+v", s)
	}
	if c.Auth.GatewayTokens.TTL != time.Hour {
		t.Fatalf("gateway_tokens.ttl default: %v", c.Auth.GatewayTokens.TTL)
	}
	c, err = Parse([]byte(samlDoc("{ idp_metadata_file: idp.xml, entity_id: 'urn:pgwarden:sp', username_attribute: uid, groups_attribute: memberOf }", "")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.SAML.UsernameAttribute != "uid" || c.Auth.SAML.GroupsAttribute != "memberOf" {
		t.Fatalf("saml attributes: %+v", c.Auth.SAML)
	}
	// Not configured: no SAML checks at all.
	t.Setenv("PGW_DSN", "postgres://h/db")
	c, err = Parse([]byte(minimal))
	if err != nil || c.Auth.SAML.Configured() {
		t.Fatalf("minimal: %v %+v", err, c.Auth.SAML)
	}
}

func TestSAMLValidation(t *testing.T) {
	t.Setenv("PGW_DSN", "postgres://h/db")
	ok := "idp_metadata_url: https://idp.example.com/md, entity_id: https://pgw.example.com/saml"
	cases := map[string]string{
		samlDoc("{ entity_id: https://pgw.example.com/saml }", ""):                                             "auth.saml.idp_metadata_url: exactly one of",
		samlDoc("{ idp_metadata_file: a.xml, idp_metadata_url: https://i/md, entity_id: https://p/saml }", ""): "auth.saml.idp_metadata_url: exactly one of",
		samlDoc("{ idp_metadata_url: idp.example.com/md, entity_id: https://p/saml }", ""):                     "auth.saml.idp_metadata_url: must be an absolute http(s) URL",
		samlDoc("{ idp_metadata_file: a.xml }", ""):                                                            "auth.saml.entity_id: required",
		samlDoc("{ idp_metadata_file: a.xml, entity_id: pgwarden }", ""):                                       "auth.saml.entity_id: must be an absolute URL",
		samlDoc("{ "+ok+", cert_file: saml.crt }", ""):                                                         "auth.saml.key_file: cert_file and key_file must be set together",
		samlDoc("{ "+ok+", key_file: saml.key }", ""):                                                          "auth.saml.key_file: cert_file and key_file must be set together",
		samlDoc("{ "+ok+", username_attribute: '' }", ""):                                                      "auth.saml.username_attribute: required",
		samlDoc("{ "+ok+", groups_attribute: '' }", ""):                                                        "auth.saml.groups_attribute: required",
		samlDoc("{ "+ok+" }", "admin: { listen: '0.0.0.0:6480' }\n"):                                           "admin.public_url: required for SAML sign-in",
		samlDoc("{ "+ok+" }", "") + "  gateway_tokens: { ttl: 30s }\n":                                         "auth.gateway_tokens.ttl: must be between 1m and 12h",
		samlDoc("{ "+ok+" }", "") + "  gateway_tokens: { ttl: 13h }\n":                                         "auth.gateway_tokens.ttl: must be between 1m and 12h",
		samlBase + "auth: { oidc: { issuer: https://i }, gateway_tokens: { ttl: 0s } }\n":                      "auth.gateway_tokens.ttl",
		samlDoc("{ "+ok+", idp_metadata: x }", ""):                                                             "auth.saml.idp_metadata: unknown key",
	}
	for doc, want := range cases {
		_, err := Parse([]byte(doc))
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v\n%s", want, err, doc)
		}
	}
	// A public URL makes a non-loopback listener fine.
	if _, err := Parse([]byte(samlDoc("{ "+ok+" }", "admin: { listen: '0.0.0.0:6480', public_url: https://pgw.example.com }\n"))); err != nil {
		t.Fatal(err)
	}
}

func TestMCP(t *testing.T) {
	t.Setenv("PGW_DSN", "postgres://h/db")
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.MCP; m.Enabled || m.MaxRows != 200 || m.MaxBytes != 256<<10 || m.Limits.CallsPerMinute != 120 || m.Limits.RowsPerHour != 50000 {
		t.Fatalf("mcp defaults: %+v", m)
	}
	c, err = Parse([]byte(minimal + "upstream: { databases: [vectors, kb] }\nmcp: { enabled: true, limits: { rows_per_hour: 0 } }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MCPDatabase() != "vectors" || c.MCP.Limits.RowsPerHour != 0 || c.MCP.Limits.CallsPerMinute != 120 {
		t.Fatalf("mcp: %q %+v", c.MCPDatabase(), c.MCP)
	}
	if c, err = Parse([]byte(minimal + "mcp: { enabled: true, database: anything }\n")); err != nil || !c.ServesDatabase("anything") {
		t.Fatalf("a profile without databases serves any: %v", err)
	}
	cases := map[string]string{
		minimal + "mcp: { enabled: true }\n":                                                            "mcp.database: required when no profile lists",
		minimal + "upstream: { databases: [vectors] }\nmcp: { enabled: true, database: kb }\n":          `mcp.database: "kb" is not routed`,
		minimal + "upstream: { databases: [vectors] }\nadmin: { listen: '' }\nmcp: { enabled: true }\n": "mcp.enabled: needs admin.listen",
		minimal + "mcp: { max_rows: 0 }\n":                                                              "mcp.max_rows: must be between 1 and 10000",
		minimal + "mcp: { max_rows: 10001 }\n":                                                          "mcp.max_rows",
		minimal + "mcp: { max_bytes: 100 }\n":                                                           "mcp.max_bytes: must be between 1024",
		minimal + "mcp: { limits: { calls_per_minute: -1 } }\n":                                         "mcp.limits.calls_per_minute: must not be negative",
		minimal + "mcp: { limits: { rows_per_hour: -5 } }\n":                                            "mcp.limits.rows_per_hour",
		minimal + "mcp: { limits: { calls_per_hour: 5 } }\n":                                            "mcp.limits.calls_per_hour: unknown key",
		minimal + "mcp: { enable: true }\n":                                                             "mcp.enable: unknown key",
	}
	for doc, want := range cases {
		_, err := Parse([]byte(doc))
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}

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

package devstack

import (
	"testing"

	"github.com/pgwarden/pgwarden/config"
)

// The demo policy and masking rules form a valid configuration, and each
// call hands out its own copy (callers such as tests change them).
func TestDemoPolicyValidAndFresh(t *testing.T) {
	cfg := config.Default()
	cfg.TLS = config.TLS{SelfSigned: true, Require: true}
	cfg.Upstream.Databases = []string{"vectors"}
	cfg.Auth.OIDC.Issuer = "https://issuer.example.com"
	cfg.Credentials.Native.AdminDSN = "postgres://pgwarden_admin@127.0.0.1/vectors"
	cfg.Policy.Roles = DemoRoles()
	cfg.Masking.HMACKey = "k"
	cfg.Masking.Rules = DemoMaskRules()
	cfg.Store.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("demo policy does not validate: %v", err)
	}

	r := DemoRoles()
	a := r["analyst"]
	a.Actions[0] = "changed"
	r["dba"] = config.Role{}
	if got := DemoRoles(); got["analyst"].Actions[0] != "search" || got["dba"].DBRole != "vector_admin" {
		t.Fatalf("DemoRoles shares state between calls: %+v", got)
	}
	m := DemoMaskRules()
	m[0].Column = "changed"
	m[6].JSONKeys[0] = "changed"
	if got := DemoMaskRules(); got[0].Column != "email" || got[6].JSONKeys[0] != "email" {
		t.Fatalf("DemoMaskRules shares state between calls: %+v", got)
	}

	// Every PII column of the seeded customers table is masked for
	// non-unmask roles, and only dba unmasks.
	masked := map[string]bool{}
	for _, rule := range DemoMaskRules() {
		if rule.Table == "public.customers" || rule.Table == "" {
			masked[rule.Column] = true
		}
	}
	for _, col := range []string{"name", "email", "phone", "ssn", "credit_card", "address", "notes"} {
		if !masked[col] {
			t.Errorf("customers.%s has no masking rule", col)
		}
	}
	for name, role := range DemoRoles() {
		if role.Unmask != (name == "dba") {
			t.Errorf("role %s unmask = %v", name, role.Unmask)
		}
	}
}

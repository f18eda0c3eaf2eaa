package sqlpolicy

import (
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/config"
)

func explainConfig() *config.Config {
	cfg := config.Default()
	cfg.Policy = specPolicy()
	cfg.Masking.HMACKey = "k"
	cfg.Masking.Rules = []config.MaskRule{
		{Table: "public.customers", Column: "email", Method: "email"},
		{Table: "public.customers", Column: "ssn", Method: "partial", KeepLast: 4},
		{Table: "public.documents", Column: "metadata", JSONKeys: []string{"email", "phone"}, Method: "redact"},
		{Column: "phone", Method: "hash"},
	}
	return cfg
}

func TestExplain(t *testing.T) {
	var b strings.Builder
	err := Explain(&b, explainConfig(), []string{"analyst"},
		"SELECT email FROM customers; DELETE FROM documents WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"statement 1: SELECT email FROM customers",
		"action:   read",
		"decision: allow",
		"public.customers.email (email)",
		"public.customers.ssn (partial)",
		"phone (hash) in any table",
		"statement 2: DELETE FROM documents WHERE id = 1",
		"action:   delete",
		"public.documents.metadata (redact of keys email,phone)",
		"deny — pgwarden: action delete not allowed for groups [analyst]",
		"overall: deny",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "public.documents.metadata (redact of keys email,phone)\n  ") && strings.Index(out, "metadata") < strings.Index(out, "statement 2") {
		t.Errorf("documents rule shown for the customers statement:\n%s", out)
	}

	b.Reset()
	Explain(&b, explainConfig(), []string{"dba"}, "DELETE FROM documents WHERE id < 10")
	out = b.String()
	for _, want := range []string{"allow when the planner estimates at most 1000 rows", "needs approval (bulk_delete is in policy.approval.actions) above that", "none for these groups (unmask)"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}

	b.Reset()
	Explain(&b, explainConfig(), []string{"analyst"}, "SELEC 1")
	if out = b.String(); !strings.Contains(out, "parse error") || !strings.Contains(out, "action:   admin") {
		t.Errorf("unparseable:\n%s", out)
	}
}

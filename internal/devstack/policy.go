package devstack

import "github.com/pgwarden/pgwarden/config"

// DemoRoles is the SPEC's example policy over the demo database's roles:
// analyst reads and searches as vector_reader, ingest also writes as
// vector_writer, dba may do everything as vector_admin and sees unmasked
// values. Each call returns a fresh map the caller may change.
func DemoRoles() map[string]config.Role {
	return map[string]config.Role{
		"analyst": {Actions: []string{"search", "read"}, DBRole: "vector_reader"},
		"ingest":  {Actions: []string{"search", "read", "insert", "update", "delete"}, DBRole: "vector_writer"},
		"dba":     {Actions: []string{"all"}, DBRole: "vector_admin", Unmask: true},
	}
}

// DemoMaskRules are the masking rules for the synthetic PII the seed
// writes (customers' contact and card columns, the free-text notes naming
// people, the PII keys of documents.metadata, and any phone column). Each
// call returns a fresh slice the caller may change.
func DemoMaskRules() []config.MaskRule {
	return []config.MaskRule{
		{Table: "public.customers", Column: "email", Method: "email"},
		{Table: "public.customers", Column: "ssn", Method: "partial", KeepLast: 4},
		{Table: "public.customers", Column: "credit_card", Method: "partial", KeepLast: 4},
		{Table: "public.customers", Column: "name", Method: "redact"},
		{Table: "public.customers", Column: "address", Method: "redact"},
		{Table: "public.customers", Column: "notes", Method: "redact"}, // free text naming people: no detector finds names
		{Table: "public.documents", Column: "metadata", JSONKeys: []string{"email", "phone", "name", "author"}, Method: "redact"},
		{Column: "phone", Method: "hash"},
	}
}

// DemoSupportRoles is the policy of the support database: support agents
// search, read, open and update tickets as support_agent, analyst searches
// and reads as support_reader, dba may do everything as support_admin and
// sees unmasked values. Each call returns a fresh map the caller may change.
func DemoSupportRoles() map[string]config.Role {
	return map[string]config.Role{
		"support": {Actions: []string{"search", "read", "insert", "update"}, DBRole: "support_agent"},
		"analyst": {Actions: []string{"search", "read"}, DBRole: "support_reader"},
		"dba":     {Actions: []string{"all"}, DBRole: "support_admin", Unmask: true},
	}
}

// DemoSupportMaskRules are the masking rules for the tickets' customer
// contact columns and the PII keys of tickets.metadata. tickets.body, the
// text a RAG client retrieves, has no rule: contact details written in it
// are left to the detectors. Each call returns a fresh slice the caller
// may change.
func DemoSupportMaskRules() []config.MaskRule {
	return []config.MaskRule{
		{Table: "public.tickets", Column: "customer_email", Method: "email"},
		{Table: "public.tickets", Column: "customer_phone", Method: "partial", KeepLast: 4},
		{Table: "public.tickets", Column: "metadata", JSONKeys: []string{"email", "customer"}, Method: "redact"},
	}
}

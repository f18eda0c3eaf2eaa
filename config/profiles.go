package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"

	"go.yaml.in/yaml/v3"
)

// DefaultProfile is the name of the profile `upstream:` defines.
const DefaultProfile = "default"

// UpstreamProfile is one entry under upstreams: as written.
//
// Decoding fills what the entry leaves out with the package defaults: the
// inline upstream keys with those of upstream: (defaultUpstream), and a
// section that is present (credentials:, policy:, masking:) is decoded on
// top of that section's package defaults, not on top of the top-level
// section. A section that is absent stays nil and the resolved Profile
// uses the top-level one (see Config.Profiles for the masking catalog).
type UpstreamProfile struct {
	Upstream    `yaml:",inline"` // host, port, databases, sslmode, connect_timeout
	Credentials *Credentials     `yaml:"credentials"` // nil: the top-level section
	Policy      *Policy          `yaml:"policy"`      // nil: the top-level section
	Masking     *Masking         `yaml:"masking"`     // nil: the top-level section (without its catalog_dsn)
}

// UnmarshalYAML decodes a profile on top of the package defaults.
func (p *UpstreamProfile) UnmarshalYAML(n *yaml.Node) error {
	var raw struct {
		Upstream    `yaml:",inline"`
		Credentials yaml.Node `yaml:"credentials"`
		Policy      yaml.Node `yaml:"policy"`
		Masking     yaml.Node `yaml:"masking"`
	}
	raw.Upstream = defaultUpstream()
	if err := n.Decode(&raw); err != nil {
		return err
	}
	out := UpstreamProfile{Upstream: raw.Upstream}
	if present(&raw.Credentials) {
		c := defaultCredentials()
		if err := raw.Credentials.Decode(&c); err != nil {
			return err
		}
		out.Credentials = &c
	}
	if present(&raw.Policy) {
		pol := defaultPolicy()
		if err := raw.Policy.Decode(&pol); err != nil {
			return err
		}
		out.Policy = &pol
	}
	if present(&raw.Masking) {
		m := defaultMasking()
		if err := raw.Masking.Decode(&m); err != nil {
			return err
		}
		out.Masking = &m
	}
	*p = out
	return nil
}

// present reports whether a section's node was written with a value
// (absent and `key: null` both mean "inherit the top-level section").
func present(n *yaml.Node) bool {
	return n.Kind != 0 && !(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// Profile is one resolved connection profile: every section filled in.
// Its maps and slices are shared with the Config; treat it as read-only.
type Profile struct {
	Name        string
	Upstream    Upstream
	Credentials Credentials
	Policy      Policy
	Masking     Masking
}

// Profiles returns the connection profiles sorted by name: those under
// upstreams:, or, without it, one named "default" made of upstream: and the
// top-level credentials, policy and masking.
//
// The masking catalog rule: masking.catalog_dsn names the server whose
// catalog maps result columns to tables, so it belongs to one server. A
// profile under upstreams: that has its own masking section uses its own
// catalog_dsn; one that inherits the top-level masking section gets it
// without catalog_dsn (that names another server's catalog), and then
// falls back like any profile to its own credentials.native.admin_dsn.
// Validate rejects a profile with masking rules, no catalog_dsn of its own
// and a credentials provider other than native.
func (c *Config) Profiles() []Profile {
	if len(c.Upstreams) == 0 {
		return []Profile{c.legacyProfile()}
	}
	names := slices.Sorted(maps.Keys(c.Upstreams))
	out := make([]Profile, 0, len(names))
	for _, name := range names {
		out = append(out, c.resolve(name, c.Upstreams[name]))
	}
	return out
}

// Profile returns the resolved profile called name (false when none).
func (c *Config) Profile(name string) (Profile, bool) {
	if len(c.Upstreams) == 0 {
		if name != DefaultProfile {
			return Profile{}, false
		}
		return c.legacyProfile(), true
	}
	up, ok := c.Upstreams[name]
	if !ok {
		return Profile{}, false
	}
	return c.resolve(name, up), true
}

func (c *Config) legacyProfile() Profile {
	return Profile{Name: DefaultProfile, Upstream: c.Upstream, Credentials: c.Credentials, Policy: c.Policy, Masking: c.Masking}
}

func (c *Config) resolve(name string, up UpstreamProfile) Profile {
	p := Profile{Name: name, Upstream: up.Upstream, Credentials: c.Credentials, Policy: c.Policy, Masking: c.Masking}
	if up.Credentials != nil {
		p.Credentials = *up.Credentials
	}
	if up.Policy != nil {
		p.Policy = *up.Policy
	}
	if up.Masking != nil {
		p.Masking = *up.Masking
	} else {
		p.Masking.CatalogDSN = "" // another server's catalog; see Profiles
	}
	return p
}

var profileNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// checkProfileNodes reports document-level mistakes under upstreams: that
// decoding cannot see: upstream: written next to a non-empty upstreams:,
// and a profile written without a mapping.
func checkProfileNodes(doc *yaml.Node) error {
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	var hasUpstream bool
	var ups *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		switch doc.Content[i].Value {
		case "upstream":
			hasUpstream = true
		case "upstreams":
			ups = doc.Content[i+1]
		}
	}
	if ups == nil || ups.Kind != yaml.MappingNode || len(ups.Content) == 0 {
		return nil // absent, null or {}: upstream: (or its defaults) is the one profile
	}
	if hasUpstream {
		return &Error{Path: "upstream", Msg: `use either upstream or upstreams (upstream is the single profile "default")`}
	}
	for i := 0; i+1 < len(ups.Content); i += 2 {
		if ups.Content[i+1].Kind != yaml.MappingNode {
			return &Error{Path: join("upstreams", ups.Content[i].Value), Msg: "expected a mapping"}
		}
	}
	return nil
}

// validateSections checks the upstream, credentials, policy and masking
// sections: the top-level ones as written (upstream: only without
// upstreams:, and with upstreams: a top-level section only when some
// profile inherits it), then each profile's own, at upstreams.<name>.
func (c *Config) validateSections() error {
	if len(c.Upstreams) == 0 {
		if err := validateUpstream("upstream", c.Upstream); err != nil {
			return err
		}
		if err := validateCredentials("", c.Credentials); err != nil {
			return err
		}
		if err := validatePolicy("", c.Policy); err != nil {
			return err
		}
		return validateMasking("", c.Masking, c.Credentials.Provider)
	}
	names := slices.Sorted(maps.Keys(c.Upstreams))
	var inheritCred, inheritPol, inheritMask bool
	for _, name := range names {
		up := c.Upstreams[name]
		inheritCred = inheritCred || up.Credentials == nil
		inheritPol = inheritPol || up.Policy == nil
		inheritMask = inheritMask || up.Masking == nil
	}
	if inheritCred {
		if err := validateCredentials("", c.Credentials); err != nil {
			return err
		}
	}
	if inheritPol {
		if err := validatePolicy("", c.Policy); err != nil {
			return err
		}
	}
	if inheritMask {
		// Its catalog_dsn is not inherited: the catalog rule is checked
		// per profile below.
		if err := validateMaskingRules("", c.Masking); err != nil {
			return err
		}
	}
	routed := map[string]string{} // database -> profile
	for _, name := range names {
		prefix := join("upstreams", name)
		if !profileNameRe.MatchString(name) {
			return &Error{Path: prefix, Msg: "a profile name is 1-63 lowercase letters, digits, _ or -, starting with a letter or digit"}
		}
		up := c.Upstreams[name]
		if err := validateUpstream(prefix, up.Upstream); err != nil {
			return err
		}
		if len(names) > 1 && len(up.Databases) == 0 {
			return &Error{Path: join(prefix, "databases"), Msg: "required when several profiles are configured"}
		}
		for i, d := range up.Databases {
			if other, ok := routed[d]; ok && other != name {
				return &Error{Path: fmt.Sprintf("%s[%d]", join(prefix, "databases"), i), Msg: fmt.Sprintf("%q is already routed to profile %q", d, other)}
			}
			routed[d] = name
		}
		if up.Credentials != nil {
			if err := validateCredentials(prefix, *up.Credentials); err != nil {
				return err
			}
		}
		if up.Policy != nil {
			if err := validatePolicy(prefix, *up.Policy); err != nil {
				return err
			}
		}
		p := c.resolve(name, up)
		if up.Masking != nil {
			if err := validateMasking(prefix, p.Masking, p.Credentials.Provider); err != nil {
				return err
			}
		} else if err := validateCatalog(prefix, p.Masking, p.Credentials.Provider); err != nil {
			return err
		}
	}
	return nil
}

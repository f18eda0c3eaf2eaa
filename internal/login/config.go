package login

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ClientConfig is the client configuration file (client.yaml): where to log
// in and which gateway `pgwarden psql` connects to. Every key is optional.
//
//	issuer: https://idp.example.com/realms/data
//	client_id: pgwarden-cli
//	scopes: [openid, offline_access]
//	gateway:
//	  host: pgwarden.example.com
//	  port: 6432
//	  dbname: vectors
//	  user: alice@example.com   # default: the token's email claim
//	  sslmode: require          # never weaker than require
type ClientConfig struct {
	Issuer   string   `yaml:"issuer"`
	ClientID string   `yaml:"client_id"`
	Scopes   []string `yaml:"scopes"`
	Gateway  Gateway  `yaml:"gateway"`
}

// Gateway is where `pgwarden psql` connects.
type Gateway struct {
	Host    string `yaml:"host"`
	Port    int    `yaml:"port"`
	DBName  string `yaml:"dbname"`
	User    string `yaml:"user"`
	SSLMode string `yaml:"sslmode"`
}

const maxConfigBytes = 64 << 10

// DefaultConfigPath is os.UserConfigDir()/pgwarden/client.yaml.
func DefaultConfigPath() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "pgwarden", "client.yaml"), nil
}

// LoadClientConfig reads path; "" means DefaultConfigPath, whose absence is
// not an error (an empty config). An explicit path must exist.
func LoadClientConfig(path string) (*ClientConfig, error) {
	explicit := path != ""
	if !explicit {
		p, err := DefaultConfigPath()
		if err != nil {
			return &ClientConfig{}, nil
		}
		path = p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return &ClientConfig{}, nil
		}
		return nil, fmt.Errorf("client config: %w", err)
	}
	c, err := ParseClientConfig(b)
	if err != nil {
		return nil, fmt.Errorf("client config %s: %w", path, err)
	}
	return c, nil
}

// ParseClientConfig parses and checks a client config; unknown keys are errors.
func ParseClientConfig(b []byte) (*ClientConfig, error) {
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxConfigBytes)
	}
	c := &ClientConfig{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // an empty file is an empty config
		return nil, err
	}
	if c.Issuer != "" && !strings.HasPrefix(c.Issuer, "https://") && !strings.HasPrefix(c.Issuer, "http://") {
		return nil, fmt.Errorf("issuer: %q must be an http(s) URL", c.Issuer)
	}
	if c.Gateway.Port < 0 || c.Gateway.Port > 65535 {
		return nil, fmt.Errorf("gateway.port: %d out of range", c.Gateway.Port)
	}
	switch c.Gateway.SSLMode {
	case "", "require", "verify-ca", "verify-full":
	default:
		return nil, fmt.Errorf("gateway.sslmode: %q (pgwarden requires TLS: require, verify-ca or verify-full)", c.Gateway.SSLMode)
	}
	for _, s := range []string{c.Gateway.Host, c.Gateway.DBName, c.Gateway.User, c.ClientID} {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, errors.New("control characters in a value")
		}
	}
	return c, nil
}

// PsqlEnv is environ with what psql needs to connect through the gateway:
// PGPASSWORD is the token (always replaced); PGHOST, PGPORT, PGDATABASE,
// PGUSER and PGSSLMODE come from the client config unless environ sets them
// already; PGSSLMODE defaults to require and PGUSER to the token's user.
func PsqlEnv(environ []string, c *ClientConfig, token string) []string {
	set := map[string]bool{}
	out := make([]string, 0, len(environ)+6)
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PGPASSWORD" {
			continue
		}
		set[k] = true
		out = append(out, kv)
	}
	add := func(k, v string) {
		if v != "" && !set[k] {
			out = append(out, k+"="+v)
			set[k] = true
		}
	}
	g := c.Gateway
	if g.Host != "" {
		if h, p, err := net.SplitHostPort(g.Host); err == nil && g.Port == 0 {
			g.Host = h
			g.Port, _ = strconv.Atoi(p)
		}
	}
	add("PGHOST", g.Host)
	if g.Port != 0 {
		add("PGPORT", strconv.Itoa(g.Port))
	}
	add("PGDATABASE", g.DBName)
	add("PGUSER", g.User)
	add("PGUSER", UserFromToken(token))
	sslmode := g.SSLMode
	if sslmode == "" {
		sslmode = "require"
	}
	add("PGSSLMODE", sslmode)
	return append(out, "PGPASSWORD="+token)
}

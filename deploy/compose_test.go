package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pgwarden/pgwarden/config"
)

// The subset of the Compose file format compose.yaml uses. Decoding with
// KnownFields makes a key outside it (a typo such as depend_on, or a key
// this test does not know how to check) an error.
type composeFile struct {
	Name        string                    `yaml:"name"`
	Services    map[string]composeService `yaml:"services"`
	Volumes     map[string]any            `yaml:"volumes"`
	XGateway    any                       `yaml:"x-gateway"`
	XGatewayEnv any                       `yaml:"x-gateway-env"`
}

type composeService struct {
	Image           string                      `yaml:"image"`
	Build           *composeBuild               `yaml:"build"`
	Restart         string                      `yaml:"restart"`
	Hostname        string                      `yaml:"hostname"`
	ReadOnly        bool                        `yaml:"read_only"`
	Tmpfs           []string                    `yaml:"tmpfs"`
	DependsOn       map[string]composeDependsOn `yaml:"depends_on"`
	Environment     map[string]string           `yaml:"environment"`
	Volumes         []string                    `yaml:"volumes"`
	Ports           []string                    `yaml:"ports"`
	Healthcheck     *composeHealthcheck         `yaml:"healthcheck"`
	ExtraHosts      []string                    `yaml:"extra_hosts"`
	StopGracePeriod string                      `yaml:"stop_grace_period"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeDependsOn struct {
	Condition string `yaml:"condition"`
}

type composeHealthcheck struct {
	Test     []string `yaml:"test"`
	Interval string   `yaml:"interval"`
	Timeout  string   `yaml:"timeout"`
	Retries  int      `yaml:"retries"`
}

const composeDir = "compose"

var gatewayServices = []string{"gateway-1", "gateway-2"}

func loadCompose(t *testing.T, data []byte) (*composeFile, error) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	return &f, nil
}

func readCompose(t *testing.T) *composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := loadCompose(t, data)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f
}

// composeVar is Compose's interpolation: ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?error}, ${VAR?error}.
var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate expands s as Compose does with the shell environment env.
func interpolate(s string, env map[string]string) (string, error) {
	var err error
	out := composeVar.ReplaceAllStringFunc(s, func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		v, set := env[sub[1]]
		switch op := sub[2]; op {
		case ":-":
			if v == "" {
				return sub[3]
			}
		case "-":
			if !set {
				return sub[3]
			}
		case ":?", "?":
			if (op == ":?" && v == "") || !set {
				err = fmt.Errorf("required variable %s is missing: %s", sub[1], sub[3])
			}
		}
		return v
	})
	return out, err
}

// serviceEnv is the environment Compose gives the service's container.
func serviceEnv(t *testing.T, svc composeService, shell map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range svc.Environment {
		x, err := interpolate(v, shell)
		if err != nil {
			t.Fatalf("environment %s: %v", k, err)
		}
		env[k] = x
	}
	return env
}

// mount is one short-syntax volume entry: SOURCE:TARGET[:MODE].
type mount struct{ source, target, mode string }

func mounts(t *testing.T, svc composeService) []mount {
	t.Helper()
	var ms []mount
	for _, v := range svc.Volumes {
		p := strings.Split(v, ":")
		if len(p) < 2 || len(p) > 3 {
			t.Fatalf("volume %q: want SOURCE:TARGET[:MODE]", v)
		}
		m := mount{source: p[0], target: p[1]}
		if len(p) == 3 {
			m.mode = p[2]
		}
		ms = append(ms, m)
	}
	return ms
}

func isBind(source string) bool {
	return strings.HasPrefix(source, ".") || strings.HasPrefix(source, "/")
}

// bindSource resolves a bind mount's source against compose.yaml's folder
// and requires it inside the repository.
func bindSource(t *testing.T, source string) string {
	t.Helper()
	p := filepath.Join(composeDir, source)
	root, _ := filepath.Abs("..")
	abs, _ := filepath.Abs(p)
	if !strings.HasPrefix(abs, root+string(filepath.Separator)) {
		t.Fatalf("mount source %s is outside the repository", source)
	}
	return p
}

func TestComposeStructure(t *testing.T) {
	f := readCompose(t)
	for _, name := range []string{"upstream", "store", "gateway-1", "gateway-2", "haproxy"} {
		if _, ok := f.Services[name]; !ok {
			t.Fatalf("service %s missing (have %v)", name, mapKeys(f.Services))
		}
	}
	if img := f.Services["upstream"].Image; !strings.HasPrefix(img, "pgvector/pgvector:pg") {
		t.Errorf("upstream image %q: want pgvector/pgvector:pgNN", img)
	}
	if img := f.Services["store"].Image; !strings.HasPrefix(img, "postgres:") && !strings.HasPrefix(img, "pgvector/pgvector:") {
		t.Errorf("store image %q: want a PostgreSQL image", img)
	}
	for _, name := range []string{"upstream", "store"} {
		if hc := f.Services[name].Healthcheck; hc == nil || !slices.Contains(hc.Test, "pg_isready") {
			t.Errorf("%s: a pg_isready healthcheck is what the gateways' depends_on waits for", name)
		}
	}
	for _, name := range gatewayServices {
		svc := f.Services[name]
		if svc.Build == nil {
			t.Fatalf("%s: not built from the repository", name)
		}
		ctx := filepath.Join(composeDir, svc.Build.Context)
		if abs, _ := filepath.Abs(ctx); abs != mustAbs(t, "..") {
			t.Errorf("%s: build context %s is not the repository root", name, svc.Build.Context)
		}
		df := svc.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, dep := range []string{"store", "upstream"} {
			if d, ok := svc.DependsOn[dep]; !ok || d.Condition != "service_healthy" {
				t.Errorf("%s: want depends_on %s with condition service_healthy, have %+v", name, dep, svc.DependsOn)
			}
		}
		if !svc.ReadOnly {
			t.Errorf("%s: want read_only: true (the chart's readOnlyRootFilesystem too)", name)
		}
	}
	hp := f.Services["haproxy"]
	for _, gw := range gatewayServices {
		if _, ok := hp.DependsOn[gw]; !ok {
			t.Errorf("haproxy: no depends_on %s", gw)
		}
	}
	if !slices.ContainsFunc(hp.Ports, func(p string) bool { return strings.HasSuffix(p, ":6432") }) {
		t.Errorf("haproxy publishes %v, not the Postgres port 6432", hp.Ports)
	}

	// Every bind mount's file is in the repository; every named volume is declared.
	for name, svc := range f.Services {
		for _, m := range mounts(t, svc) {
			if !isBind(m.source) {
				if _, ok := f.Volumes[m.source]; !ok {
					t.Errorf("%s: volume %s is not declared under volumes:", name, m.source)
				}
				continue
			}
			p := bindSource(t, m.source)
			st, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: mounted file: %v", name, err)
				continue
			}
			if !st.Mode().IsRegular() {
				t.Errorf("%s: %s is not a file", name, p)
			}
			if m.mode != "ro" {
				t.Errorf("%s: mount %s should be read-only (:ro)", name, m.source)
			}
			if strings.HasPrefix(m.target, "/docker-entrypoint-initdb.d/") && strings.HasSuffix(p, ".sh") && st.Mode()&0o111 == 0 {
				t.Errorf("%s: %s is not executable", name, p)
			}
		}
	}
}

// The issuer is the operator's: compose refuses to start without OIDC_ISSUER.
func TestComposeRequiresIssuer(t *testing.T) {
	f := readCompose(t)
	for _, gw := range gatewayServices {
		v, ok := f.Services[gw].Environment["OIDC_ISSUER"]
		if !ok {
			t.Fatalf("%s: no OIDC_ISSUER in its environment", gw)
		}
		if _, err := interpolate(v, map[string]string{}); err == nil {
			t.Errorf("%s: OIDC_ISSUER=%q has a default; want ${OIDC_ISSUER:?...}", gw, v)
		}
	}
}

// haproxyConfig is haproxy.cfg as sections of keyword lines.
type haproxySection struct {
	kind, name string
	lines      [][]string
}

func parseHAProxy(data []byte) []haproxySection {
	var out []haproxySection
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "global", "defaults", "frontend", "backend", "listen", "resolvers":
			s := haproxySection{kind: fields[0]}
			if len(fields) > 1 {
				s.name = fields[1]
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			continue
		}
		out[len(out)-1].lines = append(out[len(out)-1].lines, fields)
	}
	return out
}

func (s haproxySection) find(keyword ...string) [][]string {
	var out [][]string
	for _, l := range s.lines {
		if len(l) >= len(keyword) && slices.Equal(l[:len(keyword)], keyword) {
			out = append(out, l)
		}
	}
	return out
}

func (s haproxySection) has(keyword ...string) bool { return len(s.find(keyword...)) > 0 }

// checkHAProxy checks that the frontend binding :6432 sends TCP to a backend
// of every gateway's Postgres listener, health-checked over HTTP with
// GET /readyz on the admin port 6480.
func checkHAProxy(data []byte, gateways []string) error {
	secs := parseHAProxy(data)
	byName := map[string]haproxySection{}
	var front *haproxySection
	for i, s := range secs {
		if s.kind == "backend" {
			byName[s.name] = s
		}
		if s.kind == "frontend" && slices.ContainsFunc(s.find("bind"), func(l []string) bool { return len(l) > 1 && strings.HasSuffix(l[1], ":6432") }) {
			front = &secs[i]
		}
	}
	if front == nil {
		return fmt.Errorf("no frontend binds :6432")
	}
	if !front.has("mode", "tcp") {
		return fmt.Errorf("frontend %s: not mode tcp", front.name)
	}
	db := front.find("default_backend")
	if len(db) != 1 || len(db[0]) != 2 {
		return fmt.Errorf("frontend %s: want one default_backend", front.name)
	}
	be, ok := byName[db[0][1]]
	if !ok {
		return fmt.Errorf("frontend %s: backend %s is not defined", front.name, db[0][1])
	}
	if !be.has("mode", "tcp") {
		return fmt.Errorf("backend %s: not mode tcp", be.name)
	}
	if !be.has("option", "httpchk") {
		return fmt.Errorf("backend %s: no option httpchk", be.name)
	}
	if !slices.ContainsFunc(be.find("http-check", "send"), func(l []string) bool {
		i := slices.Index(l, "uri")
		return i >= 0 && i+1 < len(l) && l[i+1] == "/readyz" && slices.Contains(l, "GET")
	}) {
		return fmt.Errorf("backend %s: the health check is not GET /readyz", be.name)
	}
	if !be.has("http-check", "expect", "status", "200") {
		return fmt.Errorf("backend %s: no http-check expect status 200", be.name)
	}
	defaults := []string{}
	if ds := be.find("default-server"); len(ds) > 0 {
		defaults = ds[0][1:]
	}
	servers := map[string][]string{}
	for _, l := range be.find("server") {
		if len(l) < 3 {
			return fmt.Errorf("backend %s: short server line %v", be.name, l)
		}
		servers[l[1]] = append(append([]string{l[2]}, defaults...), l[3:]...)
	}
	for _, gw := range gateways {
		s, ok := servers[gw]
		if !ok {
			return fmt.Errorf("backend %s: no server %s (have %v)", be.name, gw, mapKeys(servers))
		}
		if s[0] != gw+":6432" {
			return fmt.Errorf("backend %s: server %s at %s, want %s:6432", be.name, gw, s[0], gw)
		}
		if !slices.Contains(s, "check") {
			return fmt.Errorf("backend %s: server %s is not health-checked", be.name, gw)
		}
		if i := slices.Index(s, "port"); i < 0 || i+1 >= len(s) || s[i+1] != "6480" {
			return fmt.Errorf("backend %s: server %s is not checked on the admin port 6480", be.name, gw)
		}
	}
	if len(servers) != len(gateways) {
		return fmt.Errorf("backend %s: servers %v, want exactly %v", be.name, mapKeys(servers), gateways)
	}
	return nil
}

func TestComposeHAProxy(t *testing.T) {
	f := readCompose(t)
	var cfgPath string
	for _, m := range mounts(t, f.Services["haproxy"]) {
		if m.target == "/usr/local/etc/haproxy/haproxy.cfg" {
			cfgPath = bindSource(t, m.source)
		}
	}
	if cfgPath == "" {
		t.Fatal("haproxy: no haproxy.cfg mounted at /usr/local/etc/haproxy/haproxy.cfg")
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkHAProxy(data, gatewayServices); err != nil {
		t.Fatal(err)
	}
	// The admin frontend (approvals UI, API) reaches both gateways' 6480 too.
	for _, s := range parseHAProxy(data) {
		if s.kind == "backend" && s.has("mode", "http") {
			for _, gw := range gatewayServices {
				if !slices.ContainsFunc(s.find("server", gw), func(l []string) bool { return len(l) > 2 && l[2] == gw+":6480" }) {
					t.Errorf("backend %s: no server %s at %s:6480", s.name, gw, gw)
				}
			}
		}
	}

	t.Run("the check refuses a wrong config", func(t *testing.T) {
		for name, bad := range map[string]string{
			"gateway-2 missing": strings.ReplaceAll(string(data), "server gateway-2 gateway-2:6432", ""),
			"check on 6432":     strings.ReplaceAll(string(data), "check port 6480", "check"),
			"health path":       strings.ReplaceAll(string(data), "uri /readyz", "uri /healthz"),
		} {
			if err := checkHAProxy([]byte(bad), gatewayServices); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
	})

	// HAProxy's own parser, where it is installed (not part of make setup).
	if hp, err := exec.LookPath("haproxy"); err == nil {
		out, err := exec.Command(hp, "-c", "-f", cfgPath).CombinedOutput()
		if err != nil {
			t.Errorf("haproxy -c: %v\n%s", err, out)
		}
	}
}

// The shell environment the quick-start is started with in this test.
var composeShell = map[string]string{"OIDC_ISSUER": "https://idp.example.com"}

var configRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// setConfigEnv makes the process environment what the container has for
// every ${NAME} the config references, and fails on a reference the
// container does not set and that has no default (it would expand to "").
func setConfigEnv(t *testing.T, cfg []byte, env map[string]string) {
	t.Helper()
	for _, m := range configRef.FindAllSubmatch(cfg, -1) {
		name := string(m[1])
		v, ok := env[name]
		if !ok && len(m[2]) == 0 {
			t.Errorf("the config references ${%s}, which the container's environment does not set", name)
		}
		t.Setenv(name, v) // "" = unset for config.ExpandEnv: the default applies
	}
}

func TestComposeGatewayConfig(t *testing.T) {
	f := readCompose(t)
	storeEnv := serviceEnv(t, f.Services["store"], composeShell)
	upstreamEnv := serviceEnv(t, f.Services["upstream"], composeShell)
	ids := map[string]bool{}
	for _, gw := range gatewayServices {
		t.Run(gw, func(t *testing.T) {
			svc := f.Services[gw]
			var cfgPath string
			for _, m := range mounts(t, svc) {
				if m.target == "/etc/pgwarden/pgwarden.yaml" {
					cfgPath = bindSource(t, m.source)
				}
			}
			if cfgPath == "" {
				t.Fatal("no configuration mounted at /etc/pgwarden/pgwarden.yaml (the image's CMD reads it)")
			}
			data, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			env := serviceEnv(t, svc, composeShell)
			setConfigEnv(t, data, env)
			cfg, err := config.Parse(data)
			if err != nil {
				t.Fatalf("%s: %v", cfgPath, err)
			}
			if cfg.Listen != "0.0.0.0:6432" || cfg.Admin.Listen != "0.0.0.0:6480" {
				t.Errorf("listen %s, admin.listen %s: want 0.0.0.0:6432 and 0.0.0.0:6480", cfg.Listen, cfg.Admin.Listen)
			}
			if cfg.Auth.OIDC.Issuer != composeShell["OIDC_ISSUER"] {
				t.Errorf("issuer %q, want the operator's OIDC_ISSUER", cfg.Auth.OIDC.Issuer)
			}
			if cfg.Upstream.Host != "upstream" {
				t.Errorf("upstream.host %q, want the upstream service", cfg.Upstream.Host)
			}
			if cfg.Store.DSN == "" {
				t.Fatal("no store.dsn: the gateways would not share a store")
			}
			if cfg.Store.Dir != "/var/lib/pgwarden/data" || !slices.ContainsFunc(mounts(t, svc), func(m mount) bool { return m.target == cfg.Store.Dir }) {
				t.Errorf("store.dir %s is not the gateway's data volume", cfg.Store.Dir)
			}
			checkDSN(t, "store.dsn", cfg.Store.DSN, "store", storeEnv["POSTGRES_USER"], storeEnv["POSTGRES_PASSWORD"], storeEnv["POSTGRES_DB"])
			checkDSN(t, "credentials.native.admin_dsn", cfg.Credentials.Native.AdminDSN, "upstream", "pgwarden_admin", upstreamEnv["PGWARDEN_ADMIN_PASSWORD"], upstreamEnv["POSTGRES_DB"])
			if id := cfg.Cluster.ID(); id != gw {
				t.Errorf("cluster gateway id %q, want %q", id, gw)
			}
			ids[cfg.Cluster.ID()] = true
			if cfg.Cluster.Advertise != gw+":6432" {
				t.Errorf("cluster.advertise %q, want %s:6432 (the other gateway forwards cancel requests there)", cfg.Cluster.Advertise, gw)
			}
		})
	}
	if len(ids) != len(gatewayServices) {
		t.Errorf("gateway ids %v are not distinct", mapKeys(ids))
	}
}

// checkDSN checks that dsn reaches service's PostgreSQL as user/password/db.
func checkDSN(t *testing.T, key, dsn, service, user, password, db string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Errorf("%s: %v", key, err)
		return
	}
	pw, _ := u.User.Password()
	host, _, _ := net.SplitHostPort(u.Host)
	if host != service || u.User.Username() != user || pw != password || strings.TrimPrefix(u.Path, "/") != db {
		t.Errorf("%s: %s@%s/%s (password match %v), want %s@%s/%s with the service's password", key, u.User.Username(), host, strings.TrimPrefix(u.Path, "/"), pw == password, user, service, db)
	}
}

func TestComposeDecoderRefusesUnknownKeys(t *testing.T) {
	bad := "services:\n  store:\n    image: postgres:16\n    depend_on: [upstream]\n"
	if _, err := loadCompose(t, []byte(bad)); err == nil || !strings.Contains(err.Error(), "depend_on") {
		t.Fatalf("a misspelt key was accepted: %v", err)
	}
}

func mapKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

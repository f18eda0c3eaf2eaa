package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/config"
)

// hydra is a real ORY Hydra v2.3.0 (built by scripts/hydra-tool.sh) serving
// on 127.0.0.1 with an in-memory store and JWT access tokens: the OpenID
// Provider of a CI job that authenticates with client credentials.
type hydra struct {
	Issuer string // "http://127.0.0.1:<public>/" (Hydra keeps the slash)
	public string
	admin  string
	log    *bytes.Buffer
}

func hydraBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PGWARDEN_HYDRA_BIN")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", ".tools", "bin", "hydra"))
	}
	if _, err := os.Stat(bin); err != nil {
		missing(t, fmt.Sprintf("ORY Hydra binary not built at %s (run scripts/hydra-tool.sh, or make setup)", bin))
	}
	return bin
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startHydra(t testing.TB) *hydra { return startHydraWith(t, "") }

// startHydraWith starts Hydra; app, when set, is the base URL of the
// login and consent app (app/login, app/consent) of browser flows.
func startHydraWith(t testing.TB, app string) *hydra {
	t.Helper()
	bin := hydraBinary(t)
	pub, adm := freePort(t), freePort(t)
	h := &hydra{
		Issuer: fmt.Sprintf("http://127.0.0.1:%d/", pub),
		public: fmt.Sprintf("http://127.0.0.1:%d", pub),
		admin:  fmt.Sprintf("http://127.0.0.1:%d", adm),
		log:    &bytes.Buffer{},
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`dsn: memory
serve:
  public:
    host: 127.0.0.1
    port: %d
  admin:
    host: 127.0.0.1
    port: %d
urls:
  self:
    issuer: %s
%s
oauth2:
  allowed_top_level_claims: [email, groups]
secrets:
  system:
    - %s
strategies:
  access_token: jwt
ttl:
  access_token: 1h
log:
  level: warn
`, pub, adm, h.Issuer, appURLs(app), randomSecret(t))
	cfgPath := filepath.Join(dir, "hydra.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--config", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.Stdout, cmd.Stderr = h.log, h.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	// Ready when both listeners answer (bounded: 60 s).
	for i := 0; ; i++ {
		ok := true
		for _, u := range []string{h.public + "/health/ready", h.admin + "/health/ready"} {
			resp, err := http.Get(u)
			if err != nil || resp.StatusCode != 200 {
				ok = false
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
		if ok {
			break
		}
		select {
		case <-done:
			t.Fatalf("hydra exited during start-up:\n%s", h.log.String())
		default:
		}
		if i >= 300 {
			t.Fatalf("hydra not ready within 60s:\n%s", h.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return h
}

func appURLs(app string) string {
	if app == "" {
		return ""
	}
	return "  login: " + app + "/login\n  consent: " + app + "/consent"
}

func randomSecret(t testing.TB) string {
	b := make([]byte, 24)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// createClient registers a client_credentials client through Hydra's admin
// API and returns its id.
func (h *hydra) createClient(t testing.TB, secret, scope string, audience ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_name":                "ci-pipeline",
		"client_secret":              secret,
		"grant_types":                []string{"client_credentials"},
		"response_types":             []string{"token"},
		"scope":                      scope,
		"audience":                   audience,
		"token_endpoint_auth_method": "client_secret_basic",
	})
	resp, err := http.Post(h.admin+"/admin/clients", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.ClientID == "" {
		t.Fatalf("create client: %d %s", resp.StatusCode, b)
	}
	return out.ClientID
}

// clientCredentials is what a CI job does: POST /oauth2/token with its id
// and secret, asking for scopes and the gateway's audience.
func (h *hydra) clientCredentials(t testing.TB, id, secret, scope, audience string) (string, int) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}, "audience": {audience}}
	req, _ := http.NewRequest(http.MethodPost, h.public+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return out.AccessToken, resp.StatusCode
}

func jwtClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT access token (strategies.access_token: jwt?)")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHydraMachineIdentity: a pipeline authenticates to a real, certified
// OpenID Provider with client credentials and connects through pgwarden as
// itself (username_claim: sub, the client id), its scope mapped to the
// ingest group (groups_claim: scp): it can insert, and is refused TRUNCATE.
func TestHydraMachineIdentity(t *testing.T) {
	h := startHydra(t)
	secret := randomSecret(t)
	id := h.createClient(t, secret, "ingest", "pgwarden")
	tok, status := h.clientCredentials(t, id, secret, "ingest", "pgwarden")
	if status != 200 || tok == "" {
		t.Fatalf("client_credentials: HTTP %d", status)
	}
	claims := jwtClaims(t, tok)
	if claims["iss"] != h.Issuer || claims["sub"] != id || claims["client_id"] != id {
		t.Fatalf("hydra claims: iss %v sub %v client_id %v", claims["iss"], claims["sub"], claims["client_id"])
	}
	w := startGateway(t, func(c *config.Config) {
		c.Auth.OIDC.Issuer = h.Issuer
		c.Auth.OIDC.Audience = "pgwarden"
		c.Auth.OIDC.UsernameClaim = "sub"
		c.Auth.OIDC.GroupsClaim = "scp"
	})
	policyTable(t, "hydra_ingest")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := w.connectWith(t, w.connConfig(t, id, tok))
	var who string
	must0(t, conn.QueryRow(ctx, "SELECT session_user").Scan(&who))
	if who == "" || who == "postgres" {
		t.Fatalf("session user %q", who)
	}
	must(conn.Exec(ctx, "INSERT INTO hydra_ingest VALUES ($1, $2, $3::vector)", 101, "from-ci", "[1,2,3]"))
	var note string
	must0(t, direct(t).QueryRow(ctx, "SELECT note FROM hydra_ingest WHERE id = 101").Scan(&note))
	if note != "from-ci" {
		t.Fatalf("inserted row: %q", note)
	}
	if _, err := conn.Exec(ctx, "TRUNCATE hydra_ingest"); sqlstate(err) != "42501" {
		t.Fatalf("TRUNCATE as the ingest pipeline: want 42501, got %v", err)
	}
	if n := tableCount(t, "hydra_ingest"); n != 21 {
		t.Fatalf("hydra_ingest has %d rows, want 21", n)
	}

	// The token is bound to its client id: another startup user is refused.
	cc := w.connConfig(t, "someone-else", tok)
	if c2, err := connectOnce(cc); err == nil {
		c2.Close(context.Background())
		t.Fatal("a machine token was accepted for another user")
	} else if s := sqlstate(err); s != "28P01" {
		t.Fatalf("wrong user: want 28P01, got %s (%v)", s, err)
	}

	// A token for another audience (allowed on the client, not pgwarden's)
	// is refused.
	id2 := h.createClient(t, secret, "ingest", "other-api")
	tok2, status := h.clientCredentials(t, id2, secret, "ingest", "other-api")
	if status != 200 {
		t.Fatalf("client_credentials (other audience): HTTP %d", status)
	}
	if c3, err := connectOnce(w.connConfig(t, id2, tok2)); err == nil {
		c3.Close(context.Background())
		t.Fatal("a token for another audience was accepted")
	} else if s := sqlstate(err); s != "28P01" {
		t.Fatalf("other audience: want 28P01, got %s (%v)", s, err)
	}
}

// TestHydraScopeWithoutRole: a client whose scope maps to no role connects
// with no actions: even a read is refused.
func TestHydraScopeWithoutRole(t *testing.T) {
	h := startHydra(t)
	secret := randomSecret(t)
	id := h.createClient(t, secret, "reports", "pgwarden")
	tok, status := h.clientCredentials(t, id, secret, "reports", "pgwarden")
	if status != 200 {
		t.Fatalf("client_credentials: HTTP %d", status)
	}
	w := startGateway(t, func(c *config.Config) {
		c.Auth.OIDC.Issuer = h.Issuer
		c.Auth.OIDC.UsernameClaim = "client_id"
		c.Auth.OIDC.GroupsClaim = "scp"
	})
	policyTable(t, "hydra_none")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	conn, err := connectOnce(w.connConfig(t, id, tok))
	t.Logf("connect without a role: %v after %s", err, time.Since(start))
	if err != nil {
		// Refusing the connection outright is also fail-closed.
		if s := sqlstate(err); s != "28P01" && s != "42501" {
			t.Fatalf("connect: %v", err)
		}
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO hydra_none VALUES (300, 'x', '[0,0,0]')"); sqlstate(err) != "42501" {
		t.Fatalf("insert without a role: want 42501, got %v", err)
	}
	t.Logf("insert refused after %s", time.Since(start))
	// A scope the client is not allowed is refused by Hydra itself.
	if _, status := h.clientCredentials(t, id, secret, "ingest", "pgwarden"); status == 200 {
		t.Fatal("hydra granted a scope the client does not have")
	}
}

// connectOnce connects without failing the test (for refusals).
func connectOnce(cc *pgx.ConnConfig) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cc)
}

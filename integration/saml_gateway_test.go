package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/config"
)

// TestSAMLGateway runs the whole gateway with auth.saml against the real
// SimpleSAMLphp IdP: the token `pgwarden login --saml` receives is signed
// by the gateway (its JWKS serves the key) and works as a Postgres
// password; then the same person signs in to /ui/ through SAML (the page
// offers only that sign-in) and approves another user's held DELETE.
func TestSAMLGateway(t *testing.T) {
	chrome := chromiumPath(t)
	dir := t.TempDir()
	const spEntity = "https://pgwarden.test/saml"
	spCert, spKey := filepath.Join(dir, "sp.crt"), filepath.Join(dir, "sp.key")
	spCertData := writeKeyPair(t, spCert, spKey, "pgwarden sp")
	idpBase, setACS := startSimpleSAMLWith(t, spEntity, "http://127.0.0.1:1/saml/acs", spCertData)
	w := startGateway(t, func(c *config.Config) {
		c.Auth.SAML = config.SAML{EntityID: spEntity, IDPMetadataURL: idpBase + "/saml2/idp/metadata.php",
			UsernameAttribute: "email", GroupsAttribute: "groups", CertFile: spCert, KeyFile: spKey}
	})
	setACS(w.AdminURL + "/saml/acs")

	// JWKS: one public key.
	resp, err := http.Get(w.AdminURL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 1 || jwks.Keys[0]["d"] != nil || jwks.Keys[0]["crv"] != "P-256" {
		t.Fatalf("JWKS: %+v", jwks)
	}

	// The CLI's loopback listener, as `pgwarden login --saml` runs it.
	cliLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cliGot := make(chan string, 1)
	cliSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" && r.URL.Query().Get("state") == "s-42" {
			select {
			case cliGot <- r.URL.Query().Get("token"):
			default:
			}
		}
		rw.Write([]byte("signed in"))
	})}
	go cliSrv.Serve(cliLn)
	t.Cleanup(func() { cliSrv.Close() })

	ctx, cancel := newBrowser(t, chrome, 60*time.Second)
	defer cancel()
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }

	err = chromedp.Run(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/saml/login?cli_port=%d&state=s-42", w.AdminURL, cliLn.Addr().(*net.TCPAddr).Port)),
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
		chromedp.SendKeys(`#username`, "ann", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "ann-password", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById('submit_button').click()`, nil),
	)
	if err != nil {
		t.Fatalf("SAML sign-in for the CLI: %v", err)
	}
	var tok string
	select {
	case tok = <-cliGot:
	case <-time.After(30 * time.Second):
		t.Fatal("no gateway token reached the CLI listener")
	}
	if c := jwtClaims(t, tok); c["iss"] != w.AdminURL || c["email"] != "ann@example.com" {
		t.Fatalf("gateway token claims: %v", c)
	}
	// The gateway's own token as the Postgres password.
	conn := w.connectWith(t, w.connConfig(t, "ann@example.com", tok))
	var who string
	if err := conn.QueryRow(context.Background(), "SELECT session_user").Scan(&who); err != nil || who == "" || who == "ann@example.com" {
		t.Fatalf("session through the SAML-issued token: %q %v", who, err)
	}
	if out, stderr, err := w.psql(t, "ann@example.com", tok, "-c", "SELECT current_user = session_user"); err != nil || strings.TrimSpace(out) != "t" {
		t.Fatalf("psql with the SAML-issued token: %q %q %v", out, stderr, err)
	}
	if _, err := connectOnce(w.connConfig(t, "bob@example.com", tok)); sqlstate(err) != "28P01" {
		t.Fatalf("the token for another startup user: %v", err)
	}

	// A held DELETE by someone else, approved on the page after a SAML sign-in.
	const table, n = "ap_saml", 5
	approvalTable(t, table, n)
	held, notices := dbaConn(t, w, requester, pgx.QueryExecModeSimpleProtocol)
	id, res := startHeld(t, context.Background(), held, notices, "DELETE FROM "+table)
	var who2 string
	err = chromedp.Run(ctx,
		// A fresh browser state: no gateway session, no IdP session.
		network.ClearBrowserCookies(),
		chromedp.Navigate(w.AdminURL+"/ui/"),
		chromedp.WaitVisible(sel("signin-link"), chromedp.ByQuery),
		chromedp.Click(sel("signin-link"), chromedp.ByQuery), // the page offers /saml/login only
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
		chromedp.SendKeys(`#username`, "ann", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "ann-password", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById('submit_button').click()`, nil),
		chromedp.ActionFunc(func(ctx context.Context) error {
			for {
				var loc, body string
				if err := chromedp.Run(ctx, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body)); err == nil && strings.HasPrefix(loc, w.AdminURL+"/ui/") && !strings.Contains(loc, "/ui/login") {
					return nil
				}
				select {
				case <-ctx.Done():
					_ = chromedp.Run(context.Background(), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body))
					return fmt.Errorf("never back on /ui/ (at %s: %.300s)", loc, body)
				case <-time.After(200 * time.Millisecond):
				}
			}
		}),
		chromedp.WaitVisible(sel("whoami"), chromedp.ByQuery),
		chromedp.Text(sel("whoami"), &who2, chromedp.ByQuery),
		chromedp.WaitVisible(sel("approve-"+id), chromedp.ByQuery),
		chromedp.Click(sel("approve-"+id), chromedp.ByQuery),
	)
	if err != nil || who2 != "ann@example.com" {
		t.Fatalf("page after the SAML sign-in: %q %v", who2, err)
	}
	if r := await(t, res, 30*time.Second); r.err != nil || r.tag.RowsAffected() != n {
		t.Fatalf("the DELETE approved after the SAML sign-in: %v %v", r.tag, r.err)
	}
}

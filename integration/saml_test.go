package integration

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/admin"
	"github.com/pgwarden/pgwarden/identity"
)

// SimpleSAMLphp as Debian ships it (scripts/setup-saml.sh installs it).
const simpleSAMLWWW = "/usr/share/simplesamlphp/www"

type samlTokens struct{}

func (samlTokens) Issue(p identity.Principal) (string, time.Time, error) {
	return "gw-" + p.User, time.Now().Add(time.Hour), nil
}

// writeKeyPair writes a fresh self-signed RSA pair as PEM; it returns the
// certificate's base64 DER (SimpleSAMLphp's certData).
func writeKeyPair(t *testing.T, certPath, keyPath, cn string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func phpQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// startSimpleSAML configures SimpleSAMLphp in a temp dir (config,
// authsources with one exampleauth:UserPass user, the hosted IdP and
// pgwarden as remote SP) and serves it with PHP's built-in server on a
// loopback port. It returns the IdP's base URL.
func startSimpleSAML(t *testing.T, spEntity, acsURL, spCertData string) string {
	base, _ := startSimpleSAMLWith(t, spEntity, acsURL, spCertData)
	return base
}

// startSimpleSAMLWith is startSimpleSAML, also returning a function that
// points the SP's ACS elsewhere (PHP reads the metadata file per request):
// for a gateway whose admin port is known only after it started.
func startSimpleSAMLWith(t *testing.T, spEntity, acsURL, spCertData string) (string, func(acs string)) {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		missing(t, "php (php-cli; scripts/setup-saml.sh)")
	}
	if _, err := os.Stat(filepath.Join(simpleSAMLWWW, "saml2", "idp", "SSOService.php")); err != nil {
		missing(t, "SimpleSAMLphp ("+simpleSAMLWWW+"; scripts/setup-saml.sh)")
	}
	dir := t.TempDir()
	for _, d := range []string{"config", "metadata", "cert", "data", "tmp", "log", "sessions"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	writeKeyPair(t, filepath.Join(dir, "cert", "idp.crt"), filepath.Join(dir, "cert", "idp.key"), "simplesamlphp test idp")
	spRemote := func(acs string) string {
		return `<?php
$metadata[` + phpQuote(spEntity) + `] = [
    'AssertionConsumerService' => [['Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', 'Location' => ` + phpQuote(acs) + `]],
    'certData' => ` + phpQuote(spCertData) + `,
    'validate.authnrequest' => true,
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient',
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
];
`
	}
	setACS := func(acs string) {
		if err := os.WriteFile(filepath.Join(dir, "metadata", "saml20-sp-remote.php"), []byte(spRemote(acs)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"config/config.php": `<?php
$config = [
    'baseurlpath' => ` + phpQuote(base+"/") + `,
    'application' => ['baseURL' => ` + phpQuote(base+"/") + `],
    'certdir' => ` + phpQuote(dir+"/cert/") + `,
    'loggingdir' => ` + phpQuote(dir+"/log/") + `,
    'datadir' => ` + phpQuote(dir+"/data/") + `,
    'tempdir' => ` + phpQuote(dir+"/tmp") + `,
    'metadatadir' => ` + phpQuote(dir+"/metadata/") + `,
    'metadata.sources' => [['type' => 'flatfile', 'directory' => ` + phpQuote(dir+"/metadata") + `]],
    'secretsalt' => ` + phpQuote(randomSecret(t)) + `,
    'auth.adminpassword' => ` + phpQuote(randomSecret(t)) + `,
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'technicalcontact_name' => 'pgwarden tests',
    'technicalcontact_email' => 'na@example.org',
    'timezone' => 'UTC',
    'logging.level' => SimpleSAML\Logger::WARNING,
    'logging.handler' => 'errorlog',
    'enable.saml20-idp' => true,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'session.phpsession.savepath' => ` + phpQuote(dir+"/sessions") + `,
    'store.type' => 'phpsession',
    'language.default' => 'en',
    'theme.use' => 'default',
];
`,
		"config/authsources.php": `<?php
$config = [
    'admin' => ['core:AdminPassword'],
    'pgwarden-users' => [
        'exampleauth:UserPass',
        'ann:ann-password' => [
            'uid' => ['ann'],
            'email' => ['ann@example.com'],
            'groups' => ['dba', 'eng'],
        ],
    ],
];
`,
		"metadata/saml20-idp-hosted.php": `<?php
$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'pgwarden-users',
    'saml20.sign.assertion' => true,
    'saml20.sign.response' => true,
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic',
];
`,
		"metadata/saml20-sp-remote.php": spRemote(acsURL),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "php.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(php, "-d", "session.save_path="+filepath.Join(dir, "sessions"), "-d", "display_errors=stderr",
		"-S", fmt.Sprintf("127.0.0.1:%d", port), "-t", simpleSAMLWWW)
	cmd.Env = append(os.Environ(), "SIMPLESAMLPHP_CONFIG_DIR="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("SimpleSAMLphp log (tail):\n%s", b)
		}
	})
	// Bounded wait: the IdP metadata answers.
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/saml2/idp/metadata.php")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), "IDPSSODescriptor") {
				return base, setACS
			}
			err = fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("SimpleSAMLphp did not come up: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSAMLSimpleSAMLphpSignIn signs in through a real SAML IdP in headless
// Chromium: /saml/login → SimpleSAMLphp's login form → the signed
// response posted to the ACS → /ui/session shows the user and groups; then
// the CLI variant hands a gateway token to a loopback listener.
func TestSAMLSimpleSAMLphpSignIn(t *testing.T) {
	chrome := chromiumPath(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminURL := "http://" + ln.Addr().String()
	const spEntity = "https://pgwarden.test/saml"
	spCert, spKey := filepath.Join(dir, "sp.crt"), filepath.Join(dir, "sp.key")
	spCertData := writeKeyPair(t, spCert, spKey, "pgwarden sp")
	idpBase := startSimpleSAML(t, spEntity, adminURL+"/saml/acs", spCertData)

	srv := admin.New(admin.Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err := srv.EnableSAML(admin.SAMLOptions{
		EntityID: spEntity, MetadataURL: idpBase + "/saml2/idp/metadata.php", PublicURL: adminURL,
		CertFile: spCert, KeyFile: spKey, Tokens: samlTokens{},
	}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Error("admin server did not stop")
		}
	})

	// The CLI's loopback listener (what `pgwarden login --saml` runs).
	cliLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cliGot := make(chan string, 1)
	cliSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" && r.URL.Query().Get("state") == "st8" {
			select {
			case cliGot <- r.URL.Query().Get("token"):
			default:
			}
		}
		w.Write([]byte("pgwarden CLI: signed in"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go cliSrv.Serve(cliLn)
	t.Cleanup(func() { cliSrv.Close() })

	bc, cancel := newBrowser(t, chrome, 90*time.Second)
	defer cancel()

	var landing, sessionJSON string
	err = chromedp.Run(bc,
		chromedp.Navigate(adminURL+"/saml/login"),
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
		chromedp.SendKeys(`#username`, "ann", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "ann-password", chromedp.ByQuery),
		// A script click: the node is gone once the form navigates away.
		chromedp.Evaluate(`document.getElementById('submit_button').click()`, nil),
		// The IdP's auto-submitting form posts to the ACS, whose page
		// says who signed in (then moves on to /ui/).
		chromedp.ActionFunc(func(ctx context.Context) error {
			for {
				var loc, body string
				if err := chromedp.Run(ctx, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body)); err == nil {
					if strings.Contains(body, "Signed in as") && landing == "" {
						landing = loc + " " + body
					}
					// Wait for the landing page's meta refresh to reach
					// /ui/: a navigation started before it lands races it
					// (the refresh replaces the document under a query).
					if strings.HasPrefix(loc, adminURL+"/ui/") {
						return nil
					}
					if strings.Contains(body, "sign-in failed") {
						return errors.New("ACS: " + body)
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("no landing page (at %s: %.300s)", loc, body)
				case <-time.After(200 * time.Millisecond):
				}
			}
		}),
		// Same-origin fetch: sends the session cookie, and no navigation
		// of the page can pull the document away from under it.
		chromedp.Evaluate(`fetch('/ui/session', {credentials: 'same-origin'}).then(r => r.text())`, &sessionJSON,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
	)
	if err != nil {
		t.Fatalf("sign in through SimpleSAMLphp: %v", err)
	}
	t.Logf("landing: %.200s", landing)
	var sess struct {
		User   string   `json:"user"`
		Groups []string `json:"groups"`
		CSRF   string   `json:"csrf"`
	}
	if err := json.Unmarshal([]byte(sessionJSON), &sess); err != nil || sess.User != "ann@example.com" || strings.Join(sess.Groups, ",") != "dba,eng" || sess.CSRF == "" {
		t.Fatalf("/ui/session after the SAML sign-in: %q (%v)", sessionJSON, err)
	}

	// The CLI sign-in: the IdP session is reused, the browser lands on the
	// loopback listener with a gateway token.
	cliPort := cliLn.Addr().(*net.TCPAddr).Port
	err = chromedp.Run(bc, chromedp.Navigate(fmt.Sprintf("%s/saml/login?cli_port=%d&state=st8", adminURL, cliPort)))
	if err != nil {
		t.Fatalf("CLI sign-in: %v", err)
	}
	select {
	case tok := <-cliGot:
		if tok != "gw-ann@example.com" {
			t.Fatalf("CLI token %q", tok)
		}
	case <-time.After(30 * time.Second):
		var loc, body string
		_ = chromedp.Run(bc, chromedp.Location(&loc), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body))
		t.Fatalf("the CLI listener got no token (browser at %s: %.300s)", loc, body)
	}
}

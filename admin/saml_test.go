package admin

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/identity"
)

const (
	testSPEntity = "https://pgwarden.example.com/saml"
	testPublic   = "https://pgwarden.example.com"
)

func selfSigned(t *testing.T, cn string) (*rsa.PrivateKey, *x509.Certificate, []byte, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return key, cert, certPEM, keyPEM
}

type fakeIssuer struct{ issued []identity.Principal }

func (f *fakeIssuer) Issue(p identity.Principal) (string, time.Time, error) {
	f.issued = append(f.issued, p)
	return "gwtok-" + strings.ReplaceAll(p.User, "@", "."), time.Now().Add(time.Hour), nil
}

type spProvider struct{ md *saml.EntityDescriptor }

func (p spProvider) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	if id != p.md.EntityID {
		return nil, os.ErrNotExist
	}
	return p.md, nil
}

type samlFixture struct {
	t      *testing.T
	s      *Server
	sp     *samlSP
	idp    *saml.IdentityProvider
	tokens *fakeIssuer
	logs   []string // what the SP logged (the detail the browser is not shown)
}

func newSAMLFixture(t *testing.T) *samlFixture {
	t.Helper()
	dir := t.TempDir()
	idpKey, idpCert, _, _ := selfSigned(t, "test idp")
	_, _, spCertPEM, spKeyPEM := selfSigned(t, "pgwarden sp")
	idp := &saml.IdentityProvider{
		Key: idpKey, Signer: idpKey, Certificate: idpCert,
		MetadataURL: url.URL{Scheme: "https", Host: "idp.test", Path: "/metadata"},
		SSOURL:      url.URL{Scheme: "https", Host: "idp.test", Path: "/sso"},
	}
	md, err := xml.Marshal(idp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := &samlFixture{t: t, idp: idp, tokens: &fakeIssuer{}}
	f.s = New(Options{Verifier: refuseAll{}, Logger: zerolog.Nop()})
	f.sp, err = f.s.enableSAML(SAMLOptions{
		EntityID: testSPEntity, MetadataFile: write("idp.xml", md), PublicURL: testPublic,
		CertFile: write("sp.crt", spCertPEM), KeyFile: write("sp.key", spKeyPEM), Tokens: f.tokens,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.sp.log = func(msg string, err error) { f.logs = append(f.logs, fmt.Sprint(msg, ": ", err)) }
	f.s.HandleAPI("/probe", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := identity.FromContext(r.Context())
		w.Write([]byte(p.User))
	}))
	rr := do(f.s, "GET", "/saml/metadata", nil, nil)
	var spMD saml.EntityDescriptor
	if rr.Code != 200 || xml.Unmarshal(rr.Body.Bytes(), &spMD) != nil {
		t.Fatalf("SP metadata: %d %s", rr.Code, rr.Body)
	}
	idp.ServiceProviderProvider = spProvider{md: &spMD}
	return f
}

// flow is one sign-in started at /saml/login and answered by the test IdP.
type flow struct {
	cookie *http.Cookie
	relay  string
	req    *saml.IdpAuthnRequest
}

func (f *samlFixture) start(query string) *flow {
	f.t.Helper()
	rr := do(f.s, "GET", "/saml/login"+query, nil, nil)
	if rr.Code != http.StatusFound {
		f.t.Fatalf("login: %d %s", rr.Code, rr.Body)
	}
	loc, _ := url.Parse(rr.Header().Get("Location"))
	if loc.Host != "idp.test" || loc.Query().Get("SAMLRequest") == "" {
		f.t.Fatalf("login redirect: %s", loc)
	}
	fl := &flow{relay: loc.Query().Get("RelayState")}
	for _, c := range rr.Result().Cookies() {
		if c.Name == samlCookie {
			fl.cookie = c
		}
	}
	if fl.cookie == nil || fl.cookie.Value != fl.relay || !fl.cookie.HttpOnly || !fl.cookie.Secure || fl.cookie.SameSite != http.SameSiteNoneMode {
		f.t.Fatalf("binding cookie: %+v", fl.cookie)
	}
	r := httptest.NewRequest("GET", loc.String(), nil)
	req, err := saml.NewIdpAuthnRequest(f.idp, r)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := req.Validate(); err != nil {
		f.t.Fatalf("the IdP refused the AuthnRequest: %v", err)
	}
	fl.req = req
	return fl
}

func (f *samlFixture) assert(fl *flow) {
	f.t.Helper()
	err := saml.DefaultAssertionMaker{}.MakeAssertion(fl.req, &saml.Session{
		ID: "s1", NameID: "ann-id", CreateTime: time.Now(), ExpireTime: time.Now().Add(2 * time.Hour), Index: "1",
		CustomAttributes: []saml.Attribute{
			{Name: "email", Values: []saml.AttributeValue{{Type: "xs:string", Value: "ann@example.com"}}},
			{Name: "groups", Values: []saml.AttributeValue{{Type: "xs:string", Value: "dba"}, {Type: "xs:string", Value: "eng"}}},
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// signed makes the IdP's signed (and encrypted) response.
func (f *samlFixture) signed(fl *flow) string {
	f.t.Helper()
	if err := fl.req.MakeResponse(); err != nil {
		f.t.Fatal(err)
	}
	return encodeEl(f.t, fl.req.ResponseEl)
}

func encodeEl(t *testing.T, el *etree.Element) string {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (f *samlFixture) post(fl *flow, samlResponse string, withCookie bool) *httptest.ResponseRecorder {
	form := url.Values{"SAMLResponse": {samlResponse}, "RelayState": {fl.relay}}
	req := httptest.NewRequest("POST", "/saml/acs", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if withCookie {
		req.AddCookie(fl.cookie)
	}
	rr := httptest.NewRecorder()
	f.s.srv.Handler.ServeHTTP(rr, req)
	return rr
}

func (f *samlFixture) logged(want string) {
	f.t.Helper()
	if len(f.logs) == 0 || !strings.Contains(f.logs[len(f.logs)-1], want) {
		f.t.Fatalf("want a log with %q, got %q", want, f.logs)
	}
}

func sessionCookieOf(rr *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range rr.Result().Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			return c
		}
	}
	return nil
}

func refusedWith(t *testing.T, what string, rr *httptest.ResponseRecorder, code int, msg string) {
	t.Helper()
	if rr.Code != code || !strings.Contains(rr.Body.String(), msg) || sessionCookieOf(rr) != nil {
		t.Fatalf("%s: want %d %q, got %d %s", what, code, msg, rr.Code, rr.Body)
	}
	if strings.Contains(rr.Body.String(), "Assertion") || len(rr.Body.String()) > 200 {
		t.Fatalf("%s: the error echoes too much: %s", what, rr.Body)
	}
}

func TestSAMLGoodLogin(t *testing.T) {
	f := newSAMLFixture(t)
	fl := f.start("")
	f.assert(fl)
	rr := f.post(fl, f.signed(fl), true)
	sc := sessionCookieOf(rr)
	if rr.Code != 200 || sc == nil || !strings.Contains(rr.Body.String(), "Signed in as ann@example.com") {
		t.Fatalf("ACS: %d %v %s", rr.Code, sc, rr.Body)
	}
	if !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie: %+v", sc)
	}
	rr = do(f.s, "GET", "/ui/session", []*http.Cookie{sc}, nil)
	var got struct {
		User   string   `json:"user"`
		Groups []string `json:"groups"`
		Token  string   `json:"token"`
	}
	if rr.Code != 200 || json.Unmarshal(rr.Body.Bytes(), &got) != nil || got.User != "ann@example.com" || strings.Join(got.Groups, ",") != "dba,eng" || got.Token != "" {
		t.Fatalf("whoami: %d %s", rr.Code, rr.Body)
	}
	if rr := do(f.s, "GET", "/api/v1/probe", []*http.Cookie{sc}, nil); rr.Code != 200 || rr.Body.String() != "ann@example.com" {
		t.Fatalf("API with the SAML session: %d %s", rr.Code, rr.Body)
	}
	if len(f.tokens.issued) != 0 {
		t.Fatalf("a browser sign-in minted a gateway token")
	}
	// Metadata: entity id, ACS and the signing certificate.
	md := do(f.s, "GET", "/saml/metadata", nil, nil).Body.String()
	for _, want := range []string{`entityID="` + testSPEntity + `"`, `Location="` + testPublic + `/saml/acs"`, "X509Certificate", `use="signing"`} {
		if !strings.Contains(md, want) {
			t.Errorf("SP metadata lacks %s", want)
		}
	}
}

func TestSAMLUnsignedRefused(t *testing.T) {
	f := newSAMLFixture(t)
	fl := f.start("")
	f.assert(fl)
	resp := &saml.Response{
		Destination: fl.req.ACSEndpoint.Location, ID: "id-unsigned", InResponseTo: fl.req.Request.ID,
		IssueInstant: fl.req.Now, Version: "2.0",
		Issuer: &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: f.idp.MetadataURL.String()},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	el := resp.Element()
	el.AddChild(fl.req.Assertion.Element()) // neither the Response nor the assertion signed
	refusedWith(t, "unsigned", f.post(fl, encodeEl(t, el), true), 403, "sign-in failed")
	f.logged("ignature")
}

func TestSAMLWrongAudienceRefused(t *testing.T) {
	f := newSAMLFixture(t)
	fl := f.start("")
	f.assert(fl)
	for i := range fl.req.Assertion.Conditions.AudienceRestrictions {
		fl.req.Assertion.Conditions.AudienceRestrictions[i].Audience = saml.Audience{Value: "https://other.example.com/saml"}
	}
	refusedWith(t, "wrong audience", f.post(fl, f.signed(fl), true), 403, "another service provider")
}

func TestSAMLExpiredRefused(t *testing.T) {
	f := newSAMLFixture(t)
	fl := f.start("")
	fl.req.Now = time.Now().Add(-time.Hour) // the IdP issued it an hour ago
	f.assert(fl)
	refusedWith(t, "expired", f.post(fl, f.signed(fl), true), 403, "expired")
}

func TestSAMLReplayRefused(t *testing.T) {
	f := newSAMLFixture(t)
	fl := f.start("")
	f.assert(fl)
	body := f.signed(fl)
	if rr := f.post(fl, body, true); rr.Code != 200 {
		t.Fatalf("first use: %d %s", rr.Code, rr.Body)
	}
	// The same POST again: the sign-in it answers is used up.
	refusedWith(t, "replay", f.post(fl, body, true), 400, "already used")
	// Even if the request were still pending, the assertion ID is spent.
	f.sp.pending[fl.relay] = samlPending{requestID: fl.req.Request.ID, expires: time.Now().Add(time.Minute)}
	refusedWith(t, "replayed assertion", f.post(fl, body, true), 403, "already used")
	// The cache itself.
	c := newReplayCache()
	if c.Consume("a", time.Now().Add(time.Minute)) != nil || !errors.Is(c.Consume("a", time.Now().Add(time.Minute)), saml.ErrAssertionReplayed) {
		t.Fatal("replay cache accepts an ID twice")
	}
}

func TestSAMLUnsolicitedRefused(t *testing.T) {
	f := newSAMLFixture(t)
	// A response posted without the browser's binding cookie (what an
	// IdP-initiated sign-in or a forwarded response looks like).
	fl := f.start("")
	f.assert(fl)
	refusedWith(t, "no cookie", f.post(fl, f.signed(fl), false), 400, "not started from this browser")
	// No RelayState at all.
	fl = f.start("")
	f.assert(fl)
	fl.relay = ""
	refusedWith(t, "no relay state", f.post(fl, f.signed(fl), true), 400, "not started from this browser")
	// A pending sign-in, but the response answers no request (InResponseTo empty).
	fl = f.start("")
	fl.req.Request.ID = ""
	f.assert(fl)
	refusedWith(t, "IdP-initiated", f.post(fl, f.signed(fl), true), 403, "sign-in failed")
	f.logged("InResponseTo")
}

func TestSAMLCLIPortLoopbackOnly(t *testing.T) {
	f := newSAMLFixture(t)
	for _, bad := range []string{"80", "1023", "65536", "abc", "+2000", "02000", "2000&cli_port=3000x", "-1"} {
		if rr := do(f.s, "GET", "/saml/login?cli_port="+bad, nil, nil); rr.Code != 400 {
			t.Errorf("cli_port=%s: %d", bad, rr.Code)
		}
	}
	if rr := do(f.s, "GET", "/saml/login?cli_port=4000&state=%3Cx%3E", nil, nil); rr.Code != 400 {
		t.Errorf("bad state: %d", rr.Code)
	}
	fl := f.start("?cli_port=54321&state=abc_123&host=evil.example.com")
	f.assert(fl)
	rr := f.post(fl, f.signed(fl), true)
	loc, _ := url.Parse(rr.Header().Get("Location"))
	if rr.Code != http.StatusSeeOther || loc == nil || loc.Scheme != "http" || loc.Host != "127.0.0.1:54321" || loc.Path != "/callback" ||
		loc.Query().Get("token") != "gwtok-ann.example.com" || loc.Query().Get("state") != "abc_123" {
		t.Fatalf("CLI redirect: %d %s", rr.Code, rr.Header().Get("Location"))
	}
	if len(f.tokens.issued) != 1 || f.tokens.issued[0].User != "ann@example.com" || fmt.Sprint(f.tokens.issued[0].Groups) != "[dba eng]" {
		t.Fatalf("issued: %+v", f.tokens.issued)
	}
	if sessionCookieOf(rr) == nil {
		t.Fatal("the CLI sign-in opened no browser session")
	}
	// Without a token issuer there is no CLI sign-in.
	f.sp.o.Tokens = nil
	if rr := do(f.s, "GET", "/saml/login?cli_port=54321", nil, nil); rr.Code != 404 {
		t.Fatalf("no issuer: %d", rr.Code)
	}
}

func TestEnableSAMLWithoutOIDC(t *testing.T) {
	s := New(Options{Verifier: refuseAll{}, Logger: zerolog.Nop()})
	if err := s.EnableSAML(SAMLOptions{EntityID: testSPEntity, PublicURL: testPublic}); err == nil {
		t.Fatal("no metadata accepted")
	}
	if err := s.EnableSAML(SAMLOptions{EntityID: testSPEntity, PublicURL: testPublic, MetadataURL: "https://idp.test/md", CertFile: "x"}); err == nil {
		t.Fatal("cert without key accepted")
	}
	if err := s.EnableSAML(SAMLOptions{EntityID: testSPEntity, PublicURL: testPublic, MetadataURL: "https://idp.test/md"}); err != nil {
		t.Fatal(err)
	}
	if rr := do(s, "GET", "/ui/session", nil, nil); rr.Code != 401 {
		t.Fatalf("session store not mounted: %d", rr.Code)
	}
	if rr := do(s, "GET", "/saml/metadata", nil, nil); rr.Code != 200 || strings.Contains(rr.Body.String(), "X509Certificate") {
		t.Fatalf("metadata without a key pair: %d", rr.Code)
	}
}

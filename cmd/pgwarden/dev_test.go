package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/internal/devstack"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// syncBuffer is a goroutine-safe buffer for a command's stdout/stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevStartIsQuiet runs `pgwarden dev` in process: its start logs no
// "OIDC discovery failed" (its own issuer is served by the admin listener,
// which is not up when the verifier is built; issue 15), and the deferred
// discovery happens on the first login, which works.
func TestDevStartIsQuiet(t *testing.T) {
	if err := pgtest.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	data := t.TempDir()
	// Port 0 for both listeners: pgwarden dev binds them before it says it
	// is running and names the real addresses in its banner (a port picked
	// here and bound later could be taken meanwhile by another package's
	// test running in parallel).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data", data, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"},
			&stdout, &stderr)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("pgwarden dev exited %d\n%s", code, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Error("pgwarden dev did not stop within 60s of its context ending")
		}
	}
	defer stop()
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(stdout.String(), "pgwarden dev is running") {
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("pgwarden dev exited %d before it was running\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgwarden dev not running within 3 minutes\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	listen := bannerField(t, stdout.String(), "Postgres listener :")
	code, tok, errs := runCLI("token", "--data", data, "--user", "alice@example.com", "--groups", "analyst")
	if code != 0 {
		t.Fatalf("pgwarden token: exit %d: %s", code, errs)
	}
	host, port := splitHostPort(listen)
	cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=vectors user=alice@example.com sslmode=require connect_timeout=10", host, port))
	if err != nil {
		t.Fatal(err)
	}
	cc.Password = strings.TrimSpace(tok)
	cc.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	cc.Fallbacks = nil
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	conn, err := pgx.ConnectConfig(cctx, cc)
	if err != nil {
		t.Fatalf("connect to pgwarden dev: %v\n%s", err, stderr.String())
	}
	var n int
	err = conn.QueryRow(cctx, "SELECT count(*) FROM documents").Scan(&n)
	conn.Close(context.Background())
	if err != nil || n == 0 {
		t.Fatalf("SELECT count(*) FROM documents: %d, %v", n, err)
	}
	// The second demo profile: its own database, policy and masking.
	code, tok, errs = runCLI("token", "--data", data, "--user", "sam@example.com", "--groups", "support")
	if code != 0 {
		t.Fatalf("pgwarden token: exit %d: %s", code, errs)
	}
	sc := cc.Copy()
	sc.Database, sc.User, sc.Password = "support", "sam@example.com", strings.TrimSpace(tok)
	conn, err = pgx.ConnectConfig(cctx, sc)
	if err != nil {
		t.Fatalf("connect to the support profile: %v\n%s", err, stderr.String())
	}
	var email string
	err = conn.QueryRow(cctx, "SELECT customer_email FROM tickets ORDER BY id LIMIT 1").Scan(&email)
	conn.Close(context.Background())
	if err != nil || !strings.HasPrefix(email, "****@") {
		t.Fatalf("support profile: customer_email %q (want the email mask), %v", email, err)
	}
	// Browser sign-in to /ui/ through the dev issuer's sign-in page.
	admin := bannerField(t, stdout.String(), "Admin / issuer    :")
	adminHost := strings.TrimPrefix(admin, "http://")
	if !strings.Contains(stdout.String(), "Approvers: open http://"+adminHost+"/ui/ and sign in (development sign-in page") {
		t.Errorf("the banner does not tell approvers to sign in at /ui/:\n%s", stdout.String())
	}
	devBrowserLogin(t, admin)
	stop()
	logs := stderr.String()
	if strings.Contains(logs, "discovery failed") {
		t.Errorf("pgwarden dev logged a failed OIDC discovery:\n%s", logs)
	}
	if !strings.Contains(logs, "OIDC discovery done") {
		t.Errorf("no OIDC discovery logged after the first login:\n%s", logs)
	}
}

// bannerField returns the first word after label in pgwarden dev's banner.
func bannerField(t *testing.T, banner, label string) string {
	t.Helper()
	i := strings.Index(banner, label)
	if i < 0 {
		t.Fatalf("banner has no %q:\n%s", label, banner)
	}
	f := strings.Fields(banner[i+len(label):])
	if len(f) == 0 {
		t.Fatalf("banner has nothing after %q:\n%s", label, banner)
	}
	return f[0]
}

// devBrowserLogin signs in to a running pgwarden dev's /ui/ the way a
// browser does: /ui/login to the dev issuer's sign-in page, the form, back
// through the callback to a session.
func devBrowserLogin(t *testing.T, admin string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second}
	read := func(resp *http.Response) string {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	resp, err := c.Get(admin + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	page := read(resp)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dev-issuer"+devissuer.LoginPath || !strings.Contains(page, "DEVELOPMENT ONLY") {
		t.Fatalf("/ui/login did not lead to the development sign-in page: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-in form:\n%s", page)
	}
	resp, err = c.PostForm(admin+"/dev-issuer"+devissuer.LoginPath, url.Values{"id": {m[1]}, "user": {"bob@example.com"}, "groups": {"dba"}})
	if err != nil {
		t.Fatal(err)
	}
	page = read(resp)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/ui/callback" || !strings.Contains(page, "Signed in as bob@example.com") {
		t.Fatalf("sign-in: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	resp, err = c.Get(admin + "/ui/session")
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		User   string   `json:"user"`
		Groups []string `json:"groups"`
	}
	json.Unmarshal([]byte(read(resp)), &sess)
	if resp.StatusCode != 200 || sess.User != "bob@example.com" || strings.Join(sess.Groups, ",") != "dba" {
		t.Fatalf("session after sign-in: %d %+v", resp.StatusCode, sess)
	}
}

// TestDevConfigBrowserSignIn: pgwarden dev signs browsers in through the
// dev issuer's public client when its admin listener is on 127.0.0.1 or
// localhost (the client's redirect URIs), and leaves it off elsewhere.
func TestDevConfigBrowserSignIn(t *testing.T) {
	stack := &devstack.Stack{AdminDSN: "postgres://pgwarden_admin:x@127.0.0.1:5432/vectors", Port: 5432}
	for admin, want := range map[string]string{"127.0.0.1:6480": devissuer.UIClientID, "localhost:6481": devissuer.UIClientID, "0.0.0.0:6480": "", "[::1]:6480": ""} {
		cfg, err := devConfig(t.TempDir(), "127.0.0.1:6432", admin, "http://"+admin+"/dev-issuer", stack)
		if err != nil {
			t.Fatalf("%s: %v", admin, err)
		}
		if cfg.Auth.OIDC.ClientID != want || cfg.Auth.OIDC.ClientSecret != "" {
			t.Errorf("%s: client %q, want %q", admin, cfg.Auth.OIDC.ClientID, want)
		}
		if want != "" && cfg.Admin.BrowserURL() != "http://"+admin {
			t.Errorf("%s: browser URL %q", admin, cfg.Admin.BrowserURL())
		}
	}
}

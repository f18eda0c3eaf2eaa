package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A fake admin listener plays the IdP round trip: /saml/login redirects
// the "browser" to the CLI's loopback callback with a token and the state.
func TestSAMLLoginCLI(t *testing.T) {
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/saml/login" || q.Get("cli_port") == "" || q.Get("state") == "" {
			http.Error(w, "bad", 400)
			return
		}
		http.Redirect(w, r, "http://127.0.0.1:"+q.Get("cli_port")+"/callback?"+url.Values{"token": {"gw-token-123"}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	}))
	defer admin.Close()
	pr, pw := io.Pipe()
	var out strings.Builder
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { done <- samlLogin(ctx, admin.URL, pw, &out); pw.Close() }()
	var loginURL string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, admin.URL+"/saml/login?") {
			loginURL = l
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if loginURL == "" {
		t.Fatal("no sign-in URL printed")
	}
	// Someone else's page calling the callback without our state is refused.
	u, _ := url.Parse(loginURL)
	port := u.Query().Get("cli_port")
	resp, err := http.Get("http://127.0.0.1:" + port + "/callback?token=planted&state=guess")
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("planted token: %v %v", resp, err)
	}
	resp.Body.Close()
	// The browser follows the URL through the admin listener.
	resp, err = http.Get(loginURL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("browser round trip: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "gw-token-123" {
		t.Fatalf("printed %q", got)
	}
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// samlLoginTimeout bounds how long `pgwarden login --saml` waits for the
// browser to come back.
const samlLoginTimeout = 5 * time.Minute

// samlLogin gets a gateway-issued token through the SAML web login: it
// listens on a loopback port, prints the admin listener's /saml/login URL
// carrying that port and a random state, and waits for the browser to be
// redirected to http://127.0.0.1:PORT/callback?token=...&state=... after
// the IdP. Only a callback with our state is taken (another page cannot
// plant its own token); the token goes to out, nothing else does.
func samlLogin(ctx context.Context, admin string, prompt, out io.Writer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening on a loopback port for the browser's return: %w", err)
	}
	defer l.Close()
	var sb [24]byte
	if _, err := rand.Read(sb[:]); err != nil {
		return err
	}
	state := base64.RawURLEncoding.EncodeToString(sb[:])
	port := l.Addr().(*net.TCPAddr).Port
	got := make(chan string, 1)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/callback" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 || q.Get("token") == "" {
			http.Error(w, "not the sign-in this pgwarden login is waiting for", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Signed in. You can close this tab and go back to the terminal.")
		select {
		case got <- q.Get("token"):
		default:
		}
	})}
	go srv.Serve(l)
	defer srv.Close()
	u := admin + "/saml/login?" + url.Values{"cli_port": {fmt.Sprint(port)}, "state": {state}}.Encode()
	fmt.Fprintf(prompt, "Open this URL in a browser and sign in:\n\n  %s\n\nWaiting for the sign-in (up to %s)...\n", u, samlLoginTimeout)
	wait, cancel := context.WithTimeout(ctx, samlLoginTimeout)
	defer cancel()
	select {
	case tok := <-got:
		fmt.Fprintln(out, tok)
		return nil
	case <-wait.Done():
		if errors.Is(wait.Err(), context.DeadlineExceeded) {
			return errors.New("no sign-in came back within " + samlLoginTimeout.String())
		}
		return wait.Err()
	}
}

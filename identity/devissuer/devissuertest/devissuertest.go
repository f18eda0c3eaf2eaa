// Package devissuertest is test support only: it serves the development
// OIDC issuer (identity/devissuer) on a real HTTP server on 127.0.0.1 and
// plays the person who approves a device login on its verification page.
//
// Lifecycle: Serve and ServeDevice stop their server at the test's cleanup.
// Approve runs one bounded goroutine (at most 10s) that reports on the
// channel it returns exactly once.
//
// It must never be imported by production code, and never wait without a
// bound.
package devissuertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgwarden/pgwarden/identity/devissuer"
)

// Serve opens the issuer's state in dataDir and mounts it at /dev-issuer/
// on a real HTTP server, as the admin listener does.
func Serve(t testing.TB, dataDir string) (*devissuer.Issuer, *httptest.Server) {
	t.Helper()
	return serve(t, dataDir, nil)
}

// ServeDevice is Serve in a temporary directory with the device flow's
// options o set before the first request.
func ServeDevice(t testing.TB, o devissuer.DeviceOptions) (*devissuer.Issuer, *httptest.Server) {
	t.Helper()
	return serve(t, t.TempDir(), &o)
}

func serve(t testing.TB, dataDir string, o *devissuer.DeviceOptions) (*devissuer.Issuer, *httptest.Server) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	is, err := devissuer.Open(dataDir, srv.URL+"/dev-issuer")
	if err != nil {
		t.Fatal(err)
	}
	if o != nil {
		is.SetDeviceOptions(*o)
	}
	mux.Handle("/dev-issuer/", is.Handler())
	return is, srv
}

// Buffer is a goroutine-safe writer for the prompt a login shows, which
// Approve reads while the login runs.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Patterns that find the user code in a login prompt (first submatch).
var (
	// EnterCode is the code a person types on the verification page.
	EnterCode = regexp.MustCompile(`enter the code ([A-Z]{4}-[A-Z]{4})`)
	// CompleteURI is the code inside verification_uri_complete.
	CompleteURI = regexp.MustCompile(`user_code=([A-Z]{4}-[A-Z]{4})`)
)

// Approval is what a person submits on the verification page.
type Approval struct {
	User   string // the subject (email) to log in as
	Groups string // comma-separated groups
	Action string // "approve" or "deny"; "" sends none (the page approves)
	// Code finds the user code in the prompt; nil is EnterCode.
	Code *regexp.Regexp
}

// Approve waits (bounded: 400 × 25ms) until prompt shows a user code, then
// submits a on the verification page of the issuer at issuerURL, as a person
// would. The channel receives nil when the page answered 200, else an error.
func Approve(prompt fmt.Stringer, issuerURL string, a Approval) <-chan error {
	re := a.Code
	if re == nil {
		re = EnterCode
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 400; i++ {
			if m := re.FindStringSubmatch(prompt.String()); m != nil {
				form := url.Values{"user_code": {m[1]}, "user": {a.User}, "groups": {a.Groups}}
				if a.Action != "" {
					form.Set("action", a.Action)
				}
				resp, err := http.PostForm(issuerURL+devissuer.DevicePath, form)
				if err != nil {
					done <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					done <- fmt.Errorf("verification page: %s", resp.Status)
					return
				}
				done <- nil
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		done <- fmt.Errorf("no user code shown in the prompt within 10s")
	}()
	return done
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

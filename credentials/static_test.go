package credentials

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

func TestStatic(t *testing.T) {
	var logs bytes.Buffer
	s := NewStatic(config.Static{User: "app", Password: "app-secret-pw"}, zerolog.New(&logs))
	if !strings.Contains(logs.String(), "static credentials are for development only") || !strings.Contains(logs.String(), `"level":"warn"`) {
		t.Fatalf("no development-only warning: %s", logs.String())
	}
	if strings.Contains(logs.String(), "app-secret-pw") {
		t.Fatal("password logged")
	}
	ctx := context.Background()
	l, err := s.Mint(ctx, Request{Principal: identity.Principal{User: "alice@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Username() != "app" || l.Password() != "app-secret-pw" || s.Name() != "static" {
		t.Fatalf("lease %q/%q", l.Username(), l.Password())
	}
	if exp, err := l.Renew(ctx); err != nil || exp.Before(time.Now().AddDate(100, 0, 0)) || !exp.Equal(l.Expiry()) {
		t.Fatalf("renew: %v %v", exp, err)
	}
	if err := l.Revoke(ctx); err != nil || l.Password() != "app-secret-pw" {
		t.Fatalf("revoke must be a no-op: %v", err)
	}
	if _, err := NewStatic(config.Static{}, zerolog.Nop()).Mint(ctx, Request{}); err == nil {
		t.Fatal("mint without a user succeeded")
	}
}

// The static lease really logs in to PostgreSQL, and keeps working after Revoke.
func TestStaticLogin(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	ctx := context.Background()
	if err := c.Exec(ctx, "postgres", "CREATE ROLE app LOGIN PASSWORD 'app-pw'"); err != nil {
		t.Fatal(err)
	}
	s := NewStatic(config.Static{User: "app", Password: "app-pw"}, zerolog.Nop())
	l, _ := s.Mint(ctx, Request{})
	_ = l.Revoke(ctx)
	conn, err := pgx.Connect(ctx, c.DSN(l.Username(), l.Password(), "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}

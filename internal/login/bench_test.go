package login_test

import (
	"context"
	"os"
	"testing"

	"github.com/pgwarden/pgwarden/internal/login"
)

// BenchmarkTokenCached is the cost `login --print` / `psql` pay when a valid
// token is cached: stat, read and decode the cache file.
func BenchmarkTokenCached(b *testing.B) {
	c, _ := login.New(login.Options{Issuer: "http://127.0.0.1:1/x", CacheDir: b.TempDir()})
	body := `{"issuer":"http://127.0.0.1:1/x","client_id":"pgwarden-cli","access_token":"a.b.c","refresh_token":"r","expiry":"2999-01-01T00:00:00Z"}`
	if err := os.WriteFile(c.CachePath(), []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		t, err := c.Token(ctx)
		if err != nil || t.AccessToken != "a.b.c" {
			b.Fatal(err)
		}
	}
}

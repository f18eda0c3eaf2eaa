package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
)

func TestStoreMigrate(t *testing.T) {
	c := pgtest.StartT(t, pgtest.Options{})
	if err := c.CreateDB(context.Background(), "pgwstore"); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, testConfig+"store: { dsn: \""+c.SuperDSN("pgwstore")+"\", migrate: \"off\" }\n")
	code, out, errs := runCLI("store", "migrate", "--config", cfg)
	want := "upgraded from version 0 to " + itoa(sharedstore.Version())
	if code != 0 || !strings.Contains(out, want) {
		t.Fatalf("first migrate: exit %d, out %q, err %q; want %q", code, out, errs, want)
	}
	code, out, _ = runCLI("store", "migrate", "--config", cfg)
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second migrate: exit %d, out %q", code, out)
	}
	// No store.dsn: a usage error, nothing contacted.
	code, _, errs = runCLI("store", "migrate", "--config", writeConfig(t, testConfig))
	if code != 2 || !strings.Contains(errs, "no store.dsn") {
		t.Fatalf("without store.dsn: exit %d, %q", code, errs)
	}
	// An unreachable store: exit 1, the password not in the message.
	port, _ := pgtest.FreePort()
	cfg = writeConfig(t, testConfig+"store: { dsn: \"postgres://u:pw-secret-1@127.0.0.1:"+itoa(port)+"/x?sslmode=disable\" }\n")
	code, _, errs = runCLI("store", "migrate", "--config", cfg)
	if code != 1 || strings.Contains(errs, "pw-secret-1") || !strings.Contains(errs, "unreachable") {
		t.Fatalf("unreachable store: exit %d, %q", code, errs)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

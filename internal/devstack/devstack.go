package devstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// DefaultPort is the PostgreSQL port `pgwarden dev` prefers.
const DefaultPort = 54329

// Options configure Start.
type Options struct {
	DataDir string // PostgreSQL lives in DataDir/pg; "" = ./data
	PGPort  int    // 0: DefaultPort if free, else any free port
	Log     zerolog.Logger
}

// Stack is a running development database.
type Stack struct {
	PG       *pgtest.Cluster
	AdminDSN string // pgwarden_admin on vectors, for the native provider; holds the password: never log it
	Port     int
	DataDir  string // absolute
}

// Start starts (or restarts, reusing DataDir/pg) the development PostgreSQL,
// provisions and, the first time, seeds the two demo databases (vectors
// and support: the two connection profiles `pgwarden dev` serves). The caller must
// call Stop.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	dir := opts.DataDir
	if dir == "" {
		dir = "data"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	pgdir := filepath.Join(dir, "pg")
	if pid, ok := runningPostmaster(pgdir); ok {
		return nil, fmt.Errorf("devstack: PostgreSQL (pid %d) is already running on %s; stop the other `pgwarden dev` first", pid, pgdir)
	}
	port := opts.PGPort
	if port == 0 {
		port = resolvePort(DefaultPort)
	}
	password, err := adminPassword(filepath.Join(dir, "admin-password"))
	if err != nil {
		return nil, err
	}
	log := opts.Log.With().Str("component", "devstack").Logger()
	_, statErr := os.Stat(filepath.Join(pgdir, "PG_VERSION"))
	c, err := pgtest.Start(ctx, pgdir, pgtest.Options{Port: port})
	if err != nil {
		return nil, fmt.Errorf("devstack: start PostgreSQL: %w", err)
	}
	log.Info().Str("data", pgdir).Int("port", c.Port).Bool("reused", statErr == nil).Msg("PostgreSQL started")
	adminDSN, err := Provision(ctx, c, password)
	if err != nil {
		c.Stop()
		return nil, err
	}
	if err := ProvisionSupport(ctx, c); err != nil {
		c.Stop()
		return nil, err
	}
	log.Info().Str("database", Database).Str("second_database", SupportDatabase).Msg("demo databases ready")
	return &Stack{PG: c, AdminDSN: adminDSN, Port: c.Port, DataDir: dir}, nil
}

// Stop shuts PostgreSQL down and waits for it.
func (s *Stack) Stop() {
	if s != nil && s.PG != nil {
		s.PG.Stop()
	}
}

// resolvePort returns preferred if it can be bound on 127.0.0.1, else 0
// (pgtest then picks a free port).
func resolvePort(preferred int) int {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(preferred)))
	if err != nil {
		return 0
	}
	l.Close()
	return preferred
}

// adminPassword reads the password kept at path, or creates it (32 random
// bytes, base64url, mode 0600).
func adminPassword(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if pw := strings.TrimSpace(string(b)); pw != "" {
			return pw, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("devstack: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("devstack: %w", err)
	}
	return pw, nil
}

// runningPostmaster reports whether postmaster.pid in dir names a live
// postgres process.
func runningPostmaster(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(line)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	cmd, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err == nil && !bytes.Contains(cmd, []byte("postgres")) {
		return 0, false // pid reused by something else
	}
	return pid, true
}

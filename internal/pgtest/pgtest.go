// Package pgtest starts real PostgreSQL 15 (+ pgvector) servers as local
// processes on 127.0.0.1 for tests and for `pgwarden dev`. initdb refuses
// root, so when running as root the server runs as the `postgres` OS user on
// a private data directory owned by it. Authentication over TCP is
// scram-sha-256 for every role except the bootstrap superuser `postgres`
// (trust, loopback only), so passwords of minted roles are really checked.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where PostgreSQL 15's server binaries live (Debian layout).
var BinDir = "/usr/lib/postgresql/15/bin"

// Cluster is a running PostgreSQL server.
type Cluster struct {
	Dir  string // data directory
	Port int
	Host string // 127.0.0.1
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	once sync.Once
	uid  *user.User // non-nil when run as another OS user
}

// Options tune a cluster.
type Options struct {
	Port     int      // 0: pick a free port
	Settings []string // extra postgresql.conf lines
}

// Available reports whether the PostgreSQL binaries and pgvector are installed.
func Available() error {
	if _, err := os.Stat(filepath.Join(BinDir, "postgres")); err != nil {
		return fmt.Errorf("PostgreSQL 15 not installed (run make setup): %w", err)
	}
	if _, err := os.Stat("/usr/share/postgresql/15/extension/vector.control"); err != nil {
		return fmt.Errorf("pgvector not installed (run make setup): %w", err)
	}
	return nil
}

// FreePort returns a currently free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start initialises dir (if empty) and starts a server on it. The caller
// must call Stop. When running as root the files are owned by `postgres`.
func Start(ctx context.Context, dir string, opt Options) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Port: opt.Port, Host: "127.0.0.1"}
	if c.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		c.Port = p
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres OS user: %w", err)
		}
		c.uid = u
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := c.chown(dir); err != nil {
		return nil, err
	}
	// Parent dirs must be traversable by the postgres user.
	if c.uid != nil {
		for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, st.Mode().Perm()|0o011)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		out, err := c.run(ctx, filepath.Join(BinDir, "initdb"), "-D", dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
		if err != nil {
			return nil, fmt.Errorf("initdb: %v: %s", err, out)
		}
		hba := "local all all trust\n" +
			"host all postgres 127.0.0.1/32 trust\n" +
			"host all all 127.0.0.1/32 scram-sha-256\n"
		if err := c.writeFile(filepath.Join(dir, "pg_hba.conf"), hba); err != nil {
			return nil, err
		}
	}
	// A port picked here may be taken by another process before the
	// server binds it (test packages run in parallel): when the caller left
	// the port to us, a start that fails on a taken address retries on
	// another free port.
	for attempt := 1; ; attempt++ {
		err := c.startServer(ctx, opt)
		if err == nil {
			return c, nil
		}
		if opt.Port != 0 || attempt == 3 || !errors.Is(err, errPortTaken) {
			return nil, err
		}
		p, perr := FreePort()
		if perr != nil {
			return nil, err
		}
		c.Port = p
	}
}

// errPortTaken marks a start that failed because the port was in use.
var errPortTaken = errors.New("port in use")

// startServer writes the server settings for c.Port and starts postgres.
func (c *Cluster) startServer(ctx context.Context, opt Options) error {
	dir := c.Dir
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"port = " + strconv.Itoa(c.Port),
		"unix_socket_directories = '" + dir + "'",
		"password_encryption = 'scram-sha-256'",
		"max_connections = 300",
		"shared_buffers = 128MB",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"logging_collector = off",
		"log_min_messages = warning",
	}
	conf = append(conf, opt.Settings...)
	if err := c.writeFile(filepath.Join(dir, "postgresql.auto.conf"), strings.Join(conf, "\n")+"\n"); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "postmaster.pid")) // stale from a crash
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_ = c.chown(logf.Name())
	var logStart int64
	if st, err := logf.Stat(); err == nil {
		logStart = st.Size()
	}
	c.cmd = c.command(context.Background(), filepath.Join(BinDir, "postgres"), "-D", dir)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	c.done = make(chan struct{})
	go func() { _ = c.cmd.Wait(); logf.Close(); close(c.done) }()
	if err := c.waitReady(ctx, 30*time.Second); err != nil {
		c.Stop()
		c.once = sync.Once{} // a retry starts a new server; its Stop must run
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		if logStart <= int64(len(log)) {
			log = log[logStart:]
		}
		if strings.Contains(string(log), "Address already in use") {
			return fmt.Errorf("postgres did not start on port %d: %w\n%s", c.Port, errPortTaken, tail(string(log), 2000))
		}
		return fmt.Errorf("postgres did not start: %v\n%s", err, tail(string(log), 2000))
	}
	return nil
}

// StartT starts a cluster in a temp dir for a test and stops it at cleanup.
// It skips the test when PostgreSQL is not installed, unless CI is set (then it fails).
func StartT(t testing.TB, opt Options) *Cluster {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "pgwarden-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Start(ctx, filepath.Join(dir, "data"), opt)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(); os.RemoveAll(dir) })
	return c
}

// DSN returns a URL for user on database db (superuser "postgres" needs no password).
func (c *Cluster) DSN(user, password, db string) string {
	if password != "" {
		return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", user, password, c.Host, c.Port, db)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", user, c.Host, c.Port, db)
}

// SuperDSN is the bootstrap superuser's DSN for db.
func (c *Cluster) SuperDSN(db string) string { return c.DSN("postgres", "", db) }

// Exec runs SQL statements as the superuser on db.
func (c *Cluster) Exec(ctx context.Context, db string, sql ...string) error {
	conn, err := pgx.Connect(ctx, c.SuperDSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

// CreateDB creates database name (if missing) with the vector extension.
func (c *Cluster) CreateDB(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.SuperDSN("postgres"))
	if err != nil {
		return err
	}
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err == nil && !exists {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	}
	conn.Close(ctx)
	if err != nil {
		return err
	}
	return c.Exec(ctx, name, "CREATE EXTENSION IF NOT EXISTS vector")
}

// Stop shuts the server down (fast mode) and waits for it.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		if c.cmd == nil || c.cmd.Process == nil {
			return
		}
		_ = c.cmd.Process.Signal(os.Interrupt) // SIGINT = fast shutdown
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// Kill stops the server abruptly (SIGKILL), e.g. to test upstream loss.
func (c *Cluster) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
}

// Restart starts the server again on the same dir and port after Stop/Kill.
func (c *Cluster) Restart(ctx context.Context) error {
	c.Stop()
	time.Sleep(100 * time.Millisecond)
	n, err := Start(ctx, c.Dir, Options{Port: c.Port})
	if err != nil {
		return err
	}
	c.cmd, c.done, c.uid = n.cmd, n.done, n.uid
	c.once = sync.Once{}
	return nil
}

func (c *Cluster) waitReady(ctx context.Context, max time.Duration) error {
	deadline := time.Now().Add(max)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("postgres exited")
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.SuperDSN("postgres"))
		cancel()
		if err == nil {
			// The port may belong to another test's server (ours then
			// exits on "Address already in use"): only our data directory
			// counts as ready.
			var dataDir string
			err = conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir)
			conn.Close(ctx)
			if err == nil && sameDir(dataDir, c.Dir) {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("port %d is served by another cluster (%s)", c.Port, dataDir)
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	if c.uid != nil {
		uid, _ := strconv.Atoi(c.uid.Uid)
		gid, _ := strconv.Atoi(c.uid.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(os.Environ(), "HOME="+c.uid.HomeDir, "USER=postgres")
		cmd.Dir = os.TempDir()
	}
	return cmd
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return c.command(ctx, name, args...).CombinedOutput()
}

func (c *Cluster) chown(path string) error {
	if c.uid == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.uid.Uid)
	gid, _ := strconv.Atoi(c.uid.Gid)
	return os.Chown(path, uid, gid)
}

func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return c.chown(path)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// sameDir reports whether a and b name the same directory.
func sameDir(a, b string) bool {
	if a == b {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// Lazy is one PostgreSQL server a test package shares, started on first
// use (a package whose tests all skip never starts one). Call Stop from
// TestMain after m.Run.
type Lazy struct {
	Prefix string // temp directory name prefix

	once sync.Once
	c    *Cluster
	dir  string
	err  error
	seq  atomic.Int64
}

// Cluster returns the shared server, starting it on first use; without
// PostgreSQL it skips t (fails under CI).
func (l *Lazy) Cluster(t testing.TB) *Cluster {
	t.Helper()
	l.once.Do(func() {
		if l.err = Available(); l.err != nil {
			return
		}
		if l.dir, l.err = os.MkdirTemp("", l.Prefix); l.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		l.c, l.err = Start(ctx, filepath.Join(l.dir, "data"), Options{})
	})
	if l.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(l.err)
		}
		t.Skip(l.err)
	}
	return l.c
}

// FreshDB creates a new database (name plus a sequence number) on the
// shared server and returns its superuser DSN.
func (l *Lazy) FreshDB(t testing.TB, name string) string {
	t.Helper()
	c := l.Cluster(t)
	db := fmt.Sprintf("%s%d", name, l.seq.Add(1))
	if err := c.CreateDB(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return c.SuperDSN(db)
}

// Stop stops the server (if it was started) and removes its directory.
func (l *Lazy) Stop() {
	if l.c != nil {
		l.c.Stop()
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

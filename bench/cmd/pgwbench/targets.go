package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// target is one way to reach the database: direct, pgbouncer or pgwarden.
type target struct {
	Name     string
	Host     string
	Port     int
	User     string
	Password string // the password or, for pgwarden, the OIDC token
	PID      int    // the proxy process (0 for direct)
	AdminURL string // pgwarden only
	stop     func()
}

func (t *target) env() []string {
	return append(os.Environ(), "PGPASSWORD="+t.Password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=20")
}

// dsn is a pgx/libpq keyword DSN (password passed separately).
func (t *target) dsn() string {
	return fmt.Sprintf("host=%s port=%d dbname=vectors user=%s sslmode=disable connect_timeout=20", t.Host, t.Port, t.User)
}

func pgbenchBin() string {
	if p := filepath.Join(pgtest.BinDir, "pgbench"); fileExists(p) {
		return p
	}
	return "pgbench"
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func runCmd(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitPort waits until host:port accepts TCP connections.
func waitPort(ctx context.Context, addr string, max time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited before listening on %s", addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listening on %s after %s", addr, max)
}

// startPgbouncer runs pgbouncer (session pooling, SCRAM clients, same
// upstream) as the postgres OS user when we are root (pgbouncer refuses root).
func startPgbouncer(ctx context.Context, dir string, pg *pgtest.Cluster, pw string) (*target, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if bin = "/usr/sbin/pgbouncer"; !fileExists(bin) {
			return nil, fmt.Errorf("pgbouncer not installed (run scripts/setup-bench.sh)")
		}
	}
	port, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`[databases]
vectors = host=127.0.0.1 port=%d dbname=vectors

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s/userlist.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 1100
max_db_connections = 0
ignore_startup_parameters = extra_float_digits,options
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
log_connections = 0
log_disconnections = 0
`, pg.Port, port, dir, dir, dir)
	files := map[string]string{
		"pgbouncer.ini": ini,
		"userlist.txt":  fmt.Sprintf("%q %q\n", directUser, pw),
	}
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, err
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		_ = os.Chown(dir, uid, gid)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return nil, err
		}
		if uid >= 0 {
			_ = os.Chown(p, uid, gid)
		}
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = dir
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	t := &target{Name: "pgbouncer", Host: "127.0.0.1", Port: port, User: directUser, Password: pw}
	if err := launch(ctx, cmd, t, 15*time.Second, nil); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
		return nil, fmt.Errorf("pgbouncer: %v\n%s%s", err, stderr.String(), tailStr(string(log), 2000))
	}
	return t, nil
}

// launch starts cmd as t's process and waits until t's port accepts
// connections; on failure the process is stopped. afterExit runs once the
// process has exited (closing its log file), if non-nil.
func launch(ctx context.Context, cmd *exec.Cmd, t *target, max time.Duration, afterExit func()) error {
	if err := cmd.Start(); err != nil {
		if afterExit != nil {
			afterExit()
		}
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		if afterExit != nil {
			afterExit()
		}
		close(exited)
	}()
	t.PID = cmd.Process.Pid
	t.stop = func() { stopProcess(cmd, exited) }
	if err := waitPort(ctx, fmt.Sprintf("%s:%d", t.Host, t.Port), max, exited); err != nil {
		t.stop()
		return err
	}
	return nil
}

func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// pgwardenConfig is the YAML pgwarden serve runs with in the bench: native
// credentials, the SPEC's policy, masking rules (unless noMask), recording
// on (defaults: results, 100 rows per statement), plaintext TCP on loopback
// (direct and pgbouncer run without TLS too).
var pgwardenConfig = template.Must(template.New("cfg").Parse(`listen: "{{.Listen}}"
tls:
  require: false
admin:
  listen: "{{.Admin}}"
upstream:
  host: 127.0.0.1
  port: {{.PGPort}}
  databases: [vectors]
  sslmode: disable
auth:
  oidc:
    issuer: "{{.Issuer}}"
    audience: pgwarden
credentials:
  provider: native
  native:
    admin_dsn: "{{.AdminDSN}}"
policy:
  roles:
    analyst: {actions: [search, read], db_role: vector_reader}
    ingest: {actions: [search, read, insert, update, delete], db_role: vector_writer}
    dba: {actions: [all], db_role: vector_admin, unmask: true}
  approval:
    approvers: [dba]
{{- if not .NoMask}}
masking:
  hmac_key: "{{.MaskKey}}"
  rules:
    - {table: public.customers, column: email, method: email}
    - {table: public.customers, column: ssn, method: partial, keep_last: 4}
    - {table: public.customers, column: credit_card, method: partial, keep_last: 4}
    - {table: public.customers, column: name, method: redact}
    - {table: public.customers, column: address, method: redact}
    - {table: public.documents, column: metadata, json_keys: [email, phone, name, author], method: redact}
    - {column: phone, method: hash}
  detectors: [email, phone, credit_card, ssn]
{{- end}}
recording:
  results: true
store:
  dir: "{{.Store}}"
limits:
  max_connections: 1200
log:
  level: warn
`))

type pgwardenParams struct {
	Listen, Admin, Issuer, AdminDSN, MaskKey, Store string
	PGPort                                          int
	NoMask                                          bool
}

// startPgwarden runs `pgwarden serve` as a separate process (so its RSS is
// its own), with net/http/pprof on the admin listener when profile is set.
func startPgwarden(ctx context.Context, name, bin, dir string, p pgwardenParams, token string, profile bool) (*target, error) {
	port, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	aport, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	p.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	p.Admin = fmt.Sprintf("127.0.0.1:%d", aport)
	p.Store = filepath.Join(dir, "store")
	if err := os.MkdirAll(p.Store, 0o700); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := pgwardenConfig.Execute(&buf, p); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "pgwarden.yaml")
	if err := os.WriteFile(cfgPath, buf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = os.Environ()
	if profile {
		cmd.Env = append(cmd.Env, "PGWARDEN_PPROF=1")
	}
	logf, err := os.Create(filepath.Join(dir, "pgwarden.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	t := &target{Name: name, Host: "127.0.0.1", Port: port, User: benchUser, Password: token, AdminURL: "http://" + p.Admin}
	if err := launch(ctx, cmd, t, 30*time.Second, func() { logf.Close() }); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "pgwarden.log"))
		return nil, fmt.Errorf("%s: %v\n%s", name, err, tailStr(string(log), 3000))
	}
	// Ready = issuer, credentials, upstream and recording all checked.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(t.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.stop()
			return nil, fmt.Errorf("%s: not ready after 30s", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return t, nil
}

// rssKiB is VmRSS of pid from /proc/<pid>/status.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// cpuTicks is utime+stime of pid in clock ticks (USER_HZ = 100 on Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	s, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return u + s, nil
}

// ctxSwitches is the sum of voluntary and involuntary context switches of
// every thread of pid (/proc/<pid>/task/*/status); a thread that exited in
// between is not counted (Go keeps its threads).
func ctxSwitches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no tasks for pid %d", pid)
	}
	var n int64
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.ParseInt(strings.TrimSpace(l[strings.IndexByte(l, ':')+1:]), 10, 64)
				n += v
			}
		}
	}
	return n, nil
}

// syscallCounts is syscr and syscw of pid from /proc/<pid>/io.
func syscallCounts(pid int) (r, w int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr: "); ok {
			r, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "syscw: "); ok {
			w, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return r, w, nil
}

package integration

// The chaos test (issue 15, part 3): concurrent psql, pgx and psycopg
// clients run kNN searches, masked reads and inserts through a pgwarden
// process, each statement with a unique marker, while the test injects
// faults in turn:
//
//   - terminate: pg_terminate_backend of every minted backend (superuser);
//   - idp_down: the OIDC issuer's listener closed for a while (and the
//     gateway kill -9'd and restarted in the middle of it, since a running
//     gateway has its keys cached: only a fresh one needs the issuer);
//   - store_full: the record store's filesystem (a small tmpfs mounted as
//     root) filled to the last byte, then freed;
//   - kill9: the gateway process kill -9'd and restarted on the same store;
//   - vault_stop: the Vault server SIGSTOPped, then continued (long form with
//     the vault provider only).
//
// Afterwards: `pgwarden sessions verify` passes; every statement whose result
// a client received is in the record; no minted backend remains and no
// minted role other than the ones a kill -9 left to expire (and, in the long
// form, those are swept); the gateway's goroutines are back to their idle
// count and the test process leaks none; every error a client saw is a
// `pgwarden: ` one or a standard connection error; no client operation ran
// into its deadline.
//
// `make test` runs the short form (~40s of load, native credentials);
// `make chaos` the long one (PGWARDEN_CHAOS=long, PGWARDEN_CHAOS_DURATION,
// default 10m; the vault provider when .tools/bin/vault is built).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/vaulttest"
	"github.com/pgwarden/pgwarden/sessions"
)

const (
	chaosOpTimeout      = 20 * time.Second // every client operation's deadline
	chaosPsqlTimeout    = 90 * time.Second // one psql batch (at most chaosPsqlBatch statements)
	chaosPsqlBatch      = 12
	chaosPgxPerConn     = 20
	chaosIdleGoroutines = 10 // slack over the first gateway's idle goroutine count
)

// chaosPlan is the form of one run.
type chaosPlan struct {
	long      bool
	duration  time.Duration // of the client load
	faultGap  time.Duration // between the end of one fault and the next
	faultLen  time.Duration // how long idp_down / store_full / vault_stop last
	clients   int           // of each kind (psql, pgx, psycopg)
	storeSize string        // tmpfs size
}

func chaosPlanFromEnv(t *testing.T) chaosPlan {
	p := chaosPlan{duration: 40 * time.Second, faultGap: 2 * time.Second, faultLen: 3 * time.Second, clients: 2, storeSize: "128m"}
	if os.Getenv("PGWARDEN_CHAOS") == "long" {
		p = chaosPlan{long: true, duration: 10 * time.Minute, faultGap: 5 * time.Second, faultLen: 6 * time.Second, clients: 3, storeSize: "1g"}
	}
	if s := os.Getenv("PGWARDEN_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("PGWARDEN_CHAOS_DURATION: %v", err)
		}
		p.duration = d
	}
	return p
}

// ---- what the clients saw ------------------------------------------------------

type chaosStats struct {
	mu         sync.Mutex
	attempted  map[string]int      // client kind → statements sent
	acked      map[string]string   // marker → client kind
	errs       map[string]int      // error class → count
	samples    map[string]string   // error class → the first message seen
	unexpected map[string][]string // client kind → errors outside the contract (samples)
	hangs      []string
}

func newChaosStats() *chaosStats {
	return &chaosStats{attempted: map[string]int{}, acked: map[string]string{}, errs: map[string]int{}, samples: map[string]string{}, unexpected: map[string][]string{}}
}

func (s *chaosStats) attempt(kind string) {
	s.mu.Lock()
	s.attempted[kind]++
	s.mu.Unlock()
}

func (s *chaosStats) ack(kind, marker string) {
	s.mu.Lock()
	s.acked[marker] = kind
	s.mu.Unlock()
}

// classified counts an error already classified (class "" = outside the contract).
func (s *chaosStats) classified(kind, class, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if class == "" {
		if len(s.unexpected[kind]) < 20 {
			s.unexpected[kind] = append(s.unexpected[kind], msg)
		}
		s.errs[kind+": unexpected"]++
		return
	}
	s.errs[class]++
	if _, ok := s.samples[class]; !ok {
		s.samples[class] = msg
	}
}

func (s *chaosStats) hang(what string) {
	s.mu.Lock()
	s.hangs = append(s.hangs, what)
	s.mu.Unlock()
}

// PostgreSQL's own FATAL for a backend ended by pg_terminate_backend: the
// gateway relays the server's last word to the client as is (no extra 08006).
const pgTerminatedMsg = "terminating connection due to administrator command"

// connLoss are the client-side texts of a connection that the killed
// gateway (or backend) took down, or that could not be opened while the
// gateway was down.
var connLoss = []string{
	"connection refused", "unexpected eof", "connection reset", "broken pipe",
	"server closed the connection unexpectedly", "connection to server was lost",
	"ssl syscall error", "ssl connection has been closed unexpectedly", "conn closed",
	"consuming input failed", "the connection is closed", "connection is lost",
	"could not receive data from server", "could not send data to server",
	"no connection to the server", "use of closed network connection",
}

func isConnLoss(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range connLoss {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// classifyServer classifies an ErrorResponse's SQLSTATE and message.
func classifyServer(code, msg string) string {
	switch {
	case strings.HasPrefix(msg, "pgwarden: "):
		return "pgwarden " + code
	case code == "57P01" && strings.HasPrefix(msg, pgTerminatedMsg):
		return "server 57P01 (backend terminated)"
	}
	return ""
}

// classifyPgx classifies a pgx error; hang reports a deadline that was hit.
func classifyPgx(err error) (class string, hang bool) {
	if errors.Is(err, context.DeadlineExceeded) {
		return "", true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return classifyServer(pe.Code, pe.Message), false
	}
	var ne net.Error
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		(errors.As(err, &ne) && !ne.Timeout()) || isConnLoss(err.Error()) {
		return "connection lost/refused", false
	}
	return "", false
}

// classifyLibpq classifies a libpq client's error: the server's SQLSTATE
// and primary message, or ("-") libpq's own text, which folds a FATAL
// received while connecting into "... failed: FATAL:  <message>".
func classifyLibpq(sqlstate, text string) string {
	if sqlstate != "-" {
		return classifyServer(sqlstate, text)
	}
	if class := classifyPsql(text); class != "" {
		return strings.Replace(class, "(psql)", "(libpq)", 1)
	}
	return ""
}

var psqlServerMsg = regexp.MustCompile(`(?:ERROR|FATAL):\s+(.*)`)

// classifyPsql classifies the stderr of a psql that failed.
func classifyPsql(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		if m := psqlServerMsg.FindStringSubmatch(line); m != nil {
			msg := strings.TrimSpace(m[1])
			switch {
			case strings.HasPrefix(msg, "pgwarden: "):
				return "pgwarden (psql)"
			case strings.HasPrefix(msg, pgTerminatedMsg):
				return "server 57P01 (backend terminated)"
			}
			return ""
		}
	}
	if isConnLoss(stderr) {
		return "connection lost/refused"
	}
	return ""
}

// ---- the workload ----------------------------------------------------------------

var markerRE = regexp.MustCompile(`chaos-[a-z]+[0-9]+-[0-9]+`)

// chaosSQL is one statement of kind knn, read or insert with marker m.
func chaosSQL(rnd *rand.Rand, client, m string) (kind, sql string) {
	switch rnd.IntN(3) {
	case 0:
		return "knn", fmt.Sprintf("SELECT /* %s */ id, title FROM documents ORDER BY embedding <-> (SELECT embedding FROM documents WHERE id = %d) LIMIT 5", m, 1+rnd.IntN(1000))
	case 1:
		lo := 1 + rnd.IntN(190)
		return "read", fmt.Sprintf("SELECT /* %s */ id, name, email, ssn FROM customers WHERE id BETWEEN %d AND %d ORDER BY id", m, lo, lo+2)
	}
	return "insert", fmt.Sprintf("INSERT /* %s */ INTO chaos_items (marker, client) VALUES ('%s', '%s')", m, m, client)
}

// chaosToken signs a token for user (no testing.T: worker goroutines call it).
func chaosToken(is *oidcIssuer, user string, groups ...string) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: is.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", is.kid))
	if err != nil {
		return "", err
	}
	return jwt.Signed(sig).Claims(is.claims(user, groups...)).Serialize()
}

type chaosEnv struct {
	t      *testing.T
	stats  *chaosStats
	is     *oidcIssuer
	addr   string // the gateway's Postgres listener (the same across restarts)
	stop   context.Context
	dir    string // for client scripts' files
	script string // psycopg worker
	secs   float64
}

func (e *chaosEnv) hostPort() (string, string) {
	h, p, _ := net.SplitHostPort(e.addr)
	return h, p
}

func (e *chaosEnv) pgxWorker(n int) {
	kind := "pgx"
	name := fmt.Sprintf("pgx%d", n)
	user := fmt.Sprintf("chaos-%s@example.com", name)
	rnd := rand.New(rand.NewPCG(uint64(n), 1))
	h, p := e.hostPort()
	seq := 0
	for e.stop.Err() == nil {
		tok, err := chaosToken(e.is, user, "ingest")
		if err != nil {
			e.stats.classified(kind, "", "token: "+err.Error())
			return
		}
		cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=vectors sslmode=require connect_timeout=15", h, p))
		if err != nil {
			e.stats.classified(kind, "", err.Error())
			return
		}
		cc.User, cc.Password = user, tok
		cc.TLSConfig = &tls.Config{InsecureSkipVerify: true}
		cc.Fallbacks = nil
		if n%2 == 1 {
			cc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		}
		ctx, cancel := context.WithTimeout(context.Background(), chaosOpTimeout)
		conn, err := pgx.ConnectConfig(ctx, cc)
		cancel()
		if err != nil {
			e.pgxErr(kind, name+" connect", err)
			pause(e.stop, 200*time.Millisecond)
			continue
		}
		for i := 0; i < chaosPgxPerConn && e.stop.Err() == nil && !conn.IsClosed(); i++ {
			seq++
			m := fmt.Sprintf("chaos-%s-%d", name, seq)
			op, sql := chaosSQL(rnd, kind, m)
			e.stats.attempt(kind)
			ctx, cancel := context.WithTimeout(context.Background(), chaosOpTimeout)
			if op == "insert" {
				_, err = conn.Exec(ctx, sql)
			} else {
				var rows pgx.Rows
				if rows, err = conn.Query(ctx, sql); err == nil {
					for rows.Next() {
					}
					rows.Close()
					err = rows.Err()
				}
			}
			cancel()
			if err != nil {
				e.pgxErr(kind, m, err)
				continue
			}
			e.stats.ack(kind, m)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		conn.Close(ctx)
		cancel()
	}
}

func (e *chaosEnv) pgxErr(kind, what string, err error) {
	class, hang := classifyPgx(err)
	if hang {
		e.stats.hang(what + ": " + err.Error())
		return
	}
	e.stats.classified(kind, class, what+": "+err.Error())
}

// psqlWorker runs psql in batches: one process (session) per batch of
// statements, each followed by `\echo`, so a marker on stdout means psql
// received that statement's result.
func (e *chaosEnv) psqlWorker(n int) {
	kind := "psql"
	name := fmt.Sprintf("psql%d", n)
	user := fmt.Sprintf("chaos-%s@example.com", name)
	rnd := rand.New(rand.NewPCG(uint64(n), 2))
	h, p := e.hostPort()
	conninfo := fmt.Sprintf("host=%s port=%s dbname=vectors user=%s sslmode=require connect_timeout=15", h, p, user)
	seq := 0
	for e.stop.Err() == nil {
		tok, err := chaosToken(e.is, user, "ingest")
		if err != nil {
			e.stats.classified(kind, "", "token: "+err.Error())
			return
		}
		args := []string{conninfo, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"}
		var markers []string
		for i := 0; i < chaosPsqlBatch; i++ {
			seq++
			m := fmt.Sprintf("chaos-%s-%d", name, seq)
			_, sql := chaosSQL(rnd, kind, m)
			args = append(args, "-c", sql, "-c", `\echo @@ack `+m)
			markers = append(markers, m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), chaosPsqlTimeout)
		cmd := exec.CommandContext(ctx, "psql", args...)
		cmd.Env = append(cleanPGEnv(), "PGPASSWORD="+tok, "PGAPPNAME=chaos")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		runErr := cmd.Run()
		hung := ctx.Err() != nil
		cancel()
		acked := 0
		for _, line := range strings.Split(out.String(), "\n") {
			if m, ok := strings.CutPrefix(line, "@@ack "); ok {
				e.stats.ack(kind, m)
				acked++
			}
		}
		// the statements psql sent: the acknowledged ones and the one that failed
		for i := 0; i < min(acked+1, len(markers)); i++ {
			e.stats.attempt(kind)
		}
		switch {
		case hung:
			e.stats.hang(fmt.Sprintf("%s: psql batch still running after %v (%d of %d done)", name, chaosPsqlTimeout, acked, len(markers)))
		case runErr != nil && strings.Contains(errb.String(), "timeout expired"):
			e.stats.hang(name + ": " + strings.TrimSpace(errb.String()))
		case runErr != nil:
			e.stats.classified(kind, classifyPsql(errb.String()), name+": "+strings.TrimSpace(errb.String()))
			pause(e.stop, 200*time.Millisecond)
		}
	}
}

// pyWorker runs the psycopg worker script until the load ends and reads its
// outcome lines; a worker silent for chaosOpTimeout+10s is hung.
func (e *chaosEnv) pyWorker(n int) {
	kind := "psycopg"
	name := fmt.Sprintf("py%d", n)
	user := fmt.Sprintf("chaos-%s@example.com", name)
	tok, err := chaosToken(e.is, user, "ingest")
	if err != nil {
		e.stats.classified(kind, "", "token: "+err.Error())
		return
	}
	h, p := e.hostPort()
	cmd := exec.Command(debianPython, e.script, name, fmt.Sprint(e.secs), strconv.Itoa(n))
	cmd.Env = append(cleanPGEnv(), "PGHOST="+h, "PGPORT="+p, "PGUSER="+user, "PGDATABASE=vectors",
		"PGSSLMODE=require", "PGAPPNAME=chaos", "PGPASSWORD="+tok)
	var errb lockedBuffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.stats.classified(kind, "", err.Error())
		return
	}
	if err := cmd.Start(); err != nil {
		e.stats.classified(kind, "", err.Error())
		return
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	killed := false
	watchdog := time.NewTimer(chaosOpTimeout + 10*time.Second)
	defer watchdog.Stop()
	for open := true; open; {
		select {
		case line, ok := <-lines:
			if !ok {
				open = false
				break
			}
			watchdog.Reset(chaosOpTimeout + 10*time.Second)
			f := strings.SplitN(line, " ", 5)
			switch {
			case len(f) == 2 && f[0] == "ack":
				e.stats.attempt(kind)
				e.stats.ack(kind, f[1])
			case len(f) == 5 && f[0] == "err":
				if f[3] == "stmt" {
					e.stats.attempt(kind)
				}
				if strings.Contains(f[4], "timeout expired") {
					e.stats.hang(name + ": " + line)
					continue
				}
				e.stats.classified(kind, classifyLibpq(f[2], f[4]), name+": "+line)
			default:
				e.stats.classified(kind, "", name+": unparsed output "+line)
			}
		case <-watchdog.C:
			e.stats.hang(fmt.Sprintf("%s: no outcome for %v", name, chaosOpTimeout+10*time.Second))
			_ = cmd.Process.Kill()
			killed = true
			for range lines {
			}
			open = false
		}
	}
	if err := cmd.Wait(); err != nil && !killed {
		e.stats.classified(kind, "", fmt.Sprintf("%s exited: %v: %s", name, err, errb.String()))
	}
}

// cleanPGEnv is the environment without libpq variables of the test's own.
func cleanPGEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	return env
}

// pause sleeps d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ---- the faults ------------------------------------------------------------------

// chaosIdP serves an oidcIssuer's handler on a fixed address that can be
// taken down (listener and connections closed) and brought back.
type chaosIdP struct {
	handler http.Handler
	addr    string
	mu      sync.Mutex
	srv     *http.Server
}

func newChaosIdP(t *testing.T, is *oidcIssuer) *chaosIdP {
	t.Helper()
	c := &chaosIdP{handler: is.srv.Config.Handler, addr: freeLocalAddr(t)}
	is.srv.Close()
	is.URL = "http://" + c.addr
	if err := c.up(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.down)
	return c
}

func (c *chaosIdP) up() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after down
		if l, err = net.Listen("tcp", c.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("issuer listen again on %s: %w", c.addr, err)
	}
	c.srv = &http.Server{Handler: c.handler, ReadHeaderTimeout: 5 * time.Second}
	go func(s *http.Server) { _ = s.Serve(l) }(c.srv)
	return nil
}

func (c *chaosIdP) down() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		_ = c.srv.Close()
		c.srv = nil
	}
}

// mountTmpfs mounts a tmpfs of size at dir (root only); "" = mounted, else
// why not. It is unmounted at cleanup.
func mountTmpfs(t *testing.T, dir, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return "not root: cannot mount a tmpfs for the store"
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "chaos-store", dir).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("mount -t tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		for i := 0; i < 20; i++ {
			if exec.Command("umount", dir).Run() == nil {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return ""
}

// fillFS writes zeros to path until the filesystem is full (bounded).
func fillFS(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for i := 0; i < 1<<14; i++ { // at most 16 GiB
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, errors.New("filesystem never filled")
}

// ---- the test --------------------------------------------------------------------

func TestChaos(t *testing.T) {
	plan := chaosPlanFromEnv(t)
	needTool(t, "psql", "the psql clients of the chaos test")
	needPython(t, "psycopg")
	leakOpts := goleak.IgnoreCurrent()
	bin := pgwardenBinary(t)
	ctx := context.Background()
	d := direct(t)
	must(d.Exec(ctx, "DROP TABLE IF EXISTS chaos_items"))
	must(d.Exec(ctx, "CREATE TABLE chaos_items (marker text PRIMARY KEY, client text NOT NULL, at timestamptz NOT NULL DEFAULT now())"))
	must(d.Exec(ctx, "GRANT SELECT, INSERT ON chaos_items TO vector_reader, vector_writer, vector_admin"))

	is := newIssuer(t)
	idp := newChaosIdP(t, is)
	cfg := baseConfig(t, is)
	cfg.Listen, cfg.Admin.Listen = freeLocalAddr(t), freeLocalAddr(t)
	cfg.Log.Level = "info"
	cfg.Credentials.TTL = time.Minute // the minimum: what a kill -9 leaves expires soon
	// the store on its own small filesystem, to be filled
	storeNote := mountTmpfs(t, cfg.Store.Dir, plan.storeSize)
	if storeNote != "" {
		t.Logf("chaos: fault store_full skipped: %s", storeNote)
	}

	// the vault provider (long form, when Vault is built)
	var tv *vaulttest.Server
	rolePrefix := cfg.Credentials.Native.RolePrefix
	vaultNote := "short form: native credentials"
	if plan.long {
		tv, vaultNote = chaosVault(t, cfg)
		if tv != nil {
			rolePrefix = "v-"
		}
	}
	if tv == nil {
		t.Logf("chaos: fault vault_stop skipped: %s", vaultNote)
	}
	cfgPath := writeConfig(t, cfg)
	// minted roles other tests left to expire are not this test's
	before, err := pgx.CollectRows(must(d.Query(ctx, "SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", rolePrefix)), pgx.RowTo[string])
	must0(t, err)
	if before == nil {
		before = []string{}
	}

	var procMu sync.Mutex
	proc := startProcess(t, bin, cfgPath, cfg, is)
	procs := []*gwProcess{proc}
	current := func() *gwProcess { procMu.Lock(); defer procMu.Unlock(); return proc }
	restart := func() {
		p := startProcess(t, bin, cfgPath, cfg, is)
		procMu.Lock()
		proc = p
		procs = append(procs, p)
		procMu.Unlock()
	}
	metrics := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	goroutines0 := metricVia(t, metrics, proc.gw.AdminURL, "go_goroutines")

	dir := t.TempDir()
	script := filepath.Join(compatDir(t), "..", "chaos", "psycopg_worker.py")
	stop, stopLoad := context.WithCancel(ctx)
	env := &chaosEnv{t: t, stats: newChaosStats(), is: is, addr: cfg.Listen, stop: stop, dir: dir, script: script, secs: plan.duration.Seconds()}
	var wg sync.WaitGroup
	workersDone := make(chan struct{})
	for i := 0; i < plan.clients; i++ {
		wg.Add(3)
		go func(i int) { defer wg.Done(); env.pgxWorker(i) }(i)
		go func(i int) { defer wg.Done(); env.psqlWorker(i) }(i)
		go func(i int) { defer wg.Done(); env.pyWorker(i) }(i)
	}
	go func() { wg.Wait(); close(workersDone) }()
	t.Cleanup(func() {
		stopLoad()
		select {
		case <-workersDone:
		case <-time.After(2 * chaosPsqlTimeout):
			t.Error("chaos clients did not stop")
		}
	})

	// The faults, in turn, until the load's time is up.
	faults := map[string]int{}
	var lastKill time.Time
	kill9 := func() {
		current().kill9(t)
		lastKill = time.Now()
		faults["kill9"]++
		restart()
	}
	rotation := []string{"terminate", "store_full", "idp_down", "kill9"}
	if tv != nil {
		rotation = append(rotation, "vault_stop")
	}
	end := time.Now().Add(plan.duration)
	pause(stop, plan.faultGap)
	for i := 0; time.Now().Add(plan.faultLen).Before(end); i++ {
		switch f := rotation[i%len(rotation)]; f {
		case "terminate":
			var n int
			must0(t, d.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE starts_with(usename, $1) AND usename <> ALL($2)`, rolePrefix, before).Scan(&n))
			faults["terminate"]++
			faults["backends_terminated"] += n
		case "store_full":
			if storeNote != "" {
				continue
			}
			filler := filepath.Join(cfg.Store.Dir, "chaos-filler")
			if _, err := fillFS(filler); err != nil {
				t.Fatalf("fill the store's filesystem: %v", err)
			}
			faults["store_full"]++
			time.Sleep(plan.faultLen)
			must0(t, os.Remove(filler))
		case "idp_down":
			idp.down()
			faults["idp_down"]++
			time.Sleep(plan.faultLen / 3)
			kill9() // a fresh gateway that cannot discover the issuer
			time.Sleep(plan.faultLen * 2 / 3)
			must0(t, idp.up())
		case "kill9":
			kill9()
		case "vault_stop":
			must0(t, tv.Pause())
			faults["vault_stop"]++
			time.Sleep(plan.faultLen)
			must0(t, tv.Resume())
		}
		time.Sleep(plan.faultGap)
	}
	for time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
	}
	stopLoad()
	select {
	case <-workersDone:
	case <-time.After(2 * chaosPsqlTimeout):
		t.Fatal("chaos clients did not stop within their deadlines")
	}

	// ---- afterwards ----
	st := env.stats
	gw := current()
	// every session over: the gateway's goroutines are back to idle
	var goroutines float64
	idle := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if metricVia(t, metrics, gw.gw.AdminURL, "pgwarden_connections") == 0 {
			goroutines = metricVia(t, metrics, gw.gw.AdminURL, "go_goroutines")
			if goroutines <= goroutines0+chaosIdleGoroutines {
				idle = true
				break
			}
		}
	}
	if !idle {
		t.Errorf("gateway goroutines: %v after the load, %v when it was idle at start (connections %v)",
			goroutines, goroutines0, metricVia(t, metrics, gw.gw.AdminURL, "pgwarden_connections"))
	}
	// the last gateway stops gracefully: it revokes what it minted
	must0(t, gw.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-gw.done:
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop within 30s of SIGTERM")
	}
	idp.down()
	metrics.CloseIdleConnections()

	backends := func() int {
		var n int
		must0(t, d.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE starts_with(usename, $1) AND usename <> ALL($2)", rolePrefix, before).Scan(&n))
		return n
	}
	leftBackends := backends()
	for i := 0; i < 50 && leftBackends > 0; i++ {
		time.Sleep(200 * time.Millisecond)
		leftBackends = backends()
	}
	// Roles a kill -9 left behind are not renewed by anyone: they expire
	// within credentials.ttl of the kill (then a sweep drops them). Any other
	// role with the prefix is leaked.
	type role struct {
		name  string
		until time.Time
	}
	roles := func() []role {
		rows := must(d.Query(ctx, `SELECT rolname, coalesce(extract(epoch FROM rolvaliduntil), 1e11)::float8 FROM pg_roles
			WHERE starts_with(rolname, $1) AND rolname <> ALL($2) ORDER BY 1`, rolePrefix, before))
		defer rows.Close()
		var out []role
		for rows.Next() {
			var r role
			var until float64
			must0(t, rows.Scan(&r.name, &until))
			r.until = time.Unix(int64(until), 0)
			out = append(out, r)
		}
		must0(t, rows.Err())
		return out
	}
	left := roles()
	var leaked []string
	expiring := 0
	limit := lastKill.Add(cfg.Credentials.TTL + 5*time.Second)
	for _, r := range left {
		if !lastKill.IsZero() && !r.until.After(limit) {
			expiring++
			continue
		}
		leaked = append(leaked, fmt.Sprintf("%s (valid until %s)", r.name, r.until.Format(time.RFC3339)))
	}
	swept := "not waited for (short form)"
	if plan.long && expiring > 0 {
		// wait for them to expire, then a gateway start sweeps them (native);
		// Vault revokes its own expired leases
		wait := time.Until(limit) + time.Second
		t.Logf("chaos: waiting %v for %d roles left by kill -9 to expire", wait.Round(time.Second), expiring)
		time.Sleep(wait)
		p := startProcess(t, bin, cfgPath, cfg, is)
		var remaining []role
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			if remaining = roles(); len(remaining) == 0 {
				break
			}
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		if len(remaining) > 0 {
			t.Errorf("%d roles left by kill -9 were not swept after they expired: %v", len(remaining), remaining)
		}
		swept = fmt.Sprintf("%d of %d swept after expiry", expiring-len(remaining), expiring)
	}

	// the record
	out, code := pgwardenCLI(t, bin, "sessions", "verify", "--config", cfgPath)
	if code != 0 {
		t.Errorf("sessions verify after the chaos: exit %d\n%s", code, out)
	}
	recorded := map[string]bool{}
	recordedAny := map[string]bool{}
	var store *sessions.Store
	store, err = sessions.OpenStore(cfg.Store.Dir)
	must0(t, err)
	var buf bytes.Buffer
	must0(t, store.Export(&buf, time.Time{}, "jsonl"))
	events := 0
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var e sessions.Event
		must0(t, json.Unmarshal(line, &e))
		events++
		if e.Type != "statement" {
			continue
		}
		for _, m := range markerRE.FindAllString(e.SQL, -1) {
			recordedAny[m] = true
			if e.Decision == "allow" && e.Error == "" {
				recorded[m] = true
			}
		}
	}
	var missing []string
	st.mu.Lock()
	for m := range st.acked {
		if !recorded[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	// inserts the database holds whose statement is not in the record: run,
	// but their client was never told (the gateway died, or the record could
	// not be written and the session ended with FATAL 08001)
	var dbMarkers []string
	rows := must(d.Query(ctx, "SELECT marker FROM chaos_items"))
	for rows.Next() {
		var m string
		must0(t, rows.Scan(&m))
		dbMarkers = append(dbMarkers, m)
	}
	rows.Close()
	unrecordedInserts, unackedInserts := 0, 0
	for _, m := range dbMarkers {
		if !recordedAny[m] {
			unrecordedInserts++
		}
		if _, ok := st.acked[m]; !ok {
			unackedInserts++
		}
	}

	// the figures
	ackBy := map[string]int{}
	for _, k := range st.acked {
		ackBy[k]++
	}
	var fb strings.Builder
	fmt.Fprintf(&fb, "chaos figures (%s, %v of load, %d clients of each kind, credentials %s):\n",
		map[bool]string{true: "long form", false: "short form"}[plan.long], plan.duration, plan.clients, map[bool]string{true: "vault", false: "native"}[tv != nil])
	fmt.Fprintf(&fb, "  statements acknowledged: %d (psql %d, pgx %d, psycopg %d) of %d sent\n",
		len(st.acked), ackBy["psql"], ackBy["pgx"], ackBy["psycopg"], st.attempted["psql"]+st.attempted["pgx"]+st.attempted["psycopg"])
	fmt.Fprintf(&fb, "  faults injected: %s\n", sortedCounts(faults))
	fmt.Fprintf(&fb, "  records missing: %d (store: %d events)\n", len(missing), events)
	fmt.Fprintf(&fb, "  roles leaked: %d; roles left by kill -9 to expire: %d (%s); backends left: %d\n", len(leaked), expiring, swept, leftBackends)
	fmt.Fprintf(&fb, "  inserts in the database: %d, unacknowledged %d, unrecorded %d\n", len(dbMarkers), unackedInserts, unrecordedInserts)
	fmt.Fprintf(&fb, "  client errors: %s\n", sortedCounts(st.errs))
	fmt.Fprintf(&fb, "  gateway goroutines: idle at start %v, after the load %v; hangs: %d", goroutines0, goroutines, len(st.hangs))
	t.Log(fb.String())
	for _, class := range slices.Sorted(maps.Keys(st.samples)) {
		t.Logf("chaos: first %q error: %s", class, st.samples[class])
	}
	// no gateway process panicked or hit a fatal runtime error
	for i, p := range procs {
		log := p.stderr.String()
		for _, bad := range []string{"panic:", "fatal error:", "WARNING: DATA RACE", `"level":"fatal"`, `"level":"panic"`} {
			if strings.Contains(log, bad) {
				t.Errorf("gateway process %d logged %q:\n%s", i, bad, tail(log, 4000))
			}
		}
	}
	if p := os.Getenv("PGWARDEN_CHAOS_FIGURES"); p != "" {
		_ = os.WriteFile(p, []byte(fb.String()+"\n"), 0o644)
	}

	if len(missing) > 0 {
		t.Errorf("%d acknowledged statements are not in the record, e.g. %v", len(missing), missing[:min(len(missing), 10)])
	}
	if len(leaked) > 0 {
		t.Errorf("minted roles leaked: %v", leaked)
	}
	if leftBackends > 0 {
		t.Errorf("%d minted backends still running after the gateway stopped", leftBackends)
	}
	for kind, samples := range st.unexpected {
		t.Errorf("%s clients saw errors outside the contract (neither `pgwarden: ` nor a lost connection): %q", kind, samples)
	}
	if len(st.hangs) > 0 {
		t.Errorf("client operations ran into their deadline: %q", st.hangs)
	}
	if len(st.acked) == 0 || ackBy["psql"] == 0 || ackBy["pgx"] == 0 || ackBy["psycopg"] == 0 {
		t.Errorf("a client kind got nothing done: %v", ackBy)
	}
	if faults["kill9"] == 0 || faults["terminate"] == 0 {
		t.Errorf("faults not all injected: %v", faults)
	}
	st.mu.Unlock()
	if !t.Failed() {
		goleak.VerifyNone(t, leakOpts)
	}
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// chaosVault starts Vault with the database engine against the upstream
// and points cfg's credentials at it (auth token); nil and why when the
// Vault binary is not built.
func chaosVault(t *testing.T, cfg *config.Config) (*vaulttest.Server, string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("..", ".tools", "bin", "vault")); err != nil && os.Getenv("PGWARDEN_VAULT_BIN") == "" {
		return nil, "vault binary not built (scripts/vault-tool.sh): native credentials"
	}
	admin := "vault_admin_" + vaulttest.RandHex(t, 4)
	adminPW := vaulttest.RandHex(t, 16)
	must0(t, upstream.pg.Exec(context.Background(), "vectors",
		"CREATE ROLE "+admin+" LOGIN CREATEROLE PASSWORD '"+adminPW+"'",
		"GRANT pg_signal_backend TO "+admin,
	))
	tv := vaulttest.Start(t)
	tv.MountDatabase(t, vaulttest.Database{Host: upstream.pg.Host, Port: upstream.pg.Port, Name: "vectors", User: admin, Password: adminPW})
	tv.DatabaseRole(t, "vector_reader", "vector_reader", "1m", "5m")
	tv.DatabaseRole(t, "vector_writer", "vector_writer", "1m", "5m")
	t.Setenv("VAULT_TOKEN", tv.Root)
	cfg.Credentials.Provider = "vault"
	cfg.Credentials.Vault = config.Vault{Address: tv.Addr, Auth: "token", Mount: "database"}
	cfg.Credentials.Native.AdminDSN = ""
	cfg.Masking.CatalogDSN = catalogReader(t)
	return tv, ""
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

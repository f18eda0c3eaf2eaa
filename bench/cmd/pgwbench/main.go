// Command pgwbench is `make bench`: it measures pgwarden against a direct
// PostgreSQL connection and pgbouncer, in one run, on the same machine.
//
// It starts its own PostgreSQL 15 + pgvector (internal/pgtest; the seeded
// cluster is cached in -data and reused while the seed version matches),
// pgbouncer (session pooling, same upstream), an in-process development
// OIDC issuer (identity/devissuer) for tokens, and two pgwarden processes
// (`pgwarden serve`): one with the SPEC's masking rules and detectors, one
// without (the masked-read baseline). Both use native credentials and
// record sessions. It then runs every workload against every target, the
// order rotating per workload, prints one table and writes it as JSON.
//
// It never listens on anything but 127.0.0.1 and never prints the token
// or the passwords it generates.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/pgwarden/pgwarden/identity/devissuer"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

type options struct {
	duration   time.Duration
	rounds     int
	dataDir    string
	out        string
	pgwarden   string
	profileDir string
	churnN     int
	idleN      int
	only       string
	baseline   bool
	relay      string
	relayAt    string
	relayMode  string
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "duration of each throughput workload per target and round (whole seconds)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds of each throughput workload per target (order reversed every other round)")
	flag.StringVar(&o.dataDir, "data", filepath.Join(os.TempDir(), "pgwbench-data"), "cached, seeded PostgreSQL cluster (reused across runs)")
	flag.StringVar(&o.out, "out", "bench/results/latest.json", "JSON results file")
	flag.StringVar(&o.pgwarden, "pgwarden", "bin/pgwarden", "pgwarden binary")
	flag.StringVar(&o.profileDir, "profile", "", "write CPU and heap profiles of pgwarden into this directory")
	flag.IntVar(&o.churnN, "churn", 1000, "connections per target in the connect-churn workload")
	flag.IntVar(&o.idleN, "idle", 1000, "idle sessions in the idle-memory workload")
	flag.StringVar(&o.only, "only", "", "comma-separated workload names to run (default all)")
	flag.BoolVar(&o.baseline, "baseline", true, "also run the calibration targets go-relay and epoll-relay (plain byte relays in Go: gorelay.go, epollrelay.go) in the pgbench -S and kNN workloads")
	flag.StringVar(&o.relay, "relay", "", "internal: run as the go-relay target towards this upstream host:port")
	flag.StringVar(&o.relayAt, "relay-listen", "127.0.0.1:0", "internal: the relay target's listen address")
	flag.StringVar(&o.relayMode, "relay-mode", "go", "internal: go or epoll")
	flag.Parse()
	if o.relay != "" {
		run := runRelay
		if o.relayMode == "epoll" {
			run = runEpollRelay
		}
		if err := run(o.relayAt, o.relay); err != nil {
			fmt.Fprintln(os.Stderr, "pgwbench -relay:", err)
			os.Exit(1)
		}
		return
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "pgwbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func secret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// Machine describes where the numbers were taken.
type Machine struct {
	NProc    int    `json:"nproc"`
	CPU      string `json:"cpu"`
	MemTotal string `json:"mem_total"`
	Kernel   string `json:"kernel"`
}

func machine() Machine {
	m := Machine{NProc: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Report is bench/results/latest.json.
type Report struct {
	Started       time.Time `json:"started"`
	Elapsed       string    `json:"elapsed"`
	Machine       Machine   `json:"machine"`
	LoadAvgStart  string    `json:"load_avg_start"`
	LoadAvgEnd    string    `json:"load_avg_end"`
	DurationEach  string    `json:"duration_each"`
	Results       []Result  `json:"results"`
	Checks        []Check   `json:"checks"`
	ProfileDir    string    `json:"profile_dir,omitempty"`
	PgwardenBuild string    `json:"pgwarden_commit,omitempty"`
}

func run(ctx context.Context, o options) error {
	started := time.Now()
	rep := &Report{Started: started, Machine: machine(), LoadAvgStart: loadAvg(), DurationEach: fmt.Sprintf("%s × %d rounds", o.duration, o.rounds)}
	if o.duration < 2*time.Second {
		return fmt.Errorf("-duration must be at least 2s")
	}
	if _, err := os.Stat(o.pgwarden); err != nil {
		return fmt.Errorf("pgwarden binary %s: %w (run make build)", o.pgwarden, err)
	}
	pgwBin, _ := filepath.Abs(o.pgwarden)
	work, err := os.MkdirTemp("", "pgwbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	_ = os.Chmod(work, 0o755)

	// 1. PostgreSQL + pgvector, seeded (cached).
	logf("starting PostgreSQL 15 + pgvector (data %s)", o.dataDir)
	pg, err := pgtest.Start(ctx, o.dataDir, pgtest.Options{Settings: []string{
		"max_connections = 1300", "shared_buffers = 512MB", "work_mem = 16MB",
		"max_parallel_workers_per_gather = 0", // 2 cores: keep plans identical and stable across targets
	}})
	if err != nil {
		return err
	}
	defer pg.Stop()
	adminPW, directPW := secret(), secret()
	adminDSN, err := seed(ctx, pg, adminPW, directPW, logf)
	if err != nil {
		return err
	}
	direct := &target{Name: "direct", Host: pg.Host, Port: pg.Port, User: directUser, Password: directPW}

	// 2. OIDC issuer (in process) and the bench user's token.
	il, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	issuerURL := "http://" + il.Addr().String() + "/dev-issuer"
	iss, err := devissuer.Open(work, issuerURL)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/dev-issuer/", iss.Handler())
	isrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = isrv.Serve(il) }()
	defer isrv.Close()
	token, err := iss.Mint(benchUser, []string{"ingest"}, 2*time.Hour, "pgwarden")
	if err != nil {
		return err
	}

	// 3. pgbouncer and the two pgwardens.
	pgb, err := startPgbouncer(ctx, filepath.Join(work, "pgbouncer"), pg, directPW)
	if err != nil {
		return err
	}
	defer pgb.stop()
	profile := o.profileDir != ""
	wp := pgwardenParams{Issuer: issuerURL, AdminDSN: adminDSN, MaskKey: secret(), PGPort: pg.Port}
	pgw, err := startPgwarden(ctx, "pgwarden", pgwBin, filepath.Join(work, "pgwarden"), wp, token, profile)
	if err != nil {
		return err
	}
	defer pgw.stop()
	wp.NoMask = true
	pgwNoMask, err := startPgwarden(ctx, "pgwarden-nomask", pgwBin, filepath.Join(work, "pgwarden-nomask"), wp, token, false)
	if err != nil {
		return err
	}
	defer pgwNoMask.stop()
	if profile {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
		rep.ProfileDir = o.profileDir
	}
	logf("targets up: direct :%d, pgbouncer :%d, pgwarden :%d, pgwarden-nomask :%d; load average %s", direct.Port, pgb.Port, pgw.Port, pgwNoMask.Port, loadAvg())

	// 4. Workloads.
	scripts := filepath.Join(work, "scripts")
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		return err
	}
	knn, err := writeScript(scripts, "knn.sql", `\set r random(1, `+fmt.Sprint(numQVecs)+`)
SELECT id FROM documents ORDER BY embedding <-> (SELECT v FROM qvecs WHERE id = :r) LIMIT 10;
`)
	if err != nil {
		return err
	}
	masked, err := writeScript(scripts, "masked.sql", fmt.Sprintf(`\set c random(0, %d)
\set d random(0, %d)
SELECT id, name, email, phone, ssn, credit_card, address, notes FROM customers WHERE id > :c AND id <= :c + 1000;
SELECT id, title, body, metadata FROM documents WHERE id > :d AND id <= :d + 1000;
`, numCustomers-1000, numDocs-1000))
	if err != nil {
		return err
	}
	insArgs, err := insertScripts(scripts, 10, 20)
	if err != nil {
		return err
	}
	knnLitArgs, err := knnLiteralScripts(scripts, 10)
	if err != nil {
		return err
	}
	three := []*target{direct, pgb, pgw}
	hot := three
	if o.baseline {
		hot = []*target{direct, pgb, pgw}
		for _, mode := range []string{"go", "epoll"} {
			gr, err := startGoRelay(ctx, pg, direct, mode)
			if err != nil {
				return err
			}
			defer gr.stop()
			hot = append(hot, gr)
		}
	}
	type step struct {
		name    string
		targets []*target
		prof    bool
		run     func(t *target) (Result, error)
		rounds  int // 0: o.rounds
	}
	pb := func(w pgbenchWorkload) func(t *target) (Result, error) {
		return func(t *target) (Result, error) { return runPgbench(ctx, work, w, t, o.duration) }
	}
	steps := []step{
		{"pgbench-S-simple", three, true, pb(pgbenchWorkload{Name: "pgbench-S-simple", Clients: 8, Mode: "simple", Args: []string{"-S"}}), 0},
		{"pgbench-S-prepared", hot, true, pb(pgbenchWorkload{Name: "pgbench-S-prepared", Clients: 8, Mode: "prepared", Args: []string{"-S"}}), 0},
		{"knn", hot, true, pb(pgbenchWorkload{Name: "knn", Clients: 8, Mode: "prepared", Args: []string{"-f", knn}}), 0},
		{"knn-literal", three, true, pb(pgbenchWorkload{Name: "knn-literal", Clients: 8, Mode: "simple", Args: knnLitArgs}), 0},
		{"masked-read", []*target{direct, pgb, pgw, pgwNoMask}, true, pb(pgbenchWorkload{Name: "masked-read", Clients: 4, Mode: "prepared", Args: []string{"-f", masked}}), 0},
		{"insert-batch", three, true, pb(pgbenchWorkload{Name: "insert-batch", Clients: 4, Mode: "simple", Args: insArgs}), 0},
		{"insert-copy", three, false, func(t *target) (Result, error) { return runCopy(ctx, t, 4, 100, o.duration) }, 0},
		{"connect-churn", three, true, func(t *target) (Result, error) { return runChurn(ctx, t, o.churnN) }, 1},
		{"idle-sessions", []*target{pgb, pgw}, false, func(t *target) (Result, error) {
			var hook func()
			if profile && t == pgw {
				hook = func() {
					fetchProfile(pgw, "/debug/pprof/heap", filepath.Join(o.profileDir, "heap-idle.pprof"))
					fetchProfile(pgw, "/debug/pprof/heap?debug=1&gc=1", filepath.Join(o.profileDir, "heap-idle.txt")) // after a GC (RSS was taken before); ends with runtime.MemStats
					fetchProfile(pgw, "/debug/pprof/goroutine?debug=1", filepath.Join(o.profileDir, "goroutines-idle.txt"))
				}
			}
			return runIdle(ctx, t, o.idleN, hook)
		}, 1},
	}
	only := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			only[s] = true
		}
	}
	for i, s := range steps {
		if len(only) > 0 && !only[s.name] {
			continue
		}
		n := len(s.targets)
		rounds := s.rounds
		if rounds == 0 {
			rounds = o.rounds
		}
		// Round 0 runs the targets in rotated order (who goes first changes
		// per workload), round 1 in the reverse order, and so on: drift in
		// machine load hits every target alike.
		byTarget := map[*target][]Result{}
		for round := 0; round < rounds; round++ {
			for j := 0; j < n; j++ {
				k := j
				if round%2 == 1 {
					k = n - 1 - j
				}
				t := s.targets[(i+k)%n]
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var profDone chan struct{}
				if profile && s.prof && t == pgw && round == 0 {
					profDone = make(chan struct{})
					secs := int(o.duration.Seconds()) - 1
					go func() {
						defer close(profDone)
						fetchProfile(pgw, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), filepath.Join(o.profileDir, "cpu-"+s.name+".pprof"))
					}()
				}
				var cpu0, r0, w0, cs0 int64
				if t.PID != 0 {
					cpu0, _ = cpuTicks(t.PID)
					r0, w0, _ = syscallCounts(t.PID)
					cs0, _ = ctxSwitches(t.PID)
				}
				r, err := s.run(t)
				if t.PID != 0 && err == nil && r.N > 0 && r.Unit != "KiB/session" {
					if cpu1, err := cpuTicks(t.PID); err == nil {
						r.ProxyCPUus = float64(cpu1-cpu0) * 1e4 / float64(r.N) // ticks are 10 ms
					}
					if r1, w1, err := syscallCounts(t.PID); err == nil {
						r.ProxyReads, r.ProxyWrites = float64(r1-r0)/float64(r.N), float64(w1-w0)/float64(r.N)
					}
					if cs1, err := ctxSwitches(t.PID); err == nil {
						r.ProxyCtxSw = float64(cs1-cs0) / float64(r.N)
					}
				}
				if profDone != nil {
					<-profDone
				}
				if err != nil {
					return err
				}
				sc := ""
				if r.ProxyReads+r.ProxyWrites > 0 { // Go uses read/write; pgbouncer's recv/send are not counted in /proc/<pid>/io
					sc = fmt.Sprintf(", %.1f reads + %.1f writes/tx", r.ProxyReads, r.ProxyWrites)
				}
				if r.ProxyCtxSw > 0 {
					sc += fmt.Sprintf(", %.2f context switches/tx", r.ProxyCtxSw)
				}
				logf("%-18s %-16s %10.1f %-11s p50 %8.0f µs  p99 %8.0f µs  proxy CPU %6.1f µs/tx%s  (round %d, load %s)", r.Workload, r.Target, r.Throughput, r.Unit, r.P50us, r.P99us, r.ProxyCPUus, sc, round+1, loadAvg())
				byTarget[t] = append(byTarget[t], r)
			}
		}
		for j := 0; j < n; j++ {
			t := s.targets[(i+j)%n]
			rep.Results = append(rep.Results, merge(byTarget[t]))
		}
	}
	if profile {
		fetchProfile(pgw, "/debug/pprof/heap", filepath.Join(o.profileDir, "heap-end.pprof"))
		fetchProfile(pgw, "/debug/pprof/allocs", filepath.Join(o.profileDir, "allocs.pprof"))
	}
	rep.LoadAvgEnd = loadAvg()
	rep.Elapsed = time.Since(started).Round(time.Second).String()
	rep.Checks = checks(rep.Results)
	printTable(os.Stdout, rep)
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.out)
	}
	return nil
}

func fetchProfile(t *target, path, file string) {
	resp, err := http.Get(t.AdminURL + path)
	if err != nil {
		logf("profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		logf("profile %s: HTTP %d (is PGWARDEN_PPROF honoured by this build?)", path, resp.StatusCode)
		return
	}
	f, err := os.Create(file)
	if err != nil {
		logf("profile: %v", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

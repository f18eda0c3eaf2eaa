package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Result is one workload against one target.
type Result struct {
	Workload   string  `json:"workload"`
	Target     string  `json:"target"`
	Throughput float64 `json:"throughput"`
	Unit       string  `json:"unit"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	N          int     `json:"n"`
	Errors     int     `json:"errors,omitempty"`
	// ProxyCPUus is the CPU time (user+system) the proxy process spent per
	// transaction: far less sensitive to machine load than throughput.
	ProxyCPUus float64 `json:"proxy_cpu_us_per_tx,omitempty"`
	// ProxyReads and ProxyWrites are the proxy's read(2)/write(2)-family
	// syscalls per transaction (/proc/<pid>/io syscr, syscw).
	ProxyReads  float64 `json:"proxy_reads_per_tx,omitempty"`
	ProxyWrites float64 `json:"proxy_writes_per_tx,omitempty"`
	// ProxyCtxSw is the proxy's context switches (voluntary and involuntary,
	// all threads) per transaction: each is a thread going to sleep or
	// being put off the CPU, what a relay's wake-ups cost beyond its syscalls.
	ProxyCtxSw float64 `json:"proxy_ctxsw_per_tx,omitempty"`
	Note       string  `json:"note,omitempty"`
	Rounds     int     `json:"rounds,omitempty"`

	lat []float64 // sorted samples, for merging rounds
}

// merge combines rounds of one workload on one target: mean throughput,
// percentiles over all samples, CPU and syscalls weighted by transactions.
func merge(rs []Result) Result {
	if len(rs) == 1 {
		rs[0].Rounds = 1
		return rs[0]
	}
	out := rs[0]
	out.Throughput, out.N, out.Errors, out.ProxyCPUus, out.ProxyReads, out.ProxyWrites, out.ProxyCtxSw, out.lat = 0, 0, 0, 0, 0, 0, 0, nil
	for _, r := range rs {
		out.Throughput += r.Throughput / float64(len(rs))
		out.N += r.N
		out.Errors += r.Errors
		out.ProxyCPUus += r.ProxyCPUus * float64(r.N)
		out.ProxyReads += r.ProxyReads * float64(r.N)
		out.ProxyWrites += r.ProxyWrites * float64(r.N)
		out.ProxyCtxSw += r.ProxyCtxSw * float64(r.N)
		out.lat = append(out.lat, r.lat...)
	}
	if out.N > 0 {
		out.ProxyCPUus /= float64(out.N)
		out.ProxyReads /= float64(out.N)
		out.ProxyWrites /= float64(out.N)
		out.ProxyCtxSw /= float64(out.N)
	}
	slices.Sort(out.lat)
	out.P50us, out.P99us = percentile(out.lat, 0.5), percentile(out.lat, 0.99)
	out.Rounds = len(rs)
	return out
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func latencyResult(workload, target string, lat []float64, elapsed time.Duration, unit string, errs int) Result {
	slices.Sort(lat)
	return Result{
		Workload: workload, Target: target, Unit: unit, N: len(lat), Errors: errs,
		Throughput: float64(len(lat)) / elapsed.Seconds(),
		P50us:      percentile(lat, 0.50), P99us: percentile(lat, 0.99), lat: lat,
	}
}

// pgbenchWorkload is a pgbench run: builtin -S or custom script files.
type pgbenchWorkload struct {
	Name    string
	Clients int
	Mode    string   // simple | prepared
	Args    []string // e.g. -S, or -f file@weight
}

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// runPgbench runs w against t for d with per-transaction logging (-l) and
// returns throughput (from pgbench) and p50/p99 from the log.
func runPgbench(ctx context.Context, dir string, w pgbenchWorkload, t *target, d time.Duration) (Result, error) {
	logDir, err := os.MkdirTemp(dir, "pgbench-log-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(logDir)
	jobs := 2
	if w.Clients < jobs {
		jobs = w.Clients
	}
	args := []string{"-n", "-h", t.Host, "-p", strconv.Itoa(t.Port), "-U", t.User,
		"-c", strconv.Itoa(w.Clients), "-j", strconv.Itoa(jobs), "-T", strconv.Itoa(int(d.Seconds())),
		"-M", w.Mode, "-l", "--log-prefix", filepath.Join(logDir, "tx")}
	args = append(args, w.Args...)
	args = append(args, "vectors")
	out, err := runCmd(ctx, t.env(), pgbenchBin(), args...)
	if err != nil {
		return Result{}, fmt.Errorf("pgbench %s on %s: %v\n%s", w.Name, t.Name, err, tailStr(out, 1500))
	}
	m := tpsRE.FindStringSubmatch(out)
	if m == nil {
		return Result{}, fmt.Errorf("pgbench %s on %s: no tps in output:\n%s", w.Name, t.Name, tailStr(out, 1500))
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	var lat []float64
	files, _ := filepath.Glob(filepath.Join(logDir, "tx*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return Result{}, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// client_id transaction_no time script_no time_epoch time_us
			fs := strings.Fields(sc.Text())
			if len(fs) < 3 {
				continue
			}
			us, err := strconv.ParseFloat(fs[2], 64)
			if err != nil {
				continue // "skipped"/"failed" lines
			}
			lat = append(lat, us)
		}
	}
	slices.Sort(lat)
	errs := 0
	if m := regexp.MustCompile(`number of failed transactions: ([0-9]+)`).FindStringSubmatch(out); m != nil {
		errs, _ = strconv.Atoi(m[1])
	}
	return Result{Workload: w.Name, Target: t.Name, Throughput: tps, Unit: "tx/s", P50us: percentile(lat, 0.5), P99us: percentile(lat, 0.99), N: len(lat), Errors: errs, lat: lat}, nil
}

func connConfig(t *target) (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(t.dsn())
	if err != nil {
		return nil, err
	}
	cc.Password = t.Password
	cc.Fallbacks = nil
	return cc, nil
}

// runCopy runs `clients` goroutines each repeating COPY ingest FROM STDIN
// of rowsPerCopy rows (text format, 384-dim vectors) for d.
func runCopy(ctx context.Context, t *target, clients, rowsPerCopy int, d time.Duration) (Result, error) {
	payload := copyPayload(rowsPerCopy)
	var mu sync.Mutex
	var lat []float64
	errs := 0
	var wg sync.WaitGroup
	var firstErr error
	start := time.Now()
	deadline := start.Add(d)
	for c := 0; c < clients; c++ {
		cc, err := connConfig(t)
		if err != nil {
			return Result{}, err
		}
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			return Result{}, fmt.Errorf("copy on %s: connect: %w", t.Name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close(context.Background())
			var mine []float64
			for time.Now().Before(deadline) {
				t0 := time.Now()
				_, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(payload), "COPY ingest (title, body, metadata, embedding) FROM STDIN")
				if err != nil {
					mu.Lock()
					errs++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, float64(time.Since(t0).Microseconds()))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, fmt.Errorf("copy on %s: %w", t.Name, firstErr)
	}
	r := latencyResult("insert-copy", t.Name, lat, time.Since(start), "copy/s", errs)
	r.Note = fmt.Sprintf("%d rows per COPY, %d clients", rowsPerCopy, clients)
	return r, nil
}

func randVector(r *rand.Rand) string {
	var b strings.Builder
	b.Grow(dim * 10)
	b.WriteByte('[')
	for i := 0; i < dim; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(r.Float32()), 'f', 6, 32))
	}
	b.WriteByte(']')
	return b.String()
}

func copyPayload(rows int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "copied %d\tbody of copied row %d\t{\"source\": \"copy\", \"email\": \"c%d@example.com\"}\t%s\n", i, i, i, randVector(r))
	}
	return b.Bytes()
}

// insertScripts writes n pgbench scripts, each one multi-row INSERT of
// rows literal 384-dim embeddings (so every transaction ships its vectors).
func insertScripts(dir string, n, rows int) ([]string, error) {
	r := rand.New(rand.NewPCG(3, 4))
	var args []string
	for s := 0; s < n; s++ {
		var b strings.Builder
		b.WriteString("INSERT INTO ingest (title, body, metadata, embedding) VALUES\n")
		for i := 0; i < rows; i++ {
			if i > 0 {
				b.WriteString(",\n")
			}
			fmt.Fprintf(&b, "('batch %d/%d', 'inserted row', '{\"source\": \"insert\", \"phone\": \"+1-202-555-0100\"}', '%s')", s, i, randVector(r))
		}
		b.WriteString(";\n")
		p := filepath.Join(dir, fmt.Sprintf("insert-%d.sql", s))
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "-f", p+"@1")
	}
	return args, nil
}

func writeScript(dir, name, body string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(body), 0o644)
}

// runChurn connects, runs one query and closes, n times sequentially;
// the latency is the connect (startup + authentication) time.
func runChurn(ctx context.Context, t *target, n int) (Result, error) {
	cc, err := connConfig(t)
	if err != nil {
		return Result{}, err
	}
	lat := make([]float64, 0, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		conn, err := pgconn.ConnectConfig(ctx, &cc.Config)
		if err != nil {
			return Result{}, fmt.Errorf("churn on %s (#%d): %w", t.Name, i, err)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds()))
		if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			conn.Close(ctx)
			return Result{}, fmt.Errorf("churn on %s: query: %w", t.Name, err)
		}
		conn.Close(ctx)
	}
	r := latencyResult("connect-churn", t.Name, lat, time.Since(start), "conn/s", 0)
	r.Note = "p50/p99 = connect time; throughput = full connect+query+close cycles"
	return r, nil
}

// runIdle opens n idle connections through t and reports the proxy's
// resident memory per connection: (VmRSS after − VmRSS before) / n.
func runIdle(ctx context.Context, t *target, n int, holdHook func()) (Result, error) {
	if t.PID == 0 {
		return Result{}, fmt.Errorf("idle: %s has no process to measure", t.Name)
	}
	before, err := rssKiB(t.PID)
	if err != nil {
		return Result{}, err
	}
	cc, err := connConfig(t)
	if err != nil {
		return Result{}, err
	}
	conns := make([]*pgconn.PgConn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := pgconn.ConnectConfig(ctx, &cc.Config)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	if firstErr != nil {
		return Result{}, fmt.Errorf("idle on %s: %w", t.Name, firstErr)
	}
	time.Sleep(2 * time.Second) // let the sessions settle (buffers allocated, GC ran)
	after, err := rssKiB(t.PID)
	if err != nil {
		return Result{}, err
	}
	if holdHook != nil {
		holdHook()
	}
	perKiB := float64(after-before) / float64(n)
	return Result{
		Workload: "idle-sessions", Target: t.Name, Unit: "KiB/session", Throughput: perKiB, N: n,
		Note: fmt.Sprintf("RSS %d → %d KiB for %d idle sessions (opened in %s)", before, after, n, elapsed.Round(time.Millisecond)),
	}, nil
}

// knnLiteralScripts writes n pgbench scripts of the knn-literal workload:
// a kNN search whose 384-d query vector is inlined as a literal, the way
// psycopg2, pandas read_sql and SQLAlchemy send it. Three components come
// from \set variables (pgbench substitutes :vars inside quotes), so every
// statement text is new, as a notebook's would be.
func knnLiteralScripts(dir string, n int) ([]string, error) {
	r := rand.New(rand.NewPCG(5, 6))
	var args []string
	for s := 0; s < n; s++ {
		v := randVector(r)
		// replace the first three components by 0.:a, 0.:b, 0.:c
		rest := v[1:]
		for i := 0; i < 3; i++ {
			rest = rest[strings.IndexByte(rest, ',')+1:]
		}
		body := "\\set a random(100000, 999999)\n\\set b random(100000, 999999)\n\\set c random(100000, 999999)\n" +
			"SELECT id FROM documents ORDER BY embedding <-> '[0.:a,0.:b,0.:c," + rest + "' LIMIT 10;\n"
		p, err := writeScript(dir, fmt.Sprintf("knn-literal-%d.sql", s), body)
		if err != nil {
			return nil, err
		}
		args = append(args, "-f", p+"@1")
	}
	return args, nil
}

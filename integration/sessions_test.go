package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions"
)

// ---- helpers ----------------------------------------------------------------

// sessionOf waits (bounded) until the store under storeDir holds a session
// of user that has ended, and returns its events.
func sessionOf(t *testing.T, storeDir, user string) (string, []sessions.Event) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := sessions.OpenStore(storeDir)
		if err != nil {
			t.Fatal(err)
		}
		sums, err := st.List(sessions.Filter{User: user})
		if err != nil {
			t.Fatal(err)
		}
		if len(sums) > 1 {
			t.Fatalf("%d sessions recorded for %s, want 1", len(sums), user)
		}
		if len(sums) == 1 && !sums[0].Active {
			evs, err := st.Get(sums[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			return sums[0].ID, evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ended session of %s in the store (summaries %+v)", user, sums)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statements returns the statement events of evs.
func stmtEvents(evs []sessions.Event) []sessions.Event {
	var out []sessions.Event
	for _, e := range evs {
		if e.Type == "statement" {
			out = append(out, e)
		}
	}
	return out
}

// cell decodes one recorded cell (text, or binary as \x hex) for comparison
// with what a client received; NULL is "<null>".
func recCell(p *string) string {
	if p == nil {
		return "<null>"
	}
	if strings.HasPrefix(*p, `\x`) {
		if b, err := hex.DecodeString((*p)[2:]); err == nil {
			return string(b)
		}
	}
	return *p
}

// isInt reports whether a recorded value is n in text or binary (\x, big endian) form.
func isInt(p *string, n int64) bool {
	if p == nil {
		return false
	}
	if *p == strconv.FormatInt(n, 10) {
		return true
	}
	if !strings.HasPrefix(*p, `\x`) {
		return false
	}
	b, err := hex.DecodeString((*p)[2:])
	if err != nil {
		return false
	}
	switch len(b) {
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b))) == n
	case 8:
		return int64(binary.BigEndian.Uint64(b)) == n
	}
	return false
}

// customer is one seeded customers row as PostgreSQL holds it (raw PII).
type customer struct {
	id                           int64
	name, email, ssn, creditCard string
}

func rawCustomers(t *testing.T) []customer {
	t.Helper()
	rows, err := direct(t).Query(context.Background(), "SELECT id, name, email, ssn, credit_card FROM customers ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var out []customer
	for rows.Next() {
		var c customer
		must0(t, rows.Scan(&c.id, &c.name, &c.email, &c.ssn, &c.creditCard))
		out = append(out, c)
	}
	must0(t, rows.Err())
	if len(out) < 5 {
		t.Fatalf("only %d seeded customers", len(out))
	}
	return out
}

// assertNotInFiles fails when any needle (or its hex form, as binary
// values are recorded) occurs in any file under dir.
func assertNotInFiles(t *testing.T, dir string, what string, needles []string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // renamed away meanwhile (head.json.tmp while the gateway runs)
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if n == "" {
				continue
			}
			if bytes.Contains(b, []byte(n)) || bytes.Contains(b, []byte(hex.EncodeToString([]byte(n)))) {
				t.Errorf("%s %q found in %s", what, n, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files under %s", dir)
	}
}

var buildOnce struct {
	sync.Mutex
	path string
}

// pgwardenBinary builds cmd/pgwarden (once per test binary) and returns its path.
func pgwardenBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Lock()
	defer buildOnce.Unlock()
	if buildOnce.path != "" {
		if _, err := os.Stat(buildOnce.path); err == nil {
			return buildOnce.path
		}
	}
	// Built under the test's temp dir: each test that needs it builds (the
	// build cache makes that a link) and nothing is left behind.
	out := filepath.Join(t.TempDir(), "pgwarden")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/pgwarden")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pgwarden: %v\n%s", err, b)
	}
	buildOnce.path = out
	return out
}

// writeConfig writes cfg as the YAML file the binary reads, and checks it loads.
func writeConfig(t *testing.T, cfg *config.Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pgwarden.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(p); err != nil {
		t.Fatalf("generated config does not load: %v", err)
	}
	return p
}

// cli runs the pgwarden binary and returns stdout+stderr and the exit code.
func pgwardenCLI(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("pgwarden %v: %v", args, err)
	return "", -1
}

func freeLocalAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer is a goroutine-safe buffer (a child's stderr, a gateway log).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gwProcess is `pgwarden serve` running as a separate process.
type gwProcess struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *lockedBuffer
	gw     *gw // addresses and issuer, for connConfig/connect
}

// processConfig is baseConfig with fixed listen addresses, for a child process.
func processConfig(t *testing.T) (*config.Config, *oidcIssuer) {
	is := newIssuer(t)
	cfg := baseConfig(t, is)
	cfg.Listen, cfg.Admin.Listen = freeLocalAddr(t), freeLocalAddr(t)
	cfg.Log.Level = "info"
	return cfg, is
}

// startProcess runs `bin serve --config cfgPath` and waits for /healthz.
func startProcess(t *testing.T, bin, cfgPath string, cfg *config.Config, is *oidcIssuer) *gwProcess {
	t.Helper()
	p := &gwProcess{done: make(chan struct{}), stderr: &lockedBuffer{},
		gw: &gw{Addr: cfg.Listen, AdminURL: "http://" + cfg.Admin.Listen, Cfg: cfg, Issuer: is}}
	p.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.gw.AdminURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("pgwarden serve exited: %v\n%s", p.cmd.ProcessState, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgwarden serve not healthy within 60s\n%s", p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *gwProcess) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("pgwarden did not die on SIGKILL")
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("process ended with %v, not SIGKILL", p.cmd.ProcessState)
	}
}

// adminMetric reads one unlabelled sample from GET /metrics.
func adminMetric(t *testing.T, adminURL, name string) float64 {
	t.Helper()
	return metricVia(t, http.DefaultClient, adminURL, name)
}

// metricVia is adminMetric through client c (the chaos test's has a
// timeout, so a wedged gateway fails the test instead of hanging it).
func metricVia(t *testing.T, c *http.Client, adminURL, name string) float64 {
	t.Helper()
	resp, err := c.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return v
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}

// segments returns the segment files of a store dir.
func storeSegments(t *testing.T, storeDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(storeDir, "sessions", "*.jsonl"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments under %s: %v", storeDir, err)
	}
	sort.Strings(m)
	return m
}

func copyStoreDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// ---- the session record through the gateway -----------------------------------

const sessReadSQL = "SELECT id, name, email, ssn, credit_card FROM customers WHERE id <= $1 ORDER BY id"

// TestSessionRecordEndToEnd: searches, an insert, a denied statement and a
// masked read produce exactly those events, in order, with the identity and
// connection fields; no raw PII reaches the store (even for an unmask
// session); `sessions replay` prints the session; `sessions verify` passes
// and then catches a flipped byte, a deleted line and swapped lines.
func TestSessionRecordEndToEnd(t *testing.T) {
	w := startGateway(t, nil)
	ctx := context.Background()
	d := direct(t)
	must(d.Exec(ctx, "DROP TABLE IF EXISTS sess_items"))
	must(d.Exec(ctx, "CREATE TABLE sess_items (id serial PRIMARY KEY, note text, embedding vector(3))"))
	must(d.Exec(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON sess_items TO vector_reader, vector_writer, vector_admin"))
	must(d.Exec(ctx, "GRANT USAGE, SELECT ON SEQUENCE sess_items_id_seq TO vector_writer, vector_admin"))
	raw := rawCustomers(t)

	// --- an ingest session (masked) ---
	user := "rec-ingest@example.com"
	token := w.Issuer.token(t, user, "ingest")
	cc := w.connConfig(t, user, token)
	cc.RuntimeParams["application_name"] = "rec-e2e-app"
	conn := w.connectWith(t, cc)
	vec1 := queryVector("vector databases and approximate nearest neighbour search")
	vec2 := queryVector("customer support tickets about billing")
	got1 := ids(t, must(conn.Query(ctx, knnSQL, vec1)))
	got2 := ids(t, must(conn.Query(ctx, knnSQL, vec2)))
	if len(got1) != 5 || len(got2) != 5 {
		t.Fatalf("searches returned %v, %v", got1, got2)
	}
	tag, err := conn.Exec(ctx, "INSERT INTO sess_items (note, embedding) VALUES ($1, $2::vector)", "hello record", "[1,2,3]")
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("insert: %v %v", tag, err)
	}
	_, err = conn.Exec(ctx, "TRUNCATE sess_items")
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "pgwarden: ") {
		t.Fatalf("TRUNCATE as ingest: want pgwarden 42501, got %v", err)
	}
	clientRows := readCustomers(t, conn)
	for i, r := range clientRows {
		c := raw[i]
		if r[0] != strconv.FormatInt(c.id, 10) || r[1] == c.name || r[2] == c.email || r[3] == c.ssn || r[4] == c.creditCard {
			t.Fatalf("ingest client got unmasked row %v (raw %+v)", r, c)
		}
		if !strings.HasSuffix(r[3], c.ssn[len(c.ssn)-4:]) {
			t.Fatalf("ssn %q does not keep the last 4 of the raw value", r[3])
		}
	}
	conn.Close(ctx)

	id, evs := sessionOf(t, w.Cfg.Store.Dir, user)
	wantTypes := []string{"session_start", "statement", "statement", "statement", "statement", "statement", "session_end"}
	var gotTypes []string
	for _, e := range evs {
		gotTypes = append(gotTypes, e.Type)
	}
	if fmt.Sprint(gotTypes) != fmt.Sprint(wantTypes) {
		t.Fatalf("event types %v, want %v", gotTypes, wantTypes)
	}
	for i, e := range evs {
		if e.Session != id || e.User != user || fmt.Sprint(e.Groups) != "[ingest]" || e.Database != "vectors" ||
			e.ApplicationName != "rec-e2e-app" || !strings.HasPrefix(e.ClientAddr, "127.0.0.1:") ||
			!strings.HasPrefix(e.BackendUser, "pgw_") || e.Hash == "" {
			t.Fatalf("event %d identity fields: %+v", i, e)
		}
		if i > 0 && (e.Seq <= evs[i-1].Seq || e.Time < evs[i-1].Time) {
			t.Fatalf("event %d out of order: seq %d after %d", i, e.Seq, evs[i-1].Seq)
		}
	}
	if evs[len(evs)-1].Reason != "client_terminated" { // pgx says goodbye with Terminate
		t.Errorf("session_end reason %q, want client_terminated", evs[len(evs)-1].Reason)
	}
	st := stmtEvents(evs)
	type want struct {
		sql, action, decision string
		params                []string
		total                 int64
	}
	wants := []want{
		{knnSQL, "search", "allow", []string{vec1}, 5},
		{knnSQL, "search", "allow", []string{vec2}, 5},
		{"INSERT INTO sess_items (note, embedding) VALUES ($1, $2::vector)", "insert", "allow", []string{"hello record", "[1,2,3]"}, 1},
		{"TRUNCATE sess_items", "truncate", "deny", nil, 0},
		{sessReadSQL, "read", "allow", nil, 5},
	}
	for i, wt := range wants {
		e := st[i]
		if e.SQL != wt.sql || fmt.Sprint(e.Actions) != "["+wt.action+"]" || e.Decision != wt.decision || e.RowsTotal != wt.total {
			t.Errorf("statement %d: sql=%q actions=%v decision=%s rows_total=%d; want %q [%s] %s %d",
				i, e.SQL, e.Actions, e.Decision, e.RowsTotal, wt.sql, wt.action, wt.decision, wt.total)
		}
		if wt.params != nil {
			var ps []string
			for _, p := range e.Params {
				ps = append(ps, recCell(p))
			}
			if fmt.Sprint(ps) != fmt.Sprint(wt.params) {
				t.Errorf("statement %d params %q, want %q", i, ps, wt.params)
			}
		}
	}
	// the searches recorded the ids the client got
	for i, got := range [][]int64{got1, got2} {
		if len(st[i].Rows) != len(got) || fmt.Sprint(st[i].Columns) != "[id]" {
			t.Fatalf("search %d recorded columns %v rows %d", i, st[i].Columns, len(st[i].Rows))
		}
		for j, id := range got {
			if !isInt(st[i].Rows[j][0], id) {
				t.Errorf("search %d row %d recorded %q, client got %d", i, j, recCell(st[i].Rows[j][0]), id)
			}
		}
	}
	if e := st[3]; !strings.HasPrefix(e.Error, "pgwarden: ") || len(e.Rows) != 0 {
		t.Errorf("denied TRUNCATE recorded error %q rows %d", e.Error, len(e.Rows))
	}
	read := st[4]
	if len(read.Params) != 1 || !isInt(read.Params[0], 5) {
		t.Errorf("masked read params %v, want [5]", read.Params)
	}
	if fmt.Sprint(read.Columns) != "[id name email ssn credit_card]" || len(read.Rows) != 5 {
		t.Fatalf("masked read recorded columns %v, %d rows", read.Columns, len(read.Rows))
	}
	for i, row := range read.Rows {
		if d := rowDiff(row, clientRows[i]); d != "" {
			t.Errorf("record row %d: %s", i, d)
		}
	}

	// --- a dba session (unmask): raw for the client, masked in the record ---
	dbaUser := "rec-dba@example.com"
	dbaToken := w.Issuer.token(t, dbaUser, "dba")
	dba := w.connectWith(t, w.connConfig(t, dbaUser, dbaToken))
	dbaRows := readCustomers(t, dba)
	for i, r := range dbaRows {
		c := raw[i]
		if r[1] != c.name || r[2] != c.email || r[3] != c.ssn || r[4] != c.creditCard {
			t.Fatalf("dba client got %v, want the raw row %+v", r, c)
		}
	}
	dba.Close(ctx)
	_, devs := sessionOf(t, w.Cfg.Store.Dir, dbaUser)
	dst := stmtEvents(devs)
	if len(dst) != 1 || len(dst[0].Rows) != 5 {
		t.Fatalf("dba session recorded %d statements", len(dst))
	}
	for i, row := range dst[0].Rows {
		if d := rowDiff(row, clientRows[i]); d != "" { // the same masked values the ingest session saw
			t.Errorf("dba record row %d: %s", i, d)
		}
	}

	// --- no raw PII and no secret anywhere in the store ---
	var pii []string
	for _, c := range raw {
		pii = append(pii, c.name, c.email, c.ssn, c.creditCard)
	}
	assertNotInFiles(t, w.Cfg.Store.Dir, "raw PII", pii)
	adminPW := ""
	if u, err := pgx.ParseConfig(upstream.adminDSN); err == nil {
		adminPW = u.Password
	}
	assertNotInFiles(t, w.Cfg.Store.Dir, "secret", []string{token, dbaToken, adminPW, w.Cfg.Masking.HMACKey})

	// --- the CLI: replay and verify ---
	bin := pgwardenBinary(t)
	cfgPath := writeConfig(t, w.Cfg)
	out, code := pgwardenCLI(t, bin, "sessions", "replay", id, "--config", cfgPath)
	if code != 0 {
		t.Fatalf("replay exit %d: %s", code, out)
	}
	for _, s := range []string{knnSQL, "INSERT INTO sess_items", "TRUNCATE sess_items", "deny", sessReadSQL,
		clientRows[0][2], clientRows[4][3], "(5 rows)", user, "rec-e2e-app"} {
		if !strings.Contains(out, s) {
			t.Errorf("replay output lacks %q:\n%s", s, out)
		}
	}
	for _, c := range raw[:5] {
		if strings.Contains(out, c.email) || strings.Contains(out, c.ssn) {
			t.Errorf("replay shows raw PII %q/%q", c.email, c.ssn)
		}
	}
	out, code = pgwardenCLI(t, bin, "sessions", "verify", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("verify on the untouched store: exit %d: %s", code, out)
	}

	tampers := map[string]func(lines [][]byte) [][]byte{
		"flip one byte": func(lines [][]byte) [][]byte {
			l := lines[3]
			i := bytes.Index(l, []byte(`"duration_us":`))
			if i < 0 {
				t.Fatalf("no duration_us in %s", l)
			}
			i += len(`"duration_us":`)
			l[i] = '0' + (l[i]-'0'+1)%10 // still valid JSON: only the hash can tell
			if l[i] == '0' {
				l[i] = '2'
			}
			return lines
		},
		"delete a line": func(lines [][]byte) [][]byte {
			return append(lines[:3], lines[4:]...)
		},
		"swap two lines": func(lines [][]byte) [][]byte {
			lines[2], lines[3] = lines[3], lines[2]
			return lines
		},
	}
	for name, edit := range tampers {
		t.Run(name, func(t *testing.T) {
			dir := copyStoreDir(t, w.Cfg.Store.Dir)
			c := *w.Cfg
			c.Store.Dir = dir
			p := writeConfig(t, &c)
			if out, code := pgwardenCLI(t, bin, "sessions", "verify", "--config", p); code != 0 {
				t.Fatalf("the untouched copy does not verify: %d %s", code, out)
			}
			seg := storeSegments(t, dir)[0]
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
			if len(lines) < 6 {
				t.Fatalf("segment has %d lines", len(lines))
			}
			lines = edit(lines)
			must0(t, os.WriteFile(seg, append(bytes.Join(lines, []byte("\n")), '\n'), 0o600))
			out, code := pgwardenCLI(t, bin, "sessions", "verify", "--config", p)
			if code != 1 || !strings.Contains(out, "TAMPERED") {
				t.Fatalf("verify after %s: exit %d, want 1 with TAMPERED:\n%s", name, code, out)
			}
		})
	}
}

// readCustomers reads the first five customers (extended protocol, one parameter).
func readCustomers(t *testing.T, conn *pgx.Conn) [][]string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sessReadSQL, 5)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		var id int64
		var name, email, ssn, cc string
		must0(t, rows.Scan(&id, &name, &email, &ssn, &cc))
		out = append(out, []string{strconv.FormatInt(id, 10), name, email, ssn, cc})
	}
	must0(t, rows.Err())
	if len(out) != 5 {
		t.Fatalf("read %d customers", len(out))
	}
	return out
}

// rowDiff compares a recorded customers row with what a client got ("" if equal).
func rowDiff(rec []*string, client []string) string {
	if len(rec) != len(client) {
		return fmt.Sprintf("%d columns recorded, client got %d", len(rec), len(client))
	}
	id, _ := strconv.ParseInt(client[0], 10, 64)
	if !isInt(rec[0], id) {
		return fmt.Sprintf("id %q, client got %s", recCell(rec[0]), client[0])
	}
	for j := 1; j < len(rec); j++ {
		if recCell(rec[j]) != client[j] {
			return fmt.Sprintf("column %d recorded %q, client got %q", j, recCell(rec[j]), client[j])
		}
	}
	return ""
}

// ---- kill -9 -------------------------------------------------------------------

// TestSessionRecordingSurvivesKill9 runs pgwarden as its own process, kills
// it with SIGKILL mid-session and restarts it on the same store: every
// statement whose result the client received is in the record, the session
// is closed with reason gateway_restart, and the chain verifies.
func TestSessionRecordingSurvivesKill9(t *testing.T) {
	bin := pgwardenBinary(t)
	cfg, is := processConfig(t)
	cfgPath := writeConfig(t, cfg)
	p := startProcess(t, bin, cfgPath, cfg, is)
	ctx := context.Background()
	d := direct(t)
	must(d.Exec(ctx, "DROP TABLE IF EXISTS sess_kill"))
	must(d.Exec(ctx, "CREATE TABLE sess_kill (id int PRIMARY KEY, note text)"))
	must(d.Exec(ctx, "GRANT SELECT, INSERT ON sess_kill TO vector_reader, vector_writer, vector_admin"))

	user := "rec-kill@example.com"
	conn := p.gw.connect(t, user, "ingest")
	type done struct {
		sql   string
		first int64 // first id returned (searches), or -1
	}
	var completed []done
	for i := 1; i <= 4; i++ {
		vec := queryVector(fmt.Sprintf("kill test query %d", i))
		got, err := pgx.CollectRows(must(conn.Query(ctx, knnSQL, vec)), pgx.RowTo[int64])
		if err != nil || len(got) != 5 {
			t.Fatalf("search %d: %v %v", i, got, err)
		}
		completed = append(completed, done{knnSQL, got[0]})
		if _, err := conn.Exec(ctx, "INSERT INTO sess_kill VALUES ($1, $2)", i, "n"); err != nil {
			t.Fatal(err)
		}
		completed = append(completed, done{"INSERT INTO sess_kill VALUES ($1, $2)", -1})
	}
	// One statement in flight when the gateway dies: its result never
	// reaches the client.
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(3)")
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	p.kill9(t)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("the in-flight statement succeeded after SIGKILL")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("client not told of the dead gateway")
	}

	p2 := startProcess(t, bin, cfgPath, cfg, is)
	_, evs := sessionOf(t, cfg.Store.Dir, user)
	last := evs[len(evs)-1]
	if last.Type != "session_end" || last.Reason != "gateway_restart" {
		t.Fatalf("last event %s/%s, want session_end/gateway_restart", last.Type, last.Reason)
	}
	st := stmtEvents(evs)
	if len(st) != len(completed) {
		t.Fatalf("%d statements recorded, the client completed %d", len(st), len(completed))
	}
	for i, c := range completed {
		e := st[i]
		if e.SQL != c.sql || e.Decision != "allow" || e.Error != "" {
			t.Fatalf("statement %d recorded %q %s %q, want %q", i, e.SQL, e.Decision, e.Error, c.sql)
		}
		if c.first >= 0 && (len(e.Rows) != 5 || !isInt(e.Rows[0][0], c.first)) {
			t.Fatalf("search %d recorded rows %d, first %q; client got first id %d", i, len(e.Rows), recCell(e.Rows[0][0]), c.first)
		}
	}
	// the restarted gateway records new sessions on the same chain
	c2 := p2.gw.connect(t, "rec-after@example.com", "analyst")
	var one int
	must0(t, c2.QueryRow(ctx, "SELECT 1").Scan(&one))
	c2.Close(ctx)
	sessionOf(t, cfg.Store.Dir, "rec-after@example.com")
	out, code := pgwardenCLI(t, bin, "sessions", "verify", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("verify after kill -9 and restart: exit %d\n%s", code, out)
	}
}

// ---- fail closed / fail open ------------------------------------------------------

// TestSessionRecordingFailClosed makes the store unwritable under a running
// pgwarden process — a file size limit of 0 (RLIMIT_FSIZE via prlimit(1)),
// which fails every append with EFBIG like a full disk, and which root
// cannot bypass — then lifts it. Fail closed: statements (already prepared
// ones too) and new sessions are refused with 08001 "pgwarden: ...";
// fail_open: they run and pgwarden_recording_dropped_total counts the gap.
func TestSessionRecordingFailClosed(t *testing.T) {
	prlimit := needTool(t, "prlimit", "util-linux; it makes the store unwritable from outside as root")
	bin := pgwardenBinary(t)
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail_open=%v", failOpen), func(t *testing.T) {
			cfg, is := processConfig(t)
			cfg.Recording.FailOpen = failOpen
			// Every event in a segment of its own: the active segment is
			// written through a mapping into space allocated ahead (4 MiB),
			// which a file size limit set later does not take away; a new
			// segment's allocation is what the limit refuses (as a full
			// disk would refuse the next allocation).
			cfg.Recording.RotateBytes = 512
			cfgPath := writeConfig(t, cfg)
			p := startProcess(t, bin, cfgPath, cfg, is)
			ctx := context.Background()
			setFsize := func(limit string) {
				t.Helper()
				out, err := exec.Command(prlimit, "--pid", strconv.Itoa(p.cmd.Process.Pid), "--fsize="+limit).CombinedOutput()
				if err != nil {
					t.Fatalf("prlimit: %v %s", err, out)
				}
			}
			// user runs the statement that discovers the failure; other's
			// session is open before it and runs the statements after it.
			user, other := "rec-fail@example.com", "rec-fail-b@example.com"
			conn := p.gw.connect(t, user, "analyst")
			conn2 := p.gw.connect(t, other, "analyst")
			vec := queryVector("fail closed")
			search := func(c *pgx.Conn) error {
				rows, err := c.Query(ctx, knnSQL, vec)
				if err != nil {
					return err
				}
				n := 0
				for rows.Next() {
					n++
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return err
				}
				if n != 5 {
					return fmt.Errorf("search returned %d rows", n)
				}
				return nil
			}
			ok := map[*pgx.Conn]int{}
			for _, c := range []*pgx.Conn{conn, conn, conn2} { // prepared and cached by pgx: later runs are Bind/Execute only
				must0(t, search(c))
				ok[c]++
			}
			if v := adminMetric(t, p.gw.AdminURL, "pgwarden_recording_dropped_total"); v != 0 {
				t.Fatalf("dropped = %v before the failure", v)
			}
			// Every event rotates (rotate_bytes 512), and each rotation asks
			// the maintainer for an fsync and a head.json write soon after:
			// let those finish, or the limit below makes one of them fail
			// first and the recorder refuses the next statement (ERROR
			// 08001) before the statement's own write can fail (FATAL).
			time.Sleep(500 * time.Millisecond)
			setFsize("0:unlimited")
			if !failOpen {
				// The statement whose record cannot be written does not get
				// its ReadyForQuery: its session ends (FATAL 08001).
				err := search(conn)
				if sqlstate(err) != "08001" || !strings.Contains(err.Error(), "pgwarden: ") || !strings.Contains(err.Error(), "could not be written") {
					t.Fatalf("the statement whose record failed: want pgwarden FATAL 08001, got %v", err)
				}
				if !conn.IsClosed() {
					t.Fatal("the session whose record failed is still open")
				}
			}
			next := conn2
			if failOpen {
				next = conn
			}
			refused := 0
			for i := 0; i < 10; i++ {
				err := search(next)
				if err == nil {
					ok[next]++
					continue
				}
				if sqlstate(err) != "08001" || !strings.Contains(err.Error(), "pgwarden: ") {
					t.Fatalf("want a pgwarden 08001 refusal, got %v", err)
				}
				refused++
				time.Sleep(50 * time.Millisecond)
			}
			dropped := adminMetric(t, p.gw.AdminURL, "pgwarden_recording_dropped_total")
			if failOpen {
				if refused != 0 {
					t.Fatalf("fail_open: %d statements refused", refused)
				}
				if dropped < 10 {
					t.Fatalf("fail_open: dropped = %v after 10 unrecorded statements", dropped)
				}
			} else {
				if refused != 10 {
					t.Fatalf("fail closed: only %d of 10 statements refused on an unwritable store", refused)
				}
				if dropped < 1 {
					t.Fatalf("fail closed: dropped = %v", dropped)
				}
				if h := adminMetric(t, p.gw.AdminURL, "pgwarden_recording_healthy"); h != 0 {
					t.Fatalf("recording_healthy = %v on an unwritable store", h)
				}
				// simple protocol, and a new session, are refused too
				_, err := conn2.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
				if sqlstate(err) != "08001" {
					t.Fatalf("simple query on an unwritable store: %v", err)
				}
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err = pgx.ConnectConfig(cctx, p.gw.connConfig(t, "rec-fail-2@example.com", is.token(t, "rec-fail-2@example.com", "analyst")))
				cancel()
				if sqlstate(err) != "08001" || !strings.Contains(err.Error(), "pgwarden: ") {
					t.Fatalf("new session on an unwritable store: want pgwarden 08001, got %v", err)
				}
			}
			// the store becomes writable again: statements run and are recorded
			setFsize("unlimited:unlimited")
			deadline := time.Now().Add(10 * time.Second)
			for search(next) != nil {
				if time.Now().After(deadline) {
					t.Fatal("statements still refused 10s after the store became writable")
				}
				time.Sleep(100 * time.Millisecond)
			}
			ok[next]++
			conn.Close(ctx)
			conn2.Close(ctx)
			gap := 0
			for c, u := range map[*pgx.Conn]string{conn: user, conn2: other} {
				var evs []sessions.Event
				if u == user && !failOpen {
					// its session_end could not be written (the store was
					// unwritable when the session ended): read it as it is
					st, err := sessions.OpenStore(cfg.Store.Dir)
					must0(t, err)
					sums, err := st.List(sessions.Filter{User: u})
					if err != nil || len(sums) != 1 {
						t.Fatalf("sessions of %s: %+v, %v", u, sums, err)
					}
					evs, err = st.Get(sums[0].ID)
					must0(t, err)
				} else {
					_, evs = sessionOf(t, cfg.Store.Dir, u)
				}
				rec := 0
				for _, e := range stmtEvents(evs) {
					if e.SQL == knnSQL && e.Decision == "allow" && e.Error == "" {
						rec++
					}
				}
				if ok[c] < rec {
					t.Fatalf("%s: client ran %d searches, %d recorded", u, ok[c], rec)
				}
				gap += ok[c] - rec
			}
			if float64(gap) > dropped {
				t.Fatalf("%d searches unrecorded, dropped metric %v", gap, dropped)
			}
			if !failOpen && gap != 0 {
				t.Fatalf("fail closed: %d statements ran unrecorded", gap)
			}
			out, code := pgwardenCLI(t, bin, "sessions", "verify", "--config", cfgPath)
			if code != 0 {
				t.Fatalf("verify after the outage: exit %d\n%s", code, out)
			}
		})
	}
}

// ---- webhook sink -------------------------------------------------------------

// TestSessionRecordingWebhookSink: a SIEM endpoint that fails its first
// requests still receives every event of the store, at least once, never
// one seq with two hashes, and a retried batch is byte-identical under the
// same Idempotency-Key.
func TestSessionRecordingWebhookSink(t *testing.T) {
	const failFirst = 3
	var (
		mu       sync.Mutex
		requests int
		byKey    = map[string][]byte{}
		got      = map[int64]string{}
		problems []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Header.Get("Idempotency-Key")
		mu.Lock()
		defer mu.Unlock()
		requests++
		if prev, ok := byKey[key]; ok && !bytes.Equal(prev, body) {
			problems = append(problems, "a batch with key "+key+" was re-sent with a different body")
		}
		byKey[key] = body
		if requests <= failFirst {
			http.Error(w, "SIEM down", http.StatusServiceUnavailable)
			return
		}
		var evs []sessions.Event
		if err := json.Unmarshal(body, &evs); err != nil || len(evs) == 0 {
			problems = append(problems, fmt.Sprintf("undecodable batch: %v", err))
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		if evs[0].Hash != key {
			problems = append(problems, "Idempotency-Key is not the first event's hash")
		}
		for _, e := range evs {
			if h, ok := got[e.Seq]; ok && h != e.Hash {
				problems = append(problems, fmt.Sprintf("seq %d delivered with hashes %s and %s", e.Seq, h, e.Hash))
			}
			got[e.Seq] = e.Hash
		}
	}))
	t.Cleanup(srv.Close)
	w := startGateway(t, func(c *config.Config) {
		c.Recording.Sinks = []config.Sink{{Type: "webhook", URL: srv.URL + "/siem", Format: "jsonl"}}
	})
	ctx := context.Background()
	for _, u := range []string{"rec-hook-1@example.com", "rec-hook-2@example.com"} {
		conn := w.connect(t, u, "analyst")
		for i := 0; i < 3; i++ {
			ids(t, must(conn.Query(ctx, knnSQL, queryVector(fmt.Sprint("webhook ", i)))))
		}
		_, _ = conn.Exec(ctx, "DELETE FROM documents") // denied: recorded too
		conn.Close(ctx)
		sessionOf(t, w.Cfg.Store.Dir, u)
	}
	// every stored event, delivered with its stored hash
	st, err := sessions.OpenStore(w.Cfg.Store.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	must0(t, st.Export(&buf, time.Time{}, "jsonl"))
	want := map[int64]string{}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var e sessions.Event
		must0(t, json.Unmarshal(line, &e))
		want[e.Seq] = e.Hash
	}
	if len(want) < 12 {
		t.Fatalf("store holds %d events", len(want))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for seq, h := range want {
			if got[seq] != h {
				missing++
			}
		}
		n, probs := requests, append([]string(nil), problems...)
		mu.Unlock()
		if len(probs) > 0 {
			t.Fatalf("webhook: %v", probs)
		}
		if missing == 0 {
			if n <= failFirst {
				t.Fatalf("only %d requests: the failures were not exercised", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never delivered (%d requests)", missing, len(want), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if f := adminMetric(t, w.AdminURL, "pgwarden_recording_webhook_failures_total"); f < failFirst {
		t.Fatalf("webhook failures metric %v, want >= %d", f, failFirst)
	}
}

// A binary cursor fetched with a simple Query: the RowDescription says
// binary, and the record says so too (\x hex), as for a Bind that asked
// for binary results.
func TestSessionRecordBinaryCursor(t *testing.T) {
	// no masking: the record holds the values as the server sent them
	w := startGateway(t, func(c *config.Config) { c.Masking.Rules, c.Masking.Detectors = nil, nil })
	ctx := context.Background()
	user := "rec-bincursor@example.com"
	conn := w.connectMode(t, pgx.QueryExecModeSimpleProtocol, user, "analyst")
	res, err := conn.PgConn().Exec(ctx, "BEGIN; DECLARE c BINARY CURSOR FOR SELECT 258::int4 AS n, 'ab'::text AS s; FETCH ALL FROM c; COMMIT").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || len(res[2].Rows) != 1 || string(res[2].Rows[0][0]) != "\x00\x00\x01\x02" {
		for i, r := range res {
			t.Logf("result %d: %s %q %v", i, r.CommandTag, r.Rows, r.Err)
		}
		t.Fatal("unexpected results")
	}
	conn.Close(ctx)
	_, evs := sessionOf(t, w.Cfg.Store.Dir, user)
	for _, e := range stmtEvents(evs) {
		if e.SQL != "FETCH ALL FROM c" {
			continue
		}
		if len(e.Rows) != 1 || len(e.Rows[0]) != 2 || e.Rows[0][0] == nil || *e.Rows[0][0] != `\x00000102` || *e.Rows[0][1] != `\x6162` {
			var got []string
			for _, v := range e.Rows[0] {
				if v != nil {
					got = append(got, *v)
				}
			}
			t.Fatalf("recorded FETCH row %q", got)
		}
		return
	}
	t.Fatalf("no FETCH statement recorded: %+v", stmtEvents(evs))
}

package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/pgtest"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
	"github.com/pgwarden/pgwarden/sessions"
)

// haproxy runs the Debian HAProxy in TCP mode in front of the gateways'
// Postgres listeners, health-checking each gateway's /readyz.
func startHAProxy(t *testing.T, gws []*gwProcess) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("haproxy is not installed (make setup installs it)")
		}
		t.Skip("haproxy is not installed")
	}
	front := freeLocalAddr(t)
	var b strings.Builder
	fmt.Fprintf(&b, "global\n  maxconn 200\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n")
	fmt.Fprintf(&b, "frontend pg\n  bind %s\n  default_backend gateways\n", front)
	fmt.Fprintf(&b, "backend gateways\n  balance roundrobin\n  option httpchk GET /readyz\n")
	for i, g := range gws {
		_, adminPort, _ := net.SplitHostPort(strings.TrimPrefix(g.gw.AdminURL, "http://"))
		fmt.Fprintf(&b, "  server gw%d %s check port %s inter 500ms fall 2 rise 1\n", i, g.gw.Addr, adminPort)
	}
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", front, time.Second); err == nil {
			c.Close()
			return front
		}
		select {
		case <-done:
			t.Fatalf("haproxy exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not listening within 20s: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storeDSN creates a fresh database for the shared store on the test server.
func storeDSN(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	d := direct(t)
	_, _ = d.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if _, err := d.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), upstream.pg.SuperDSN("postgres")); err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	return upstream.pg.SuperDSN(name)
}

func readyAll(t *testing.T, gws []*gwProcess) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, g := range gws {
		for {
			resp, err := http.Get(g.gw.AdminURL + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway %s not ready: %v\n%s", g.gw.Addr, err, g.stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// rawCancel sends a CancelRequest for (pid, key) to addr.
func rawCancel(t *testing.T, addr string, pid uint32, key []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 16)
	binary.BigEndian.PutUint32(msg[0:], 16)
	binary.BigEndian.PutUint32(msg[4:], 80877102)
	binary.BigEndian.PutUint32(msg[8:], pid)
	copy(msg[12:], key)
	_, _ = c.Write(msg)
	c.Close()
}

// TestClusterThreeGatewaysBehindHAProxy: three `pgwarden serve` processes
// on one shared store behind a real HAProxy; clients connect through
// HAProxy. A statement held on one gateway is approved on another and runs
// once within a second; two approvers deciding at once on two gateways:
// one wins, the other gets 409; a CancelRequest sent to a gateway that does
// not hold the session cancels it; a gateway killed with kill -9 mid-hold
// is found dead by the others, which expire its request and end its
// session (gateway_lost); every gateway's records verify from any of them.
func TestClusterThreeGatewaysBehindHAProxy(t *testing.T) {
	bin := pgwardenBinary(t)
	is := newIssuer(t)
	dsn := storeDSN(t, "pgw_cluster_store")
	var gws []*gwProcess
	var cfgPaths []string
	for _, id := range []string{"gw-a", "gw-b", "gw-c"} {
		cfg := baseConfig(t, is)
		cfg.Listen, cfg.Admin.Listen = freeLocalAddr(t), freeLocalAddr(t)
		cfg.Log.Level = "info"
		cfg.Store.DSN = dsn
		cfg.Cluster.GatewayID = id
		cfg.Cluster.DeadAfter = 3 * time.Second
		p := writeConfig(t, cfg)
		cfgPaths = append(cfgPaths, p)
		gws = append(gws, startProcess(t, bin, p, cfg, is))
	}
	readyAll(t, gws)
	front := startHAProxy(t, gws)
	lb := &gw{Addr: front, Issuer: is}
	byID := map[string]*gwProcess{"gw-a": gws[0], "gw-b": gws[1], "gw-c": gws[2]}
	other := func(id string) *gwProcess { // a live gateway that is not id
		for _, k := range []string{"gw-a", "gw-b", "gw-c"} {
			if k != id && byID[k] != nil {
				return byID[k]
			}
		}
		t.Fatal("no other gateway")
		return nil
	}
	simple := pgx.QueryExecModeSimpleProtocol
	ctx := context.Background()

	// 1. Hold on one gateway, approve on another: runs once, within 1 s.
	approvalTable(t, "cl_hold", 30)
	conn, notices := dbaConn(t, lb, requester, simple)
	id, res := startHeld(t, ctx, conn, notices, "DELETE FROM cl_hold")
	a := getApproval(t, gws[0].gw, id) // any gateway reads every request
	holder := a.Gateway
	if byID[holder] == nil {
		t.Fatalf("request held on %q, not one of the gateways", holder)
	}
	decider := other(holder)
	start := time.Now()
	if code, msg := postDecision(t, decider.gw, decider.gw.Issuer.token(t, approver, "dba"), id); code != http.StatusOK {
		t.Fatalf("approve on another gateway: %d %s", code, msg)
	}
	r := await(t, res, 10*time.Second)
	if r.err != nil || r.tag.RowsAffected() != 30 {
		t.Fatalf("held DELETE after approve: %v %v", r.tag, r.err)
	}
	if d := r.at.Sub(start); d > time.Second {
		t.Fatalf("the held statement ran %v after the approve on another gateway, want < 1s", d)
	}
	if n := countRows(t, "cl_hold"); n != 0 {
		t.Fatalf("%d rows left", n)
	}
	if got := getApproval(t, decider.gw, id); got.State != approvals.Executed {
		t.Fatalf("state after the run: %s", got.State)
	}

	// 2. Two approvers on two gateways at once: exactly one wins.
	approvalTable(t, "cl_race", 20)
	conn2, notices2 := dbaConn(t, lb, requester, simple)
	id2, res2 := startHeld(t, ctx, conn2, notices2, "DELETE FROM cl_race")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, g := range []*gwProcess{gws[1], gws[2]} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := []string{approver, "dba-3@example.com"}[i]
			codes[i], _ = postDecision(t, g.gw, g.gw.Issuer.token(t, user, "dba"), id2)
		}()
	}
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
		t.Fatalf("concurrent approves on two gateways: %v, want one 200 and one 409", codes)
	}
	if r := await(t, res2, 10*time.Second); r.err != nil || r.tag.RowsAffected() != 20 {
		t.Fatalf("raced DELETE: %v %v", r.tag, r.err)
	}

	// 3. A CancelRequest sent to a gateway that does not hold the session.
	sleeper := lb.connect(t, "alice@example.com", "analyst")
	pid, key := sleeper.PgConn().PID(), sleeper.PgConn().SecretKey()
	var sgw string
	sdb, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close(ctx)
	if err := sdb.QueryRow(ctx, `SELECT gateway FROM pgwarden.cancel_routes WHERE pid = $1`, int64(pid)).Scan(&sgw); err != nil {
		t.Fatalf("no cancel route for the session: %v", err)
	}
	errc := make(chan error, 1)
	go func() { _, err := sleeper.Exec(ctx, "SELECT pg_sleep(30)"); errc <- err }()
	time.Sleep(300 * time.Millisecond)
	rawCancel(t, other(sgw).gw.Addr, pid, key)
	select {
	case err := <-errc:
		if sqlstate(err) != "57014" {
			t.Fatalf("cancel via another gateway: want 57014, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancel sent to another gateway did not reach the session")
	}

	// 4. kill -9 the gateway holding a statement.
	approvalTable(t, "cl_kill", 20)
	c3, n3 := dbaConn(t, lb, "dba-kill@example.com", simple)
	id3, _ := startHeld(t, ctx, c3, n3, "DELETE FROM cl_kill")
	held := getApproval(t, gws[0].gw, id3)
	victimID := held.Gateway
	byID[victimID].kill9(t)
	byID[victimID] = nil
	live := other(victimID)
	deadline := time.Now().Add(15 * time.Second)
	for {
		a := getApproval(t, live.gw, id3)
		if a.State == approvals.Expired && a.Note == approvals.GatewayLostNote {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead gateway's request is still %s %q", a.State, a.Note)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := countRows(t, "cl_kill"); n != 20 {
		t.Fatalf("the dead gateway's held DELETE ran: %d rows left", n)
	}
	// Its session is closed in the record by the gateway that found it dead,
	// and what it recorded before dying is there.
	db, err := sharedstore.Open(ctx, dsn, "cluster-test", false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := sessions.OpenSharedStore(db).Get(held.Session)
	if err != nil {
		t.Fatal(err)
	}
	first, last := evs[0], evs[len(evs)-1]
	if first.Type != sessions.TypeSessionStart || first.Gateway != victimID {
		t.Fatalf("first event of the dead gateway's session: %s on %q", first.Type, first.Gateway)
	}
	if last.Type != sessions.TypeSessionEnd || last.Reason != sessions.ReasonGatewayLost || last.Gateway == victimID {
		t.Fatalf("last event: %s %q by %q, want session_end gateway_lost by a live gateway", last.Type, last.Reason, last.Gateway)
	}
	sawHold := false
	for _, ev := range evs {
		sawHold = sawHold || (ev.Type == sessions.TypeApproval && ev.ApprovalID == id3)
	}
	if !sawHold {
		t.Fatal("the hold the dead gateway recorded is missing")
	}
	// Every gateway's chain verifies, read through any gateway's config.
	for i, p := range cfgPaths {
		out, code := pgwardenCLI(t, bin, "sessions", "verify", "--config", p)
		if code != 0 || !strings.Contains(out, "3 gateway chains") {
			t.Fatalf("sessions verify with gateway %d's config: exit %d\n%s", i, code, out)
		}
	}
}

// TestSharedStoreOutageFailsClosed: the shared store stopped under a
// running gateway — statements are refused with 08001 (nothing runs
// unrecorded) — and once it is back the gateway records and serves again
// by itself.
func TestSharedStoreOutageFailsClosed(t *testing.T) {
	store := pgtest.StartT(t, pgtest.Options{})
	ctx := context.Background()
	if err := store.CreateDB(ctx, "pgwstore"); err != nil {
		t.Fatal(err)
	}
	w := startGateway(t, func(c *config.Config) {
		c.Store.DSN = store.SuperDSN("pgwstore")
		c.Cluster.GatewayID = "gw-outage"
	})
	conn := w.connect(t, "alice@example.com", "analyst")
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	store.Stop()
	_, err := conn.Exec(ctx, "SELECT 2")
	if sqlstate(err) != "08001" || !strings.Contains(err.Error(), "pgwarden: ") {
		t.Fatalf("a statement with the store down: want pgwarden 08001, got %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := store.Restart(rctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := pgx.ConnectConfig(ctx, w.connConfig(t, "alice@example.com", w.Issuer.token(t, "alice@example.com", "analyst")))
		if err == nil {
			_, err = c.Exec(ctx, "SELECT 3")
			c.Close(ctx)
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not recover after the store came back: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	db, err := sharedstore.Open(ctx, store.SuperDSN("pgwstore"), "test", false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out strings.Builder
	if ok, p, err := sessions.OpenSharedStore(db).Verify(&out); err != nil || !ok {
		t.Fatalf("verify after the outage: %v %v %s", p, err, out.String())
	}
	// SELECT 2 was refused, not run: it is not in the record as allowed.
	var ran int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pgwarden.events WHERE line LIKE '%"sql":"SELECT 2"%' AND line LIKE '%"decision":"allow"%'`).Scan(&ran); err != nil || ran != 0 {
		t.Fatalf("SELECT 2 recorded as allowed %d times (%v)", ran, err)
	}
}

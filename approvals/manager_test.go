package approvals_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	. "github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/boltstore"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

var (
	dba1    = identity.Principal{User: "dba-1", Groups: []string{"dba"}}
	dba2    = identity.Principal{User: "dba-2", Groups: []string{"dba"}}
	analyst = identity.Principal{User: "ann", Groups: []string{"analyst"}}
)

type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *events) types(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		if ev.Approval.ID == id {
			out = append(out, ev.Type)
		}
	}
	return out
}

func testCfg(mode string) config.Approval {
	c := config.Default().Policy.Approval
	c.Approvers = []string{"dba"}
	c.Mode = mode
	c.Timeout = 5 * time.Second
	return c
}

type fixture struct {
	m   *Manager
	s   *boltstore.Store
	dir string
	ev  *events
}

func newFixture(t *testing.T, cfg config.Approval, opts ...Option) *fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	m := New(cfg, s, zerolog.Nop(), append([]Option{WithObserver(ev.add)}, opts...)...)
	t.Cleanup(func() { m.Close(); s.Close() })
	return &fixture{m: m, s: s, dir: dir, ev: ev}
}

func req(user, session, sql string, params ...string) Request {
	return Request{Requester: user, Groups: []string{"dba"}, Session: session, Database: "vectors",
		SQL: sql, Params: params, Action: "bulk_delete", EstimateRows: 5000, Reason: "ticket OPS-1"}
}

func hold(t *testing.T, m *Manager, r Request) *Approval {
	t.Helper()
	a, err := m.Hold(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestHoldFieldsAndID(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents", "x"))
	if !ValidID(a.ID) {
		t.Fatalf("id %q is not 16 chars of lowercase base32", a.ID)
	}
	b := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
	if a.ID == b.ID {
		t.Fatal("two holds got the same id")
	}
	got, err := f.m.Get(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Pending || got.Requester != "dba-1" || got.SQL != "DELETE FROM documents" || got.Database != "vectors" ||
		got.Action != "bulk_delete" || got.EstimateRows != 5000 || got.Reason != "ticket OPS-1" || got.Session != "s1" ||
		len(got.Params) != 1 || got.Params[0] != "x" || got.Mode != ModeWait {
		t.Fatalf("stored request differs: %+v", got)
	}
	if d := got.ExpiresAt.Sub(got.CreatedAt); d != 5*time.Second {
		t.Fatalf("expires_at - created_at = %s, want 5s", d)
	}
	// The API JSON has every SPEC field.
	raw, _ := json.Marshal(got)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	for _, k := range []string{"id", "state", "requester", "groups", "session", "database", "sql", "params", "action", "estimate_rows", "reason", "created_at", "expires_at", "decided_by", "decided_at", "comment"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, raw)
		}
	}
	if got := f.ev.types(a.ID); len(got) != 1 || got[0] != "hold" {
		t.Fatalf("events %v, want [hold]", got)
	}
}

func TestStoreReopenExpiresPendingAndUnrunWaitApprovals(t *testing.T) {
	dir := t.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	wait := New(testCfg(ModeWait), s, zerolog.Nop())
	retry := New(testCfg(ModeRetry), s, zerolog.Nop())
	ctx := context.Background()
	pending := hold(t, wait, req("dba-1", "s1", "DELETE FROM documents"))
	approvedWait := hold(t, wait, req("dba-1", "s1", "TRUNCATE documents"))
	if _, err := wait.Approve(ctx, approvedWait.ID, dba2, "ok"); err != nil {
		t.Fatal(err)
	}
	approvedRetry := hold(t, retry, req("dba-1", "s2", "DROP TABLE t"))
	if _, err := retry.Approve(ctx, approvedRetry.ID, dba2, "ok"); err != nil {
		t.Fatal(err)
	}
	denied := hold(t, wait, req("dba-1", "s1", "DROP TABLE u"))
	if _, err := wait.Deny(ctx, denied.ID, dba2, "no"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := len(s2.ExpiredAtOpen()); n != 2 {
		t.Fatalf("expired at open: %d, want 2", n)
	}
	m := New(testCfg(ModeRetry), s2, zerolog.Nop())
	want := map[string]State{pending.ID: Expired, approvedWait.ID: Expired, approvedRetry.ID: Approved, denied.ID: Denied}
	for id, st := range want {
		a, err := m.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.State != st {
			t.Errorf("%s: state %s after restart, want %s", id, a.State, st)
		}
		if st == Expired && a.Note != RestartNote {
			t.Errorf("%s: note %q", id, a.Note)
		}
	}
	if err := m.MarkExecuted(approvedWait.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("MarkExecuted of a restart-expired request: %v, want ErrConflict", err)
	}
	if _, err := m.Approve(ctx, pending.ID, dba2, ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("approving a restart-expired request: %v, want ErrConflict", err)
	}
	// The retry approval survived the restart and runs once.
	if _, ok := m.Claim("dba-1", "vectors", "DROP TABLE t", nil); !ok {
		t.Fatal("retry approval did not survive restart")
	}
	if _, ok := m.Claim("dba-1", "vectors", "DROP TABLE t", nil); ok {
		t.Fatal("claimed twice")
	}
	list, err := m.List(ctx, Expired, 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("List(expired) = %d, %v; want 2", len(list), err)
	}
}

func TestStoreLockedByAnotherOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := boltstore.Open(dir); err == nil {
		t.Fatal("second Open of the same dir succeeded")
	}
}

func TestFourEyesAndApproverGroups(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	ctx := context.Background()
	a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))

	_, err := f.m.Approve(ctx, a.ID, dba1, "me")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "four eyes") {
		t.Fatalf("own approve: %v, want ErrForbidden mentioning four eyes", err)
	}
	if _, err := f.m.Deny(ctx, a.ID, dba1, "me"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("own deny: %v", err)
	}
	_, err = f.m.Approve(ctx, a.ID, analyst, "")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "approver group") {
		t.Fatalf("non-approver: %v", err)
	}
	if _, err := f.m.Approve(ctx, "aaaaaaaaaaaaaaaa", dba2, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := f.m.Approve(ctx, "../../etc", dba2, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("malformed id: %v", err)
	}
	got, _ := f.m.Get(ctx, a.ID)
	if got.State != Pending {
		t.Fatalf("refused decisions changed the state to %s", got.State)
	}
	ok, err := f.m.Approve(ctx, a.ID, dba2, "looks right")
	if err != nil {
		t.Fatal(err)
	}
	if ok.State != Approved || ok.DecidedBy != "dba-2" || ok.Comment != "looks right" || ok.DecidedAt == nil {
		t.Fatalf("decision not recorded: %+v", ok)
	}
	// 409 on a second decision, either kind.
	if _, err := f.m.Approve(ctx, a.ID, dba2, ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already approved") {
		t.Fatalf("second approve: %v", err)
	}
	if _, err := f.m.Deny(ctx, a.ID, dba2, "late"); !errors.Is(err, ErrConflict) {
		t.Fatalf("deny after approve: %v", err)
	}

	// No approver groups configured: nobody may decide (fail closed).
	cfg := testCfg(ModeWait)
	cfg.Approvers = nil
	g := newFixture(t, cfg)
	b := hold(t, g.m, req("dba-1", "s1", "DELETE FROM documents"))
	if _, err := g.m.Approve(ctx, b.ID, dba2, ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("no approver groups: %v, want ErrForbidden", err)
	}
}

func TestDenyNeedsReason(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
	if _, err := f.m.Deny(context.Background(), a.ID, dba2, "  "); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deny without reason: %v", err)
	}
	d, err := f.m.Deny(context.Background(), a.ID, dba2, "not during business hours")
	if err != nil || d.State != Denied || d.Comment != "not during business hours" {
		t.Fatalf("deny: %+v %v", d, err)
	}
}

func TestRequireReason(t *testing.T) {
	cfg := testCfg(ModeWait)
	cfg.RequireReason = true
	f := newFixture(t, cfg)
	r := req("dba-1", "s1", "DELETE FROM documents")
	r.Reason = " "
	_, err := f.m.Hold(context.Background(), r)
	pe, ok := pgerr.As(err)
	if !ok || pe.Code != pgerr.InsufficientPrivilege || !strings.Contains(pe.Message, "SET pgwarden.reason") || !errors.Is(err, ErrReasonRequired) {
		t.Fatalf("hold without reason: %v", err)
	}
	list, _ := f.m.List(context.Background(), "", 0)
	if len(list) != 0 {
		t.Fatalf("a refused hold was stored: %d", len(list))
	}
	r.Reason = "ticket OPS-123: purge test docs"
	if _, err := f.m.Hold(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestMarkExecutedExactlyOnce(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
	if err := f.m.MarkExecuted(a.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("MarkExecuted of a pending request: %v", err)
	}
	if _, err := f.m.Approve(context.Background(), a.ID, dba2, ""); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.m.MarkExecuted(a.ID) == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d callers executed, want exactly 1", wins.Load())
	}
	got, _ := f.m.Get(context.Background(), a.ID)
	if got.State != Executed || got.ExecutedAt == nil {
		t.Fatalf("state %s", got.State)
	}
	if ev := f.ev.types(a.ID); strings.Join(ev, ",") != "hold,approved,executed" {
		t.Fatalf("events %v", ev)
	}
}

func TestWaitOutcomes(t *testing.T) {
	ctx := context.Background()
	t.Run("approve", func(t *testing.T) {
		f := newFixture(t, testCfg(ModeWait))
		a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
		go func() {
			time.Sleep(20 * time.Millisecond)
			_, _ = f.m.Approve(ctx, a.ID, dba2, "")
		}()
		o, err := f.m.Wait(ctx, a.ID)
		if err != nil || o.State != Approved || o.Err() != nil {
			t.Fatalf("outcome %+v %v", o, err)
		}
		if err := f.m.MarkExecuted(a.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("deny", func(t *testing.T) {
		f := newFixture(t, testCfg(ModeWait))
		a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
		go func() {
			time.Sleep(20 * time.Millisecond)
			_, _ = f.m.Deny(ctx, a.ID, dba2, "use a WHERE")
		}()
		o, err := f.m.Wait(ctx, a.ID)
		if err != nil || o.State != Denied {
			t.Fatalf("outcome %+v %v", o, err)
		}
		e := o.Err()
		if e == nil || e.Code != pgerr.QueryCanceled || e.Message != "pgwarden: approval "+a.ID+" denied by dba-2: use a WHERE" {
			t.Fatalf("client error %+v", e)
		}
		if err := f.m.MarkExecuted(a.ID); err == nil {
			t.Fatal("a denied request was marked executed")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		cfg := testCfg(ModeWait)
		cfg.Timeout = 80 * time.Millisecond
		f := newFixture(t, cfg)
		a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
		start := time.Now()
		o, err := f.m.Wait(ctx, a.ID)
		if err != nil || o.State != Expired || o.Err().Code != pgerr.QueryCanceled ||
			o.Err().Message != "pgwarden: approval "+a.ID+" expired: not decided within 80ms" {
			t.Fatalf("outcome %+v %v", o, err)
		}
		if el := time.Since(start); el < 60*time.Millisecond || el > 3*time.Second {
			t.Fatalf("timeout after %s, want about 80ms", el)
		}
		if _, err := f.m.Approve(ctx, a.ID, dba2, ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("approve after timeout: %v", err)
		}
	})
	t.Run("cancel withdraws", func(t *testing.T) {
		f := newFixture(t, testCfg(ModeWait))
		a := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancel)
		o, err := f.m.Wait(cctx, a.ID)
		if err != nil || o.State != Withdrawn || o.Err() == nil || o.Err().Code != pgerr.QueryCanceled ||
			o.Err().Message != "pgwarden: approval "+a.ID+" withdrawn: the client cancelled the statement" {
			t.Fatalf("outcome %+v %v", o, err)
		}
		if _, err := f.m.Approve(ctx, a.ID, dba2, ""); !errors.Is(err, ErrConflict) {
			t.Fatalf("approve after withdrawal: %v", err)
		}
		if ev := f.ev.types(a.ID); strings.Join(ev, ",") != "hold,withdrawn" {
			t.Fatalf("events %v", ev)
		}
	})
}

// A held request never blocks others: while one Wait is pending, other
// sessions hold, get decided and finish.
func TestHeldRequestDoesNotBlockOthers(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	ctx := context.Background()
	blocked := hold(t, f.m, req("dba-1", "s-blocked", "DELETE FROM documents"))
	blockedDone := make(chan Outcome, 1)
	go func() {
		o, _ := f.m.Wait(ctx, blocked.ID)
		blockedDone <- o
	}()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a, err := f.m.Hold(ctx, req("dba-1", "s-other", "TRUNCATE t"))
			if err != nil {
				errs <- err
				return
			}
			go func() { _, _ = f.m.Approve(ctx, a.ID, dba2, "") }()
			o, err := f.m.Wait(ctx, a.ID)
			if err != nil || o.State != Approved {
				errs <- errors.New("other request not approved: " + string(o.State))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("other requests took %s while one was held", el)
	}
	select {
	case o := <-blockedDone:
		t.Fatalf("the held request finished early: %s", o.State)
	default:
	}
	if _, err := f.m.Deny(ctx, blocked.ID, dba2, "done"); err != nil {
		t.Fatal(err)
	}
	if o := <-blockedDone; o.State != Denied {
		t.Fatalf("held request ended %s", o.State)
	}
}

func TestSessionEnded(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait))
	ctx := context.Background()
	p := hold(t, f.m, req("dba-1", "s1", "DELETE FROM documents"))
	ap := hold(t, f.m, req("dba-1", "s1", "TRUNCATE documents"))
	other := hold(t, f.m, req("dba-1", "s2", "TRUNCATE other"))
	if _, err := f.m.Approve(ctx, ap.ID, dba2, ""); err != nil {
		t.Fatal(err)
	}
	f.m.SessionEnded("s1")
	for _, id := range []string{p.ID, ap.ID} {
		a, _ := f.m.Get(ctx, id)
		if a.State != Expired || !strings.Contains(a.Note, "session") {
			t.Fatalf("%s: %s %q after session end", id, a.State, a.Note)
		}
	}
	if err := f.m.MarkExecuted(ap.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("approved request ran after its session ended: %v", err)
	}
	if a, _ := f.m.Get(ctx, other.ID); a.State != Pending {
		t.Fatalf("another session's request changed: %s", a.State)
	}
	if live := f.m.LiveCount(); live != 1 {
		t.Fatalf("live waiters %d, want 1", live)
	}
}

func TestRetryClaim(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := newFixture(t, testCfg(ModeRetry), WithClock(clock))
	ctx := context.Background()
	sql := "DELETE FROM documents WHERE id > $1"
	if _, ok := f.m.Claim("dba-1", "vectors", sql, []string{"10"}); ok {
		t.Fatal("claim with nothing approved")
	}
	a := hold(t, f.m, req("dba-1", "s1", sql, "10"))
	if _, ok := f.m.Claim("dba-1", "vectors", sql, []string{"10"}); ok {
		t.Fatal("claim of a pending request")
	}
	advance(4 * time.Second) // approve late in the decision window
	if _, err := f.m.Approve(ctx, a.ID, dba2, ""); err != nil {
		t.Fatal(err)
	}
	got, _ := f.m.Get(ctx, a.ID)
	if got.ExpiresAt.Sub(*got.DecidedAt) != 5*time.Second {
		t.Fatalf("retry approval validity %s, want the full timeout after the decision", got.ExpiresAt.Sub(*got.DecidedAt))
	}
	// The session that asked ended: retry requests are tied to the requester.
	f.m.SessionEnded("s1")
	for _, c := range []struct{ user, db, sql, p string }{
		{"dba-2", "vectors", sql, "10"},
		{"dba-1", "other", sql, "10"},
		{"dba-1", "vectors", sql, "11"},
		{"dba-1", "vectors", "DELETE FROM documents", "10"},
	} {
		if _, ok := f.m.Claim(c.user, c.db, c.sql, []string{c.p}); ok {
			t.Fatalf("claim matched a different statement: %+v", c)
		}
	}
	// Several concurrent re-runs: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok := f.m.Claim("dba-1", "vectors", sql, []string{"10"}); ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d claims won, want 1", wins.Load())
	}
	if _, ok := f.m.Claim("dba-1", "vectors", sql, []string{"10"}); ok {
		t.Fatal("third run was not held again")
	}
	if got, _ := f.m.Get(ctx, a.ID); got.State != Executed {
		t.Fatalf("state %s, want executed", got.State)
	}

	// An approval not used within its validity expires.
	b := hold(t, f.m, req("dba-1", "s1", "DROP TABLE x"))
	if _, err := f.m.Approve(ctx, b.ID, dba2, ""); err != nil {
		t.Fatal(err)
	}
	advance(6 * time.Second)
	if _, ok := f.m.Claim("dba-1", "vectors", "DROP TABLE x", nil); ok {
		t.Fatal("claimed an expired approval")
	}
	if got, _ := f.m.Get(ctx, b.ID); got.State != Expired {
		t.Fatalf("state %s, want expired", got.State)
	}

	// A pending retry request past its deadline shows as expired and can
	// no longer be approved.
	c := hold(t, f.m, req("dba-1", "s1", "DROP TABLE y"))
	advance(6 * time.Second)
	list, _ := f.m.List(ctx, Pending, 0)
	for _, x := range list {
		if x.ID == c.ID {
			t.Fatal("overdue request still listed as pending")
		}
	}
	if _, err := f.m.Approve(ctx, c.ID, dba2, ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("approve overdue: %v", err)
	}
	if ev := f.ev.types(c.ID); strings.Join(ev, ",") != "hold,expired" {
		t.Fatalf("events %v", ev)
	}
}

func TestFingerprintSeparatesFields(t *testing.T) {
	a := Fingerprint("u", "db", "ab", []string{"c"})
	for _, b := range []string{
		Fingerprint("u", "db", "a", []string{"bc"}),
		Fingerprint("u", "db", "ab", []string{"c", ""}),
		Fingerprint("u", "dbab", "", []string{"c"}),
		Fingerprint("u", "db", "ab", nil),
	} {
		if a == b {
			t.Fatal("fingerprint collision across field boundaries")
		}
	}
	if a != Fingerprint("u", "db", "ab", []string{"c"}) {
		t.Fatal("fingerprint not deterministic")
	}
}

func TestWebhookNotification(t *testing.T) {
	bodies := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	defer srv.Close()
	cfg := testCfg(ModeWait)
	cfg.Webhook = srv.URL + "/services/T000/B000/secretpart"
	f := newFixture(t, cfg)
	r := req("dba-1", "s1", "DELETE FROM customers WHERE ssn = '123-45-6789'")
	a := hold(t, f.m, r)
	select {
	case b := <-bodies:
		var msg map[string]any
		if err := json.Unmarshal(b, &msg); err != nil {
			t.Fatalf("body is not JSON: %s", b)
		}
		text, _ := msg["text"].(string)
		if len(msg) != 1 || text == "" {
			t.Fatalf("not a Slack body: %s", b)
		}
		for _, want := range []string{a.ID, "dba-1", "bulk_delete", "vectors", "ticket OPS-1", "pgwarden approvals approve " + a.ID} {
			if !strings.Contains(text, want) {
				t.Errorf("notification lacks %q: %s", want, text)
			}
		}
		if strings.Contains(text, "123-45-6789") || strings.Contains(text, "DELETE") {
			t.Errorf("notification leaks the SQL: %s", text)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook delivery")
	}
}

func TestWebhookFailureDoesNotLeakURLOrBlock(t *testing.T) {
	var logBuf strings.Builder
	var mu sync.Mutex
	w := zerolog.SyncWriter(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logBuf.Write(p) }))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	url := srv.URL + "/hook/secret-token-xyz"
	srv.Close() // unreachable now
	cfg := testCfg(ModeWait)
	cfg.Webhook = url
	dir := t.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := New(cfg, s, zerolog.New(w))
	start := time.Now()
	hold(t, m, req("dba-1", "s1", "DELETE FROM documents"))
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Hold waited for the webhook: %s", el)
	}
	m.Close() // waits for the failed delivery
	mu.Lock()
	out := logBuf.String()
	mu.Unlock()
	if !strings.Contains(out, "approval webhook delivery failed") {
		t.Fatalf("no failure logged: %s", out)
	}
	if strings.Contains(out, "secret-token-xyz") || strings.Contains(out, "DELETE FROM") {
		t.Fatalf("log leaks the webhook URL or SQL: %s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

package pgwire

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// testHooks is a programmable Hooks for the tests.
type testHooks struct {
	s          Session
	wantClient string
	wantServer string
	onClient   func(ctx context.Context, s Session, msg pgproto3.FrontendMessage) Verdict
	onServer   func(msg pgproto3.BackendMessage) (pgproto3.BackendMessage, error)
	mu         sync.Mutex
	closed     []string
}

func (h *testHooks) WantClient(typ byte) bool { return strings.IndexByte(h.wantClient, typ) >= 0 }
func (h *testHooks) WantServer(typ byte) bool { return strings.IndexByte(h.wantServer, typ) >= 0 }
func (h *testHooks) OnClient(ctx context.Context, msg pgproto3.FrontendMessage) Verdict {
	if h.onClient == nil {
		return Verdict{}
	}
	return h.onClient(ctx, h.s, msg)
}
func (h *testHooks) OnServer(msg pgproto3.BackendMessage) (pgproto3.BackendMessage, error) {
	if h.onServer == nil {
		return msg, nil
	}
	return h.onServer(msg)
}
func (h *testHooks) Close(reason string, err error) {
	h.mu.Lock()
	h.closed = append(h.closed, reason)
	h.mu.Unlock()
}

// hookGateway starts a gateway whose sessions all get a copy of proto.
func hookGateway(t *testing.T, proto *testHooks) (*gateway, func() []*testHooks) {
	c := needPG(t)
	var mu sync.Mutex
	var all []*testHooks
	g := startGateway(t, c, func(cfg *Config) {
		cfg.Hooks = func(ctx context.Context, s Session) (Hooks, error) {
			h := &testHooks{s: s, wantClient: proto.wantClient, wantServer: proto.wantServer, onClient: proto.onClient, onServer: proto.onServer}
			mu.Lock()
			all = append(all, h)
			mu.Unlock()
			return h, nil
		}
	})
	return g, func() []*testHooks { mu.Lock(); defer mu.Unlock(); return append([]*testHooks(nil), all...) }
}

var errForbidden = pgerr.New(pgerr.InsufficientPrivilege, "policy denies action %s for groups %s", "delete", "analyst")

// refuseForbidden refuses any Query or Parse that mentions "forbidden".
func refuseForbidden(_ context.Context, _ Session, msg pgproto3.FrontendMessage) Verdict {
	switch m := msg.(type) {
	case *pgproto3.Query:
		if strings.Contains(m.String, "forbidden") {
			return Verdict{Refuse: errForbidden}
		}
	case *pgproto3.Parse:
		if strings.Contains(m.Query, "forbidden") {
			return Verdict{Refuse: errForbidden}
		}
	}
	return Verdict{}
}

func TestHookRefuse(t *testing.T) {
	g, _ := hookGateway(t, &testHooks{wantClient: "QP", onClient: refuseForbidden})
	for _, mode := range []string{"", "default_query_exec_mode=simple_protocol", "default_query_exec_mode=exec"} {
		t.Run("mode="+mode, func(t *testing.T) {
			ctx := tctx(t)
			conn := g.connect(t, "olga", mode)
			_, err := conn.Exec(ctx, "SELECT 'forbidden'")
			pe := pgErr(t, err)
			if pe.Code != "42501" || pe.Message != errForbidden.Message || pe.Severity != "ERROR" {
				t.Fatalf("refusal: %s %s %s", pe.Severity, pe.Code, pe.Message)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT 3").Scan(&n); err != nil || n != 3 {
				t.Fatalf("after refusal: %v", err)
			}
			// Inside a transaction the refusal aborts it, as PostgreSQL would.
			if _, err := conn.Exec(ctx, "CREATE TEMP TABLE tx (i int)"); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "INSERT INTO tx VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "SELECT 'forbidden'"); pgCode(err) != "42501" {
				t.Fatalf("in tx: %v", err)
			}
			if _, err := conn.Exec(ctx, "SELECT 1"); pgCode(err) != "25P02" {
				t.Fatalf("want 25P02 after a refusal in a transaction, got %v", err)
			}
			if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM tx").Scan(&n); err != nil || n != 0 {
				t.Fatalf("after rollback: %v %d", err, n)
			}
		})
	}
}

func TestHookRefuseExtendedBatch(t *testing.T) {
	g, _ := hookGateway(t, &testHooks{wantClient: "QP", onClient: refuseForbidden})
	ctx := tctx(t)
	conn := g.connect(t, "pat", "")
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE b (i int)"); err != nil {
		t.Fatal(err)
	}
	// One Sync for all three: an implicit transaction, like PostgreSQL.
	batch := &pgconn.Batch{}
	batch.ExecParams("INSERT INTO b VALUES (1)", nil, nil, nil, nil)
	batch.ExecParams("SELECT 'forbidden'", nil, nil, nil, nil)
	batch.ExecParams("INSERT INTO b VALUES (3)", nil, nil, nil, nil)
	res, err := conn.PgConn().ExecBatch(ctx, batch).ReadAll()
	if pgCode(err) != "42501" {
		t.Fatalf("batch: %v", err)
	}
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("results: %d %+v", len(res), res)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM b").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the batch's implicit transaction must be rolled back: %v %d", err, n)
	}
	// A refusal PostgreSQL skips (an earlier error in the batch) is dropped
	// at the batch's ReadyForQuery, as the original would have been.
	batch = &pgconn.Batch{}
	batch.ExecParams("SELECT 1/0", nil, nil, nil, nil)
	batch.ExecParams("SELECT 'forbidden'", nil, nil, nil, nil)
	if _, err := conn.PgConn().ExecBatch(ctx, batch).ReadAll(); pgCode(err) != "22012" {
		t.Fatalf("skipped refusal: want PostgreSQL's 22012, got %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 'forbidden', 2"); pgCode(err) != "42501" {
		t.Fatalf("next refusal: %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1/0"); pgCode(err) != "22012" {
		t.Fatalf("a real error after refusals must stay PostgreSQL's: %v", err)
	}
	// pgx batch (statement cache: Parse+Describe first) stays in sync.
	pb := &pgx.Batch{}
	pb.Queue("INSERT INTO b VALUES (10)")
	pb.Queue("SELECT 'forbidden' || $1::text", "x")
	if err := conn.SendBatch(ctx, pb).Close(); pgCode(err) != "42501" {
		t.Fatalf("pgx batch: %v", err)
	}
	for i := range 3 {
		if err := conn.QueryRow(ctx, "SELECT $1::int", i).Scan(&n); err != nil || n != i {
			t.Fatalf("driver out of sync: %v", err)
		}
	}
}

func TestHookRefuseBind(t *testing.T) {
	g, _ := hookGateway(t, &testHooks{wantClient: "B", onClient: func(_ context.Context, _ Session, msg pgproto3.FrontendMessage) Verdict {
		for _, p := range msg.(*pgproto3.Bind).Parameters {
			if string(p) == "secret" {
				return Verdict{Refuse: errForbidden}
			}
		}
		return Verdict{}
	}})
	ctx := tctx(t)
	conn := g.connect(t, "quinn", "")
	var s string
	if err := conn.QueryRow(ctx, "SELECT $1::text", "open").Scan(&s); err != nil || s != "open" {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT $1::text", "secret").Scan(&s); pgCode(err) != "42501" {
		t.Fatalf("refused bind: %v", err)
	}
	// The prepared statement survived the refused Bind.
	if err := conn.QueryRow(ctx, "SELECT $1::text", "again").Scan(&s); err != nil || s != "again" {
		t.Fatalf("after refused bind: %v %q", err, s)
	}
}

func TestHookReplaceAndRewrite(t *testing.T) {
	g, _ := hookGateway(t, &testHooks{
		wantClient: "Q", wantServer: "D",
		onClient: func(_ context.Context, _ Session, msg pgproto3.FrontendMessage) Verdict {
			if q := msg.(*pgproto3.Query); q.String == "SELECT 'a'" {
				return Verdict{Replace: &pgproto3.Query{String: "SELECT 'b'"}}
			}
			return Verdict{}
		},
		onServer: func(msg pgproto3.BackendMessage) (pgproto3.BackendMessage, error) {
			dr := msg.(*pgproto3.DataRow)
			if len(dr.Values) == 1 && string(dr.Values[0]) == "ssn-123" {
				return &pgproto3.DataRow{Values: [][]byte{[]byte("***")}}, nil
			}
			return msg, nil
		},
	})
	ctx := tctx(t)
	conn := g.connect(t, "rita", "default_query_exec_mode=simple_protocol")
	var s string
	if err := conn.QueryRow(ctx, "SELECT 'a'").Scan(&s); err != nil || s != "b" {
		t.Fatalf("replace: %v %q", err, s)
	}
	if err := conn.QueryRow(ctx, "SELECT 'ssn-123'").Scan(&s); err != nil || s != "***" {
		t.Fatalf("rewrite: %v %q", err, s)
	}
	if err := conn.QueryRow(ctx, "SELECT 'plain'").Scan(&s); err != nil || s != "plain" {
		t.Fatalf("unchanged: %v %q", err, s)
	}
}

func TestHookNoticeAndSideQuery(t *testing.T) {
	type sideResult struct {
		rows [][]string
		err  error
	}
	results := make(chan sideResult, 8)
	g, _ := hookGateway(t, &testHooks{wantClient: "QP", onClient: func(ctx context.Context, s Session, msg pgproto3.FrontendMessage) Verdict {
		var sql string
		switch m := msg.(type) {
		case *pgproto3.Query:
			sql = m.String
		case *pgproto3.Parse:
			sql = m.Query
		}
		if strings.Contains(sql, "hold_me") {
			if err := s.Notice(pgerr.Notice("held for approval %s", "ap-1")); err != nil {
				return Verdict{Refuse: pgerr.New(pgerr.InternalError, "notice failed")}
			}
			rows, err := s.Query(ctx, "SELECT current_user::text, $1::text, (SELECT count(*) FROM pg_temp.side)::text", "arg")
			results <- sideResult{rows, err}
		}
		if strings.Contains(sql, "side_busy") {
			rows, err := s.Query(ctx, "SELECT 1")
			results <- sideResult{rows, err}
		}
		return Verdict{}
	}})
	ctx := tctx(t)
	conn, notices := g.connectNotices(t, "sam")
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE side (i int); INSERT INTO side VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	// Unnamed statement prepared by the client must survive side queries.
	var s string
	if err := conn.QueryRow(ctx, "SELECT 'hold_me'").Scan(&s); err != nil || s != "hold_me" {
		t.Fatalf("held statement: %v %q", err, s)
	}
	if n := nextNotice(t, notices); n != "pgwarden: held for approval ap-1" {
		t.Fatalf("notice %q", n)
	}
	r := <-results
	if r.err != nil || len(r.rows) != 1 || r.rows[0][0] != user || r.rows[0][1] != "arg" || r.rows[0][2] != "2" {
		t.Fatalf("side query: %+v %v (user %s)", r.rows, r.err, user)
	}
	// A pipeline flushed without Sync leaves no room for a side query.
	p := conn.PgConn().StartPipeline(ctx)
	p.SendQueryParams("SELECT 1", nil, nil, nil, nil)
	p.SendFlushRequest()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	p.SendQueryParams("SELECT 'side_busy'", nil, nil, nil, nil)
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-results; !errors.Is(r.err, ErrBusy) {
		t.Fatalf("side query inside a flushed batch: %v", r.err)
	}
	if err := conn.QueryRow(ctx, "SELECT 'ok'").Scan(&s); err != nil || s != "ok" {
		t.Fatalf("after pipeline: %v", err)
	}
}

func TestHookBlockingCancel(t *testing.T) {
	g, all := hookGateway(t, &testHooks{wantClient: "Q", onClient: func(ctx context.Context, _ Session, msg pgproto3.FrontendMessage) Verdict {
		if strings.Contains(msg.(*pgproto3.Query).String, "needs_approval") {
			select {
			case <-ctx.Done():
				return Verdict{Refuse: pgerr.New(pgerr.QueryCanceled, "approval withdrawn by client cancel")}
			case <-time.After(20 * time.Second):
			}
		}
		return Verdict{}
	}})
	conn := g.connect(t, "tina", "default_query_exec_mode=simple_protocol")
	ctx := tctx(t)
	go func() { time.Sleep(300 * time.Millisecond); _ = conn.PgConn().CancelRequest(ctx) }()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT 'needs_approval'")
	pe := pgErr(t, err)
	if pe.Code != "57014" || pe.Message != "pgwarden: approval withdrawn by client cancel" || time.Since(start) > 5*time.Second {
		t.Fatalf("%s %s after %v", pe.Code, pe.Message, time.Since(start))
	}
	// The next statement gets a fresh, uncancelled context.
	var n int
	if err := conn.QueryRow(ctx, "SELECT 9").Scan(&n); err != nil || n != 9 {
		t.Fatalf("after cancel: %v", err)
	}
	conn.Close(ctx)
	eventually(t, 5*time.Second, "hooks closed", func() bool {
		hs := all()
		if len(hs) != 1 {
			return false
		}
		hs[0].mu.Lock()
		defer hs[0].mu.Unlock()
		return len(hs[0].closed) == 1 && hs[0].closed[0] == reasonClientTerminated
	})
}

func TestHookTerminate(t *testing.T) {
	g, all := hookGateway(t, &testHooks{wantClient: "Q", onClient: func(_ context.Context, s Session, msg pgproto3.FrontendMessage) Verdict {
		if strings.Contains(msg.(*pgproto3.Query).String, "kick") {
			go s.Terminate(pgerr.Fatal(pgerr.AdminShutdown, "session ended by an administrator"))
			return Verdict{Refuse: pgerr.Fatal(pgerr.AdminShutdown, "session ended by an administrator")}
		}
		return Verdict{}
	}})
	conn := g.connect(t, "uma", "default_query_exec_mode=simple_protocol")
	_, err := conn.Exec(tctx(t), "SELECT 'kick'")
	pe := pgErr(t, err)
	if pe.Code != "57P01" || pe.Severity != "FATAL" {
		t.Fatalf("%s %s", pe.Severity, pe.Code)
	}
	eventually(t, 5*time.Second, "lease revoked", func() bool { return g.prov.liveCount() == 0 })
	if hs := all(); len(hs) != 1 || len(hs[0].closed) != 1 {
		t.Fatalf("hooks closed %+v", hs)
	}
}

func TestHookFactory(t *testing.T) {
	c := needPG(t)
	var sideUser string
	g := startGateway(t, c, func(cfg *Config) {
		cfg.Hooks = func(ctx context.Context, s Session) (Hooks, error) {
			if s.Info().Principal.User == "refused" {
				return nil, pgerr.New(pgerr.InsufficientPrivilege, "no policy for your groups")
			}
			rows, err := s.Query(ctx, "SELECT current_user::text")
			if err != nil {
				return nil, err
			}
			sideUser = rows[0][0]
			return &testHooks{s: s}, nil
		}
	})
	pe := pgErr(t, connectErr(t, g.dsn("refused", "good-refused", "")))
	if pe.Code != "42501" || pe.Severity != "FATAL" || pe.Message != "pgwarden: no policy for your groups" {
		t.Fatalf("%s %s %s", pe.Severity, pe.Code, pe.Message)
	}
	eventually(t, 5*time.Second, "refused session's lease revoked", func() bool { return g.prov.liveCount() == 0 })
	conn := g.connect(t, "victor", "")
	var user string
	if err := conn.QueryRow(tctx(t), "SELECT current_user").Scan(&user); err != nil || user != sideUser {
		t.Fatalf("factory side query saw %q, session is %q (%v)", sideUser, user, err)
	}
}

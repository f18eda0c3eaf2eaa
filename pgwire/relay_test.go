package pgwire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestRelaySimpleAndExtended(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	for _, mode := range []struct {
		name  string
		extra string
	}{{"extended", ""}, {"simple", "default_query_exec_mode=simple_protocol"}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := tctx(t)
			conn := g.connect(t, "alice@example.com", mode.extra)
			var user, app string
			var n int
			if err := conn.QueryRow(ctx, "SELECT current_user, current_setting('application_name'), $1::int + 1", 41).Scan(&user, &app, &n); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(user, "pgt_") || n != 42 {
				t.Fatalf("got user %q n %d; want a minted pgt_ role and 42", user, n)
			}
			if _, err := conn.Exec(ctx, "CREATE TEMP TABLE t (id int, v text)"); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", i, fmt.Sprintf("v%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := conn.Query(ctx, "SELECT id, v FROM t WHERE id >= $1 ORDER BY id", 2)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
				var id int
				var v string
				err := r.Scan(&id, &v)
				return fmt.Sprintf("%d=%s", id, v), err
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != "2=v2,3=v3,4=v4" {
				t.Fatalf("rows: %v", got)
			}
			// A server error keeps the session usable.
			if _, err := conn.Exec(ctx, "SELECT 1/0"); pgCode(err) != "22012" {
				t.Fatalf("want 22012, got %v", err)
			}
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("after error: %v %d", err, one)
			}
			// pgvector through the gateway.
			var d float64
			if err := conn.QueryRow(ctx, "SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").Scan(&d); err != nil || d != 1 {
				t.Fatalf("vector distance: %v %v", err, d)
			}
		})
	}
	if v := value(t, g.srv.m.connsTotal); v < 2 {
		t.Fatalf("connections_total = %v", v)
	}
}

func TestRelayCopy(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	ctx := tctx(t)
	conn := g.connect(t, "bob", "")
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE c (id int, v text)"); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&in, "%d\tvalue %d with some padding to make the copy span several buffers\n", i, i)
	}
	tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(in.String()), "COPY c FROM STDIN")
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 2000 {
		t.Fatalf("copied %d rows", tag.RowsAffected())
	}
	var out bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &out, "COPY (SELECT * FROM c ORDER BY id) TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	if out.String() != in.String() {
		t.Fatalf("COPY TO returned %d bytes, want %d", out.Len(), in.Len())
	}
	// CopyFail from the client aborts cleanly.
	_, err = conn.PgConn().CopyFrom(ctx, &failingReader{}, "COPY c FROM STDIN")
	if err == nil {
		t.Fatal("want an error from a failed COPY")
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM c").Scan(&n); err != nil || n != 2000 {
		t.Fatalf("after CopyFail: %v %d", err, n)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		r.n++
		return copy(p, "1\tx\n"), nil
	}
	return 0, errors.New("client-side failure")
}

func TestRelayNoticeAndNotify(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	ctx := tctx(t)
	conn, notices := g.connectNotices(t, "carol")
	if _, err := conn.Exec(ctx, "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$"); err != nil {
		t.Fatal(err)
	}
	if n := nextNotice(t, notices); n != "hello 42" {
		t.Fatalf("notice %q", n)
	}

	other := g.connect(t, "dave", "")
	if _, err := conn.Exec(ctx, "LISTEN chan1"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "SELECT pg_notify('chan1', 'payload-1')"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != "chan1" || n.Payload != "payload-1" {
		t.Fatalf("notification %+v", n)
	}
}

func TestRelayCancel(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	conn := g.connect(t, "erin", "")
	ctx := tctx(t)
	go func() {
		time.Sleep(500 * time.Millisecond)
		_ = conn.PgConn().CancelRequest(ctx)
	}()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("cancel took %v", el)
	}
	if pgCode(err) != "57014" {
		t.Fatalf("want 57014, got %v", err)
	}
}

func TestLeaseRevokedOnEveryExit(t *testing.T) {
	c := needPG(t)
	g := startGateway(t, c, nil)
	ctx := tctx(t)
	// Terminate, plain close (socket), and a session killed by the server.
	conn := g.connect(t, "frank", "")
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if g.prov.liveCount() != 1 {
		t.Fatalf("live leases %d", g.prov.liveCount())
	}
	conn.Close(ctx)
	eventually(t, 5*time.Second, "lease revoked after Terminate", func() bool { return g.prov.liveCount() == 0 })

	conn2 := g.connect(t, "frank", "")
	conn2.PgConn().Conn().Close() // vanish without Terminate
	eventually(t, 5*time.Second, "lease revoked after vanish", func() bool { return g.prov.liveCount() == 0 })
	if g.prov.minted.Load() != g.prov.revoked.Load() {
		t.Fatalf("minted %d revoked %d", g.prov.minted.Load(), g.prov.revoked.Load())
	}
	var exists bool
	if err := pgxQueryRowSuper(ctx, c, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", user).Scan(&exists); err != nil || exists {
		t.Fatalf("role %s still exists (%v)", user, err)
	}
	eventually(t, 5*time.Second, "ended sessions counted", func() bool {
		return value(t, g.srv.m.ended.WithLabelValues(reasonClientTerminated)) == 1 &&
			value(t, g.srv.m.ended.WithLabelValues(reasonClientClosed)) == 1
	})
}

type superRow struct {
	conn *pgx.Conn
	row  pgx.Row
}

func (r superRow) Scan(dst ...any) error {
	defer r.conn.Close(context.Background())
	return r.row.Scan(dst...)
}

func pgxQueryRowSuper(ctx context.Context, c interface{ SuperDSN(string) string }, sql string, args ...any) pgx.Row {
	conn, err := pgx.Connect(ctx, c.SuperDSN("vectors"))
	if err != nil {
		return errRow{err}
	}
	return superRow{conn, conn.QueryRow(ctx, sql, args...)}
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

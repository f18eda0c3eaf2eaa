package pgwire

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// effectHooks tells the tracker what each Query statement does, as the
// gateway does from its classification: the Query text is the effect.
type effectHooks struct{ passHooks }

func (effectHooks) OnClient(_ context.Context, m pgproto3.FrontendMessage) Verdict {
	q, ok := m.(*pgproto3.Query)
	if !ok {
		return Verdict{}
	}
	e := map[string]Effect{
		"PREPARE a":      {Kind: EffectPrepare, Name: "a", SQL: "PREPARE a AS SELECT 1"},
		"DEALLOCATE a":   {Kind: EffectDeallocate, Name: "a"},
		"DEALLOCATE ALL": {Kind: EffectDeallocateAll},
		"DECLARE c":      {Kind: EffectDeclare, Name: "c", SQL: "DECLARE c CURSOR FOR SELECT 1"},
		"DECLARE h HOLD": {Kind: EffectDeclare, Name: "h", Hold: true, SQL: "DECLARE h CURSOR WITH HOLD FOR SELECT 1"},
		"COMMIT":         {Kind: EffectCommit},
		"ROLLBACK":       {Kind: EffectRollback},
		"DISCARD ALL":    {Kind: EffectDiscardAll},
		"CLOSE c":        {Kind: EffectClosePortal, Name: "c"},
		"BEGIN":          {},
		"SELECT 1":       {},
	}[q.String]
	return Verdict{Statements: []QueryStatement{{Effect: e}}}
}

// scripted runs the relay between a pgproto3 client and a fake backend
// (pgproto3 both ends) and checks what the tracker knows after each step.
func TestTrackerScripted(t *testing.T) {
	client, upstream, ss, stop := relaySession(t, effectHooks{})
	defer stop()
	fe := pgproto3.NewFrontend(client, client)
	be := pgproto3.NewBackend(upstream, upstream)
	tr := ss.tr

	// step sends client messages, answers them from the backend script and
	// reads the client side up to the last message.
	step := func(send []pgproto3.FrontendMessage, answer []pgproto3.BackendMessage) {
		t.Helper()
		for _, m := range send {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		_ = upstream.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range send {
			if _, err := be.Receive(); err != nil {
				t.Fatalf("backend receive: %v", err)
			}
		}
		for _, m := range answer {
			be.Send(m)
		}
		if err := be.Flush(); err != nil {
			t.Fatal(err)
		}
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range answer {
			if _, err := fe.Receive(); err != nil {
				t.Fatalf("client receive: %v", err)
			}
		}
	}
	query := func(sql, tag string, tx byte) {
		t.Helper()
		step([]pgproto3.FrontendMessage{&pgproto3.Query{String: sql}},
			[]pgproto3.BackendMessage{&pgproto3.CommandComplete{CommandTag: []byte(tag)}, &pgproto3.ReadyForQuery{TxStatus: tx}})
	}
	failQuery := func(sql string, tx byte) {
		t.Helper()
		step([]pgproto3.FrontendMessage{&pgproto3.Query{String: sql}},
			[]pgproto3.BackendMessage{&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P05", Message: "x"}, &pgproto3.ReadyForQuery{TxStatus: tx}})
	}
	wantStmt := func(name string, want bool) {
		t.Helper()
		if got := tr.Statement(name) != nil; got != want {
			t.Fatalf("statement %q known: %v, want %v", name, got, want)
		}
	}
	wantPortal := func(name string, want bool) {
		t.Helper()
		if got := tr.Portal(name) != nil; got != want {
			t.Fatalf("portal %q known: %v, want %v", name, got, want)
		}
	}

	// A PREPARE counts only once the server confirmed it.
	failQuery("PREPARE a", 'I')
	wantStmt("a", false)
	query("PREPARE a", "PREPARE", 'I')
	wantStmt("a", true)
	// A failing DEALLOCATE keeps it; a confirmed one drops it.
	failQuery("DEALLOCATE a", 'I')
	wantStmt("a", true)
	query("DEALLOCATE a", "DEALLOCATE", 'I')
	wantStmt("a", false)

	// Parse: named and unnamed; an error skips the rest until Sync.
	step([]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Parse{Name: "s2", Query: "SELECT 2"}, &pgproto3.Bind{PreparedStatement: "s2"}, &pgproto3.Sync{}},
		[]pgproto3.BackendMessage{&pgproto3.ParseComplete{}, &pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "x"}, &pgproto3.ReadyForQuery{TxStatus: 'I'}})
	wantStmt("s1", true)
	wantStmt("s2", false)
	if n := tr.Pending(); n != 0 {
		t.Fatalf("%d requests left after Sync", n)
	}
	// DEALLOCATE ALL keeps the unnamed statement; a simple Query drops it.
	step([]pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 3"}, &pgproto3.Sync{}},
		[]pgproto3.BackendMessage{&pgproto3.ParseComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'}})
	wantStmt("", true)
	query("DEALLOCATE ALL", "DEALLOCATE ALL", 'I')
	wantStmt("s1", false)
	wantStmt("", false)

	// Portals: a Bind outside a transaction dies at its Sync.
	step([]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s3", Query: "SELECT 1"}, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s3"}, &pgproto3.Sync{}},
		[]pgproto3.BackendMessage{&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'I'}})
	wantPortal("p", false)
	// Inside one it lives until COMMIT; a DECLARE is learned; WITH HOLD survives COMMIT.
	query("BEGIN", "BEGIN", 'T')
	step([]pgproto3.FrontendMessage{&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s3"}, &pgproto3.Sync{}},
		[]pgproto3.BackendMessage{&pgproto3.BindComplete{}, &pgproto3.ReadyForQuery{TxStatus: 'T'}})
	wantPortal("p", true)
	if pt := tr.Portal("p"); pt.Stmt == nil || pt.Stmt.SQL != "SELECT 1" {
		t.Fatalf("portal p runs %+v", pt.Stmt)
	}
	query("DECLARE c", "DECLARE CURSOR", 'T')
	query("DECLARE h HOLD", "DECLARE CURSOR", 'T')
	wantPortal("c", true)
	query("COMMIT", "COMMIT", 'I')
	wantPortal("p", false)
	wantPortal("c", false)
	wantPortal("h", true)
	// WITH HOLD of a rolled-back transaction dies; a failed COMMIT is a rollback.
	query("BEGIN", "BEGIN", 'T')
	query("DECLARE c", "DECLARE CURSOR", 'T')
	failQuery("SELECT 1", 'E')
	query("COMMIT", "ROLLBACK", 'I')
	wantPortal("c", false)
	wantPortal("h", true)
	query("DISCARD ALL", "DISCARD ALL", 'I')
	wantPortal("h", false)
	wantStmt("s3", false)
	if s := tr.State(); s != StateIdle {
		t.Fatalf("state %v, want idle", s)
	}
}

// serverTracked must name exactly the message types Tracker.server has a
// case for: a type missing from the table would be skipped silently.
func TestServerTrackedMatchesCases(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "tracker.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[byte]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		fd, ok := n.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "server" || fd.Recv == nil {
			return true
		}
		for _, st := range fd.Body.List {
			sw, ok := st.(*ast.SwitchStmt)
			if !ok {
				continue
			}
			for _, c := range sw.Body.List {
				for _, e := range c.(*ast.CaseClause).List {
					lit, ok := e.(*ast.BasicLit)
					if !ok || lit.Kind != token.CHAR {
						t.Fatalf("unexpected case %T", e)
					}
					v, _, _, err := strconv.UnquoteChar(lit.Value[1:len(lit.Value)-1], '\'')
					if err != nil {
						t.Fatal(err)
					}
					cases[byte(v)] = true
				}
			}
		}
		return false
	})
	if len(cases) == 0 {
		t.Fatal("no cases found in Tracker.server")
	}
	for c := range 256 {
		if cases[byte(c)] != serverTracked[c] {
			t.Errorf("type %q: case %v, serverTracked %v", rune(c), cases[byte(c)], serverTracked[c])
		}
	}
}

package integration

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions"
)

// TestDelegation: an agent acting for a person (a token with an RFC 8693
// act claim) through the real gateway, with pgx and psql. The session gets
// the groups both hold — a statement the user's group may run but the
// agent's may not is refused 42501, one both may run runs, the minted
// role has only the shared group's database role — and its record names
// user and actor on every event; an actor without groups may do nothing;
// a malformed act is refused at login; the admin API applies the same
// intersection to its callers and lists the actor; a held statement's
// request records the actor, and its retry approval serves only the same
// user with the same actor.
func TestDelegation(t *testing.T) {
	w := startGateway(t, func(c *config.Config) { c.Policy.Approval.Mode = "retry" })
	const table = "deleg_docs"
	approvalTable(t, table, 5)
	ctx := context.Background()

	// dana is in analyst (read) and ingest (write); agent-7 only in
	// analyst (and a group dana does not have).
	const dana, agent = "dana@example.com", "agent-7"
	tok := w.Issuer.delegated(t, dana, []string{"analyst", "ingest"}, agent, []string{"analyst", "dba"})
	conn := w.connectWith(t, w.connConfig(t, dana, tok))
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM documents").Scan(&n); err != nil || n == 0 {
		t.Fatalf("a read both may do: %d, %v", n, err)
	}
	_, err := conn.Exec(ctx, "INSERT INTO "+table+" VALUES (100, 'written by the agent')")
	pe := wantPgError(t, err, "42501", "pgwarden: ", "insert", "[analyst]")
	if strings.Contains(pe.Message, "ingest") || strings.Contains(pe.Message, "dba") {
		t.Fatalf("the refusal names groups the session does not have: %s", pe.Message)
	}
	if c := countRows(t, table); c != 5 {
		t.Fatalf("the refused INSERT changed the table: %d rows", c)
	}
	// The minted role carries the shared group's database role only.
	var reader, writer bool
	if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, 'vector_reader', 'MEMBER'), pg_has_role(current_user, 'vector_writer', 'MEMBER')").Scan(&reader, &writer); err != nil {
		t.Fatal(err)
	}
	if !reader || writer {
		t.Fatalf("minted role: vector_reader %v, vector_writer %v; want only vector_reader", reader, writer)
	}

	// The admin API: the same intersection for its callers. A dba whose
	// agent is no approver may not list; one whose agent is may, and sees
	// the actor.
	code, body := liveCall(t, w, "GET", "/api/v1/live", w.Issuer.delegated(t, "dba-1@example.com", []string{"dba"}, "agent-9", []string{"analyst"}), "")
	wantAPIError(t, code, body, 403, "approver")
	list := liveList(t, w, w.Issuer.delegated(t, "dba-1@example.com", []string{"dba"}, "ops-bot", []string{"dba"}))
	if s := findLive(list, dana); len(list) != 1 || s == nil || s.Actor != agent || !slices.Equal(s.Groups, []string{"analyst"}) {
		t.Fatalf("live sessions: %+v", list)
	}
	conn.Close(ctx)

	_, evs := sessionOf(t, w.Cfg.Store.Dir, dana)
	for _, ev := range evs {
		if ev.User != dana || ev.Actor != agent || !slices.Equal(ev.Groups, []string{"analyst"}) {
			t.Fatalf("%s event: user %q actor %q groups %v", ev.Type, ev.User, ev.Actor, ev.Groups)
		}
	}
	stmts := stmtEvents(evs)
	if len(stmts) != 3 || stmts[0].Decision != "allow" || stmts[1].Decision != "deny" || !strings.HasPrefix(stmts[1].Error, "pgwarden: ") ||
		!strings.Contains(stmts[1].SQL, "INSERT") || stmts[2].Decision != "allow" {
		t.Fatalf("statements: %+v", stmts)
	}

	// An actor without groups gets none: even a read is refused (real psql).
	const erin = "erin@example.com"
	stdout, stderr, err := w.psql(t, erin, w.Issuer.delegated(t, erin, []string{"analyst", "ingest"}, agent, nil), "-c", "SELECT count(*) FROM documents")
	if err == nil || !strings.Contains(stderr, "pgwarden: action read not allowed for groups []") {
		t.Fatalf("psql as erin via an actor without groups: %v\nstdout %s\nstderr %s", err, stdout, stderr)
	}
	if _, evs := sessionOf(t, w.Cfg.Store.Dir, erin); len(evs) == 0 || evs[0].Actor != agent || len(evs[0].Groups) != 0 {
		t.Fatalf("erin's record: %+v", evs)
	}

	// A malformed act is refused at login, on both listeners.
	bad := w.Issuer.claims("frank@example.com", "analyst")
	bad["act"] = "agent-7"
	badTok := w.Issuer.sign(t, bad, nil, "")
	if c, err := pgx.ConnectConfig(ctx, w.connConfig(t, "frank@example.com", badTok)); err == nil {
		c.Close(ctx)
		t.Fatal("a token with a malformed act claim was accepted")
	} else {
		wantPgError(t, err, "28P01", "pgwarden: invalid delegation (act claim) in token")
	}
	code, body = liveCall(t, w, "GET", "/api/v1/live", badTok, "")
	wantAPIError(t, code, body, 401, "invalid delegation")

	// A held statement records the actor; its retry approval serves only
	// the same user with the same actor.
	const dave = "dave@example.com"
	delegatedDave := w.connectWith(t, w.connConfig(t, dave, w.Issuer.delegated(t, dave, []string{"dba"}, "ops-agent", []string{"dba"})))
	_, err = delegatedDave.Exec(ctx, "DELETE FROM "+table)
	pe = wantPgError(t, err, "55000", "held for approval")
	id := heldRE.FindStringSubmatch(pe.Message)[1]
	a := getApproval(t, w, id)
	if a.Requester != dave || a.Actor != "ops-agent" {
		t.Fatalf("request: requester %q actor %q", a.Requester, a.Actor)
	}
	// ops-agent acting for another dba must not approve its own request.
	if code, msg := postDecision(t, w, w.Issuer.delegated(t, "dba-2@example.com", []string{"dba"}, "ops-agent", []string{"dba"}), id); code != 403 || !strings.Contains(msg, "four eyes") {
		t.Fatalf("the requesting agent approved for another dba: %d %s", code, msg)
	}
	// another agent acting for another dba may; the record names both
	if code, msg := postDecision(t, w, w.Issuer.delegated(t, "dba-2@example.com", []string{"dba"}, "review-bot", []string{"dba"}), id); code != 200 {
		t.Fatalf("approve: %d %s", code, msg)
	}
	var rec struct {
		Events []sessions.Event `json:"events"`
	}
	must0(t, json.Unmarshal([]byte(adminGet(t, w, "/api/v1/sessions/"+a.Session)), &rec))
	decided := false
	for _, ev := range rec.Events {
		if ev.Type == sessions.TypeApproval && ev.ApprovalID == id && ev.ApprovalState == "approved" {
			decided = ev.DecidedBy == "dba-2@example.com" && ev.DecidedByActor == "review-bot"
		}
	}
	if !decided {
		t.Fatalf("the session's approval event does not name dba-2@example.com via review-bot: %+v", rec.Events)
	}
	plainDave := w.connectWith(t, w.connConfig(t, dave, w.Issuer.token(t, dave, "dba")))
	_, err = plainDave.Exec(ctx, "DELETE FROM "+table)
	wantPgError(t, err, "55000", "held for approval") // dave alone: a new request
	if c := countRows(t, table); c != 5 {
		t.Fatalf("rows deleted without the approval's actor: %d left", c)
	}
	tag, err := delegatedDave.Exec(ctx, "DELETE FROM "+table)
	if err != nil || tag.RowsAffected() != 5 {
		t.Fatalf("approved re-run by dave via ops-agent: %v, %v", tag, err)
	}
}

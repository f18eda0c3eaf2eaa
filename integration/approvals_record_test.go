package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/sessions"
)

// Every hold, decision and execution is one event in the requester's
// session record, in order (issue 5, item 6).
func TestApprovalEventsInSessionRecord(t *testing.T) {
	w := startGateway(t, nil)
	const table = "ap_record"
	approvalTable(t, table, 7)
	conn, notices := dbaConn(t, w, "dba-1@example.com", pgx.QueryExecModeSimpleProtocol)
	id, res := startHeld(t, context.Background(), conn, notices, "DELETE FROM "+table)
	if code, msg := postDecision(t, w, w.Issuer.token(t, "dba-2@example.com", "dba"), id); code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, msg)
	}
	if r := await(t, res, 20*time.Second); r.err != nil || r.tag.RowsAffected() != 7 {
		t.Fatalf("approved DELETE: %v, %v", r.tag, r.err)
	}
	usable(t, conn) // its ReadyForQuery waited for the record

	st, err := sessions.OpenStore(w.Cfg.Store.Dir)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := st.List(sessions.Filter{User: "dba-1@example.com"})
	if err != nil || len(sums) != 1 {
		t.Fatalf("sessions of dba-1: %v, %v", sums, err)
	}
	evs, err := st.Get(sums[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		switch {
		case e.Type == "approval" && e.ApprovalID == id:
			got = append(got, "approval:"+e.ApprovalState)
		case e.Type == "statement" && e.ApprovalID == id:
			got = append(got, "statement:"+e.Decision)
		}
	}
	want := []string{"approval:pending", "statement:hold", "approval:approved", "statement:approved", "approval:executed"}
	if len(got) != len(want) {
		t.Fatalf("approval events in the record: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("approval events in the record: %v, want %v", got, want)
		}
	}
}

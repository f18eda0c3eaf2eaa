package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
)

// A request of profile kb held on gateway A is stored with its profile
// (record and column), listed by profile on gateway B, and only kb's
// approvers may decide it there.
func TestProfileAcrossGateways(t *testing.T) {
	dsn := freshDB(t)
	db := openDB(t, dsn)
	sa, sb := openStore(t, db, "gw-a"), openStore(t, openDB(t, dsn), "gw-b")
	kb := config.Approval{Approvers: []string{"kb-dba"}, Timeout: 3 * time.Minute, Mode: approvals.ModeWait}
	sup := config.Approval{Approvers: []string{"support-lead"}, Timeout: time.Minute, Mode: approvals.ModeWait}
	opts := []approvals.Option{approvals.WithProfileRules("kb", kb), approvals.WithProfileRules("support", sup)}
	a := approvals.New(cfg(), sa, zerolog.Nop(), opts...)
	b := approvals.New(cfg(), sb, zerolog.Nop(), opts...)
	t.Cleanup(func() { a.Close(); b.Close(); sa.Close(); sb.Close() })

	h, err := a.Hold(context.Background(), approvals.Request{Requester: alice.User, Groups: alice.Groups, Session: "s1",
		Database: "kb", Profile: "kb", SQL: "DELETE FROM documents", Action: "bulk_delete"})
	if err != nil {
		t.Fatal(err)
	}
	if d := h.ExpiresAt.Sub(h.CreatedAt); d != 3*time.Minute {
		t.Fatalf("expires after %v, want kb's 3m", d)
	}
	var col string
	if err := db.Pool.QueryRow(context.Background(), `SELECT profile FROM pgwarden.approvals WHERE id = $1`, h.ID).Scan(&col); err != nil || col != "kb" {
		t.Fatalf("profile column %q, %v", col, err)
	}
	list, err := b.ListFiltered(context.Background(), approvals.ListFilter{Profile: "kb"}, 0)
	if err != nil || len(list) != 1 || list[0].ID != h.ID || list[0].Profile != "kb" {
		t.Fatalf("gateway B lists profile kb: %v %v", list, err)
	}
	if list, _ := b.ListFiltered(context.Background(), approvals.ListFilter{Profile: "support"}, 0); len(list) != 0 {
		t.Fatalf("profile support lists %d requests", len(list))
	}
	lead := identity.Principal{User: "sam", Groups: []string{"support-lead"}}
	if _, err := b.Approve(context.Background(), h.ID, lead, ""); !errors.Is(err, approvals.ErrForbidden) {
		t.Fatalf("support's approver on a kb request: %v, want ErrForbidden", err)
	}
	kbDBA := identity.Principal{User: "kim", Groups: []string{"kb-dba"}}
	got, err := b.Approve(context.Background(), h.ID, kbDBA, "ok")
	if err != nil || got.State != approvals.Approved || got.Profile != "kb" {
		t.Fatalf("kb's approver: %+v %v", got, err)
	}
}

// A row stored before migration 0004 (no profile column value) reads back
// with profile "" and is listed under no profile filter.
func TestPreProfileRow(t *testing.T) {
	db := openDB(t, freshDB(t))
	s := openStore(t, db, "gw-a")
	defer s.Close()
	rec := `{"id":"oldoldoldoldold2","state":"pending","mode":"wait","requester":"alice","groups":[],"session":"s","database":"vectors","sql":"DELETE FROM t","params":[],"action":"bulk_delete","estimate_rows":-1,"reason":"","created_at":"2025-01-01T00:00:00Z","expires_at":"2999-01-01T00:00:00Z","decided_by":"","decided_at":null,"comment":""}`
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO pgwarden.approvals (id, state, mode, gateway, created_at, record)
		VALUES ('oldoldoldoldold2', 'pending', 'wait', 'gw-old', '2025-01-01T00:00:00Z', $1)`, rec); err != nil {
		t.Fatal(err)
	}
	a, err := s.Get("oldoldoldoldold2")
	if err != nil || a.Profile != "" {
		t.Fatalf("Get: %+v %v", a, err)
	}
	if all, err := s.List(approvals.ListFilter{}, 0); err != nil || len(all) != 1 {
		t.Fatalf("List all: %v %v", all, err)
	}
	if kb, err := s.List(approvals.ListFilter{Profile: "kb"}, 0); err != nil || len(kb) != 0 {
		t.Fatalf("List kb: %v %v", kb, err)
	}
}

package integration

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"
)

// uiBrowser starts a headless Chromium with a 1280-wide window for t.
func uiBrowser(t *testing.T, chrome string) context.Context {
	t.Helper()
	ctx, cancel := newBrowser(t, chrome, 3*time.Minute, chromedp.Flag("hide-scrollbars", true), chromedp.WindowSize(1280, 900))
	t.Cleanup(cancel)
	return ctx
}

// screenshot writes a full-page PNG of the page to ../docs/img/name when
// PGWARDEN_SCREENSHOTS=1 (the pictures in docs/approvals.md and
// docs/recording.md are taken so).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("PGWARDEN_SCREENSHOTS") != "1" {
		return
	}
	var buf []byte
	// From the top: a full-page capture of a scrolled page repeats the
	// sticky header in the middle.
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.scrollTo(0, 0)`, nil)); err != nil {
		t.Fatal(err)
	}
	// Quality 100 is PNG; the caller has asserted what the page shows.
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&buf, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join("..", "docs", "img", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d KB)", p, len(buf)/1024)
}

// Every view of /ui/ in a real headless Chromium: the approvals inbox
// (highlighted SQL, age, live update that keeps a typed comment), the
// sessions list with filters and "Verify record", a replay timeline and
// the live sessions.
func TestUIViews(t *testing.T) {
	chrome := chromiumPath(t)
	w := startGateway(t, nil)
	const table, n = "ui_views", 30
	approvalTable(t, table, n)
	bg := context.Background()

	// The requester's session: a read with result rows, an error, then a
	// DELETE without WHERE that is held.
	conn, notices := dbaConn(t, w, requester, pgx.QueryExecModeSimpleProtocol)
	rows, err := conn.Query(bg, "SELECT id, body FROM "+table+" WHERE id <= 3 ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		ID   int
		Body string
	}])
	if err != nil || len(got) != 3 {
		t.Fatalf("read: %v, %v", got, err)
	}
	if _, err := conn.Exec(bg, "SELECT count(*) FROM "+table+"_missing"); err == nil {
		t.Fatal("a query of a missing table succeeded")
	}
	sql1 := "DELETE FROM " + table + " /* nightly cleanup: <b id=\"pwned\">x</b> */"
	id1, res1 := startHeld(t, bg, conn, notices, sql1)

	ctx := uiBrowser(t, chrome)
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }

	// ---- the approvals inbox ----
	var state, sqlText, age, rowText, kw, com string
	var pwned bool
	err = chromedp.Run(ctx,
		chromedp.Navigate(w.AdminURL+"/ui/"),
		chromedp.Click(`[data-testid="token-auth"] summary`, chromedp.ByQuery),
		chromedp.WaitVisible(sel("token-input"), chromedp.ByQuery),
		chromedp.SendKeys(sel("token-input"), w.Issuer.token(t, approver, "dba"), chromedp.ByQuery),
		chromedp.Click(sel("token-save"), chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('[data-testid="token-auth"]').open = false`, nil),
		chromedp.WaitVisible(sel("approval-"+id1), chromedp.ByQuery),
		chromedp.Text(sel("state-"+id1), &state, chromedp.ByQuery),
		chromedp.Text(sel("sql-"+id1), &sqlText, chromedp.ByQuery),
		chromedp.Text(sel("age-"+id1), &age, chromedp.ByQuery),
		chromedp.Text(sel("approval-"+id1), &rowText, chromedp.ByQuery),
		chromedp.Evaluate(`Array.from(document.querySelectorAll('[data-testid="sql-`+id1+`"] .sql-kw')).map(e => e.textContent).join(" ")`, &kw),
		chromedp.Evaluate(`Array.from(document.querySelectorAll('[data-testid="sql-`+id1+`"] .sql-com')).map(e => e.textContent).join("")`, &com),
		chromedp.Evaluate(`document.getElementById("pwned") !== null`, &pwned),
	)
	if err != nil {
		t.Fatalf("approvals inbox: %v", err)
	}
	if state != "pending" || !strings.Contains(sqlText, sql1) {
		t.Fatalf("the inbox shows state %q, sql %q", state, sqlText)
	}
	if kw != "DELETE FROM" || !strings.Contains(com, `<b id="pwned">`) || pwned {
		t.Fatalf("SQL highlighting: keywords %q, comment %q, markup rendered %v", kw, com, pwned)
	}
	if !regexp.MustCompile(`^(just now|\d+ min ago)$`).MatchString(age) {
		t.Fatalf("age %q", age)
	}
	for _, want := range []string{"bulk_delete", requester, "dba", "vectors"} {
		if !strings.Contains(rowText, want) {
			t.Fatalf("the request's row lacks %q:\n%s", want, rowText)
		}
	}

	// Live update: a comment is being typed when a second request is held;
	// the poll adds the new request, announces it and keeps the comment
	// and its focus.
	const typed = "checked with the owner of " + table
	if err := chromedp.Run(ctx, chromedp.SendKeys(sel("comment-"+id1), typed, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	const requester2 = "dba-3@example.com"
	conn2, notices2 := dbaConn(t, w, requester2, pgx.QueryExecModeSimpleProtocol)
	sql2 := "TRUNCATE " + table
	id2, res2 := startHeld(t, bg, conn2, notices2, sql2)
	var status, value, focused string
	err = chromedp.Run(ctx,
		chromedp.WaitVisible(sel("approval-"+id2), chromedp.ByQuery),
		chromedp.Text(sel("status"), &status, chromedp.ByQuery),
		chromedp.Value(sel("comment-"+id1), &value, chromedp.ByQuery),
		chromedp.Evaluate(`document.activeElement ? document.activeElement.id : ""`, &focused),
	)
	if err != nil {
		t.Fatalf("live update: %v", err)
	}
	if !strings.Contains(status, "1 new request held") || value != typed || focused != "comment-"+id1 {
		t.Fatalf("after the live update: status %q, comment %q, focus on %q", status, value, focused)
	}
	screenshot(t, ctx, "ui-approvals.png")

	// Deny the TRUNCATE, approve the DELETE with the comment typed before
	// the poll.
	err = chromedp.Run(ctx,
		chromedp.SendKeys(sel("comment-"+id2), "not during business hours", chromedp.ByQuery),
		chromedp.Click(sel("deny-"+id2), chromedp.ByQuery),
		chromedp.WaitNotPresent(sel("approval-"+id2), chromedp.ByQuery),
		chromedp.Click(sel("approve-"+id1), chromedp.ByQuery),
		chromedp.WaitNotPresent(sel("approval-"+id1), chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("decide in the browser: %v", err)
	}
	if r := await(t, res1, 30*time.Second); r.err != nil || r.tag.RowsAffected() != n {
		t.Fatalf("the approved DELETE: %v, %v", r.tag, r.err)
	}
	wantPgError(t, await(t, res2, 30*time.Second).err, "57014", "not during business hours")
	a1 := getApproval(t, w, id1)
	if a1.Comment != typed || a1.DecidedBy != approver {
		t.Fatalf("the approval of %s: %+v", id1, a1)
	}
	sid1, sid2 := a1.Session, getApproval(t, w, id2).Session

	// The record has the approval events before the page reads it.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(adminGet(t, w, "/api/v1/sessions/"+sid1), `"approval_state":"executed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("session %s: no executed approval event recorded", sid1)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// ---- sessions, filtered ----
	present := func(testid string) string {
		return `document.querySelector('[data-testid="` + testid + `"]') !== null`
	}
	var has1, has2 bool
	err = chromedp.Run(ctx,
		chromedp.Click(sel("tab-sessions"), chromedp.ByQuery),
		chromedp.SendKeys(sel("sf-database"), "vectors", chromedp.ByQuery),
		chromedp.SetValue(sel("sf-since"), "1h", chromedp.ByQuery),
		chromedp.SetValue(sel("sf-decision"), "denied", chromedp.ByQuery),
		chromedp.Click(sel("sessions-refresh"), chromedp.ByQuery),
		chromedp.WaitVisible(sel("session-"+sid2), chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sessions, decision denied: %v", err)
	}
	// The tab's own unfiltered load may render before the filtered one:
	// wait (bounded) for the list to settle without sid1.
	err = chromedp.Run(ctx, chromedp.Poll(present("session-"+sid2)+` && !(`+present("session-"+sid1)+`)`, &has1,
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		t.Fatalf("the decision=denied filter lists %s (its statement was approved): %v", sid1, err)
	}
	var row1, verify string
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`document.querySelector('[data-testid="sf-decision"]').selectedIndex = 0`, nil),
		chromedp.Click(sel("sessions-refresh"), chromedp.ByQuery),
		chromedp.WaitVisible(sel("session-"+sid1), chromedp.ByQuery),
		chromedp.Evaluate(present("session-"+sid2), &has2),
		chromedp.Text(sel("session-"+sid1), &row1, chromedp.ByQuery),
		chromedp.Click(sel("verify"), chromedp.ByQuery),
		chromedp.Poll(`(() => { const e = document.querySelector('[data-testid="verify-status"]'); return e && e.textContent.startsWith("record ") ? e.textContent : null; })()`, &verify, chromedp.WithPollingTimeout(20*time.Second)),
	)
	if err != nil {
		t.Fatalf("sessions: %v", err)
	}
	if !has2 {
		t.Fatalf("session %s is not listed without the decision filter", sid2)
	}
	// user, database, "active", statements, denied, errors
	if !regexp.MustCompile(requester + `\s+dba\s+.*vectors\s+.*active\s+\d+\s+0\s+1`).MatchString(row1) {
		t.Fatalf("the session row reads %q", row1)
	}
	if !strings.HasPrefix(verify, "record ok") {
		t.Fatalf("verify status %q", verify)
	}
	screenshot(t, ctx, "ui-sessions.png")

	// ---- a replay ----
	var timeline, firstOffset string
	var approvedBadges, rowCells int
	err = chromedp.Run(ctx,
		chromedp.Click(sel("replay-"+sid1), chromedp.ByQuery),
		chromedp.WaitVisible(`#replay-body li`, chromedp.ByQuery),
		chromedp.Text(sel("replay-body"), &timeline, chromedp.ByQuery),
		chromedp.Text(`#replay-body li .offset`, &firstOffset, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('#replay-body .badge-approved').length`, &approvedBadges),
		chromedp.Evaluate(`document.querySelectorAll('#replay-body table.rows tbody td').length`, &rowCells),
		chromedp.Evaluate(`document.getElementById("pwned") !== null`, &pwned),
	)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if firstOffset != "+0.000 s" || approvedBadges == 0 || rowCells != 6 || pwned {
		t.Fatalf("replay: first offset %q, %d approved badges, %d result cells, markup rendered %v", firstOffset, approvedBadges, rowCells, pwned)
	}
	for _, want := range []string{"session start", "doc 1", "doc 3", table + "_missing", "hold", id1, approver, "executed", "DELETE FROM " + table} {
		if !strings.Contains(timeline, want) {
			t.Fatalf("the replay lacks %q:\n%s", want, timeline)
		}
	}
	screenshot(t, ctx, "ui-replay.png")

	// ---- live sessions ----
	var liveUser string
	err = chromedp.Run(ctx,
		chromedp.Click(sel("tab-live"), chromedp.ByQuery),
		chromedp.WaitVisible(sel("live-"+sid1), chromedp.ByQuery),
		chromedp.WaitVisible(sel("live-"+sid2), chromedp.ByQuery),
		chromedp.Text(sel("live-user-"+sid1), &liveUser, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("live: %v", err)
	}
	if liveUser != requester {
		t.Fatalf("live user %q", liveUser)
	}
	screenshot(t, ctx, "ui-live.png")
	usable(t, conn)
	usable(t, conn2)
}

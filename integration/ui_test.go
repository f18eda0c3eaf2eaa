package integration

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"github.com/pgwarden/pgwarden/approvals"
)

// chromiumPath finds the system Chromium (scripts/setup-browser.sh installs
// it). Missing: skipped locally, a failure in CI.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "chromium is not installed (scripts/setup-browser.sh)")
	return ""
}

// newBrowser starts a headless Chromium (a fresh profile per test) and
// returns its context, bounded by d, and what stops it.
func newBrowser(t *testing.T, chrome string, d time.Duration, extra ...chromedp.ExecAllocatorOption) (context.Context, func()) {
	t.Helper()
	// Not t.TempDir: Chromium's helper processes can still write to the
	// profile for a moment after the browser has exited, and TempDir's
	// RemoveAll then fails the test ("directory not empty"). The profile
	// is removed with retries instead.
	profile, err := os.MkdirTemp("", "pgwarden-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	}
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancel := context.WithTimeout(bctx, d)
	return ctx, func() { cancel(); bcancel(); acancel() }
}

// The approver's page in a real headless Chromium: paste a dba-2 token,
// see the pending request (its SQL rendered as text, never as HTML),
// click Approve, and the DELETE held in another session completes.
func TestUIApproveHeldDelete(t *testing.T) {
	chrome := chromiumPath(t)
	w := startGateway(t, nil)
	const table, n = "ap_ui", 25
	approvalTable(t, table, n)
	conn, notices := dbaConn(t, w, requester, pgx.QueryExecModeSimpleProtocol)
	// The SQL carries markup in a comment: the page must show it as text.
	sql := `DELETE FROM ` + table + ` /* <b id="pwned">x</b> */`
	id, res := startHeld(t, context.Background(), conn, notices, sql)

	ctx, cancel := newBrowser(t, chrome, 90*time.Second)
	defer cancel()
	sel := func(testid string) string { return `[data-testid="` + testid + `"]` }

	var state, sqlText, status string
	var pwned bool
	err := chromedp.Run(ctx,
		chromedp.Navigate(w.AdminURL+"/ui/"),
		chromedp.Click(`[data-testid="token-auth"] summary`, chromedp.ByQuery),
		chromedp.WaitVisible(sel("token-input"), chromedp.ByQuery),
		chromedp.SendKeys(sel("token-input"), w.Issuer.token(t, approver, "dba"), chromedp.ByQuery),
		chromedp.Click(sel("token-save"), chromedp.ByQuery),
		chromedp.WaitVisible(sel("approval-"+id), chromedp.ByQuery),
		chromedp.Text(sel("state-"+id), &state, chromedp.ByQuery),
		chromedp.Text(sel("sql-"+id), &sqlText, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("pwned") !== null`, &pwned),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if state != "pending" || !strings.Contains(sqlText, sql) {
		t.Fatalf("the page shows state %q, sql %q", state, sqlText)
	}
	if pwned {
		t.Fatal("the page rendered the statement's markup as HTML")
	}
	notDone(t, res)

	clicked := time.Now()
	err = chromedp.Run(ctx,
		chromedp.SendKeys(sel("comment-"+id), "approved in the browser", chromedp.ByQuery),
		chromedp.Click(sel("approve-"+id), chromedp.ByQuery),
		// The pending list is reloaded after the decision: the row is gone.
		// (The "is now approved" status line is replaced at once by the
		// reload's "loaded N approvals", so the test does not wait for it.)
		chromedp.WaitNotPresent(sel("approval-"+id), chromedp.ByQuery),
		chromedp.Text(sel("status"), &status, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("approve in the browser: %v", err)
	}
	r := await(t, res, 30*time.Second)
	if r.err != nil || r.tag.RowsAffected() != n {
		t.Fatalf("the DELETE approved in the UI: %v, %v", r.tag, r.err)
	}
	t.Logf("UI status %q; DELETE finished %v after the click", status, r.at.Sub(clicked))
	if c := countRows(t, table); c != 0 {
		t.Fatalf("%d rows left upstream", c)
	}
	a := getApproval(t, w, id)
	if a.State != approvals.Executed || a.DecidedBy != approver || a.Comment != "approved in the browser" {
		t.Fatalf("after the UI approval: %+v", a)
	}

	// The executed request under the "executed" filter.
	var shown string
	err = chromedp.Run(ctx,
		chromedp.SetValue(sel("state-filter"), "executed", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('[data-testid="state-filter"]').dispatchEvent(new Event("change"))`, nil),
		// One lookup per poll: the table may be re-rendered (a refresh)
		// between finding a row and reading it.
		chromedp.Poll(`(() => { const e = document.querySelector('[data-testid="state-`+id+`"]'); return e && e.textContent === "executed" ? e.textContent : null; })()`, &shown, chromedp.WithPollingTimeout(10*time.Second)),
	)
	if err != nil || shown != "executed" {
		t.Fatalf("executed filter: %q, %v", shown, err)
	}
	usable(t, conn)
}

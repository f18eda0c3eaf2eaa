package approvals_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/identity"
	"github.com/pgwarden/pgwarden/internal/pgerr"
)

var (
	kbDBA   = identity.Principal{User: "kim", Groups: []string{"kb-dba"}}
	supLead = identity.Principal{User: "sam", Groups: []string{"support-lead"}}
)

// profileRules: default rules (approvers dba, 5s, wait), kb (kb-dba, 3m,
// retry), support (support-lead, 1m, wait, require_reason).
func profileOpts() []Option {
	kb := config.Approval{Approvers: []string{"kb-dba"}, Timeout: 3 * time.Minute, Mode: ModeRetry}
	sup := config.Approval{Approvers: []string{"support-lead"}, Timeout: time.Minute, Mode: ModeWait, RequireReason: true}
	return []Option{WithProfileRules("kb", kb), WithProfileRules("support", sup)}
}

func preq(profile, user, sql string) Request {
	r := req(user, "s-"+profile, sql)
	r.Profile, r.Database = profile, profile
	return r
}

func TestProfileRulesModeTimeoutReason(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait), profileOpts()...)
	for _, c := range []struct {
		profile string
		mode    string
		timeout time.Duration
	}{{"kb", ModeRetry, 3 * time.Minute}, {"support", ModeWait, time.Minute}, {"", ModeWait, 5 * time.Second}, {"other", ModeWait, 5 * time.Second}} {
		if f.m.ModeFor(c.profile) != c.mode || f.m.TimeoutFor(c.profile) != c.timeout {
			t.Errorf("profile %q: ModeFor %s TimeoutFor %v, want %s %v", c.profile, f.m.ModeFor(c.profile), f.m.TimeoutFor(c.profile), c.mode, c.timeout)
		}
		a := hold(t, f.m, preq(c.profile, "ann", "DELETE FROM t"))
		if a.Profile != c.profile || a.Mode != c.mode || a.ExpiresAt.Sub(a.CreatedAt) != c.timeout {
			t.Errorf("profile %q: held %s profile %q expires after %v", c.profile, a.Mode, a.Profile, a.ExpiresAt.Sub(a.CreatedAt))
		}
		got, err := f.m.Get(context.Background(), a.ID)
		if err != nil || got.Profile != c.profile {
			t.Errorf("stored profile %q, %v", got.Profile, err)
		}
	}
	if f.m.Mode() != ModeWait || f.m.Timeout() != 5*time.Second {
		t.Fatalf("Mode/Timeout must stay the default rules': %s %v", f.m.Mode(), f.m.Timeout())
	}
	// support requires a reason, the default rules do not
	r := preq("support", "ann", "DELETE FROM t")
	r.Reason = ""
	if _, err := f.m.Hold(context.Background(), r); !errors.Is(err, ErrReasonRequired) {
		t.Fatalf("support without reason: %v", err)
	} else if pe, ok := pgerr.As(err); !ok || pe.Code != pgerr.InsufficientPrivilege {
		t.Fatalf("support without reason: %v", err)
	}
	r.Profile = "kb"
	if _, err := f.m.Hold(context.Background(), r); err != nil {
		t.Fatalf("kb without reason: %v", err)
	}
}

func TestProfileApprovers(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait), profileOpts()...)
	ctx := context.Background()
	kb := hold(t, f.m, preq("kb", "ann", "DELETE FROM t"))
	sup := hold(t, f.m, preq("support", "ann", "DELETE FROM t"))
	def := hold(t, f.m, preq("", "ann", "DELETE FROM t"))
	other := hold(t, f.m, preq("other", "ann", "DELETE FROM t"))

	_, err := f.m.Approve(ctx, kb.ID, supLead, "")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "profile kb") || !strings.Contains(err.Error(), "kb-dba") {
		t.Fatalf("support's approver on kb: %v, want ErrForbidden naming kb's approver groups", err)
	}
	if _, err := f.m.Deny(ctx, kb.ID, dba1, "no"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a default approver on kb: %v", err)
	}
	if _, err := f.m.Approve(ctx, sup.ID, kbDBA, ""); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "support-lead") {
		t.Fatalf("kb's approver on support: %v", err)
	}
	for _, id := range []string{def.ID, other.ID} {
		if _, err := f.m.Approve(ctx, id, kbDBA, ""); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "dba") {
			t.Fatalf("kb's approver on a default-rules request: %v", err)
		}
	}
	if _, err := f.m.Approve(ctx, kb.ID, analyst, ""); !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "approver group") {
		t.Fatalf("non-approver: %v", err)
	}
	if got, _ := f.m.Get(ctx, kb.ID); got.State != Pending {
		t.Fatalf("refused decisions changed kb's request to %s", got.State)
	}
	now := time.Now()
	a, err := f.m.Approve(ctx, kb.ID, kbDBA, "ok")
	if err != nil || a.State != Approved {
		t.Fatalf("kb's approver on kb: %+v %v", a, err)
	}
	// kb is retry mode: the approval is valid for kb's timeout
	if d := a.ExpiresAt.Sub(now); d < 3*time.Minute-time.Second || d > 3*time.Minute+time.Second {
		t.Fatalf("retry validity %v, want kb's 3m", d)
	}
	if a, err := f.m.Deny(ctx, sup.ID, supLead, "no"); err != nil || a.State != Denied {
		t.Fatalf("support's approver on support: %v", err)
	}
	for _, id := range []string{def.ID, other.ID} {
		if _, err := f.m.Approve(ctx, id, dba2, ""); err != nil {
			t.Fatalf("default approver on a default-rules request: %v", err)
		}
	}

	if !f.m.IsApprover(kbDBA) || !f.m.IsApprover(supLead) || !f.m.IsApprover(dba1) || f.m.IsApprover(analyst) {
		t.Fatal("IsApprover is not 'approves for some profile'")
	}
	for _, c := range []struct {
		p       identity.Principal
		profile string
		want    bool
	}{{kbDBA, "kb", true}, {kbDBA, "support", false}, {kbDBA, "", false}, {supLead, "support", true},
		{dba1, "", true}, {dba1, "other", true}, {dba1, "kb", false}, {analyst, "kb", false}} {
		if got := f.m.IsApproverFor(c.p, c.profile); got != c.want {
			t.Errorf("IsApproverFor(%s, %q) = %v", c.p.User, c.profile, got)
		}
	}
}

// Expiry notes name the profile's own timeout.
func TestProfileExpiryNote(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	f := newFixture(t, testCfg(ModeWait), append(profileOpts(), WithClock(func() time.Time { return clock() }))...)
	a := hold(t, f.m, preq("support", "ann", "DELETE FROM t"))
	b := hold(t, f.m, preq("", "ann", "DELETE FROM t"))
	now = now.Add(2 * time.Minute)
	list, err := f.m.List(context.Background(), Expired, 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("expired: %v %v", list, err)
	}
	for _, x := range list {
		want := map[string]string{a.ID: "not decided within 1m0s", b.ID: "not decided within 5s"}[x.ID]
		if x.Note != want {
			t.Errorf("%s (profile %q) note %q, want %q", x.ID, x.Profile, x.Note, want)
		}
	}
}

// Retry-mode claims match only within the profile the request was held in.
func TestProfileClaim(t *testing.T) {
	f := newFixture(t, testCfg(ModeRetry), profileOpts()...)
	ctx := context.Background()
	sql := "DELETE FROM t WHERE id = $1"
	r := preq("kb", "ann", sql)
	r.Params = []string{"1"}
	a := hold(t, f.m, r)
	if _, err := f.m.Approve(ctx, a.ID, kbDBA, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.m.ClaimFor("support", "ann", "kb", sql, []string{"1"}); ok {
		t.Fatal("claimed from another profile")
	}
	if _, ok := f.m.Claim("ann", "kb", sql, []string{"1"}); ok {
		t.Fatal("claimed without a profile")
	}
	if got, ok := f.m.ClaimFor("kb", "ann", "kb", sql, []string{"1"}); !ok || got.ID != a.ID {
		t.Fatal("the same profile's re-run did not claim")
	}
	if FingerprintProfile("", "u", "db", "s", nil) != Fingerprint("u", "db", "s", nil) {
		t.Fatal("a fingerprint without profile changed")
	}
	if FingerprintProfile("kb", "u", "db", "s", nil) == Fingerprint("u", "db", "s", nil) {
		t.Fatal("the profile is not in the fingerprint")
	}
}

// The webhook of a profile with one is notified for its requests; the
// default's for the others.
func TestProfileWebhook(t *testing.T) {
	hits := make(chan string, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var msg struct{ Text string }
		_ = json.Unmarshal(b, &msg)
		hits <- r.URL.Path + " " + msg.Text
	}))
	defer srv.Close()
	cfg := testCfg(ModeWait)
	cfg.Webhook = srv.URL + "/default"
	kb := config.Approval{Approvers: []string{"kb-dba"}, Webhook: srv.URL + "/kb"}
	sup := config.Approval{Approvers: []string{"support-lead"}}
	f := newFixture(t, cfg, WithProfileRules("kb", kb), WithProfileRules("support", sup))
	for _, c := range []struct{ profile, path string }{{"kb", "/kb"}, {"support", "/default"}, {"", "/default"}} {
		a := hold(t, f.m, preq(c.profile, "ann", "DELETE FROM t"))
		select {
		case h := <-hits:
			if !strings.HasPrefix(h, c.path+" ") || !strings.Contains(h, a.ID) {
				t.Fatalf("profile %q notified %q, want %s", c.profile, h, c.path)
			}
			if c.profile != "" && !strings.Contains(h, "(profile "+c.profile+")") {
				t.Fatalf("notification does not name the profile: %s", h)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("profile %q: no webhook delivery", c.profile)
		}
	}
}

// GET /api/v1/approvals?profile=P lists that profile's requests; answers
// carry profile.
func TestAPIProfileFilter(t *testing.T) {
	m := newFixture(t, testCfg(ModeWait), profileOpts()...).m
	kb := hold(t, m, preq("kb", "ann", "DELETE FROM t"))
	hold(t, m, preq("support", "ann", "DELETE FROM t"))
	hold(t, m, preq("", "ann", "DELETE FROM t"))
	h := m.APIHandler()
	get := func(q string) []map[string]any {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/approvals"+q, nil)
		r = r.WithContext(identity.WithPrincipal(r.Context(), kbDBA))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, w.Code, w.Body)
		}
		var out []map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if all := get(""); len(all) != 3 {
		t.Fatalf("all: %d", len(all))
	}
	got := get("?profile=kb&state=pending")
	if len(got) != 1 || got[0]["id"] != kb.ID || got[0]["profile"] != "kb" {
		t.Fatalf("?profile=kb: %v", got)
	}
	if got := get("?profile=nope"); len(got) != 0 {
		t.Fatalf("?profile=nope: %v", got)
	}
}

// `pgwarden approvals list` has a PROFILE column and --profile filters;
// show prints the profile.
func TestCLIProfile(t *testing.T) {
	f := newFixture(t, testCfg(ModeWait), profileOpts()...)
	srv := httptest.NewServer(withTestAuth(f.m.APIHandler()))
	defer srv.Close()
	kb := hold(t, f.m, preq("kb", "ann", "DELETE FROM t"))
	sup := hold(t, f.m, preq("support", "ann", "DELETE FROM t"))
	def := hold(t, f.m, preq("", "ann", "DELETE FROM t"))
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := RunCLI(context.Background(), args, &out, &errb, &Client{BaseURL: srv.URL, Token: "tok-dba2", HTTP: srv.Client()})
		return code, out.String() + errb.String()
	}
	code, out := run("list")
	if code != 0 || !strings.Contains(out, "PROFILE") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		for id, want := range map[string]string{kb.ID: " kb ", sup.ID: " support ", def.ID: " - "} {
			if strings.HasPrefix(l, id) && !strings.Contains(l, want) {
				t.Fatalf("row of %s lacks %q: %q", id, want, l)
			}
		}
	}
	code, out = run("list", "--profile", "kb")
	if code != 0 || !strings.Contains(out, kb.ID) || strings.Contains(out, sup.ID) || strings.Contains(out, def.ID) {
		t.Fatalf("list --profile kb: %d\n%s", code, out)
	}
	code, out = run("show", sup.ID)
	if code != 0 || !strings.Contains(out, "profile:") || !strings.Contains(out, "support") {
		t.Fatalf("show: %d\n%s", code, out)
	}
}

// The web page shows the profile (as text) and can filter by it.
func TestUIProfile(t *testing.T) {
	srv := httptest.NewServer(UIHandler())
	defer srv.Close()
	get := func(p string) string {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if html := get("/ui/"); !strings.Contains(html, "<th>Profile</th>") || !strings.Contains(html, `data-testid="profile-filter"`) {
		t.Fatal("the approvals table has no Profile column or filter")
	}
	js := get("/ui/app.js")
	for _, want := range []string{`td(a.profile`, `"profile-" + a.id`, `params.set("profile"`} {
		if !strings.Contains(js, want) {
			t.Fatalf("app.js lacks %s", want)
		}
	}
	if strings.Contains(js, "innerHTML") {
		t.Fatal("app.js renders HTML from data")
	}
}

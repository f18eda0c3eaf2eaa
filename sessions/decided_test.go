package sessions

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// An approval decided by an agent acting for a person records both, and
// the chain verifies; replay and the OCSF export name the agent; an
// undelegated decision has no decided_by_actor key.
func TestDecidedByActor(t *testing.T) {
	dir := t.TempDir()
	r := openT(t, testCfg(), dir)
	s := r.Start(StartInfo{ID: "s1", User: "dave@example.com", Database: "vectors"})
	must(t, s.Approval(ApprovalEvent{ID: "ap1", State: "approved", SQL: "DELETE FROM t", Actions: []string{"delete"},
		DecidedBy: "dba-2@example.com", DecidedByActor: "review-bot"}))
	must(t, s.Approval(ApprovalEvent{ID: "ap2", State: "denied", SQL: "DROP TABLE t", Actions: []string{"drop"},
		DecidedBy: "dba-3@example.com", Reason: "no"}))
	must(t, s.End("client_closed"))
	must(t, r.Close())
	if ok, p, out := verifyT(t, dir); !ok {
		t.Fatalf("verify: %v %s", p, out)
	}
	st, _ := OpenStore(dir)
	evs, err := st.Get("s1")
	must(t, err)
	got := map[string]string{}
	for _, ev := range evs {
		if ev.Type == TypeApproval {
			got[ev.ApprovalID] = ev.DecidedBy + "|" + ev.DecidedByActor
		}
	}
	if got["ap1"] != "dba-2@example.com|review-bot" || got["ap2"] != "dba-3@example.com|" {
		t.Fatalf("approval events: %v", got)
	}
	all := readAll(t, dir)
	if !strings.Contains(all, `"decided_by":"dba-2@example.com","decided_by_actor":"review-bot"`) {
		t.Fatalf("decided_by_actor is not right after decided_by:\n%s", all)
	}
	if strings.Count(all, `"decided_by_actor"`) != 1 {
		t.Fatalf("an undelegated decision has a decided_by_actor key:\n%s", all)
	}
	var out bytes.Buffer
	must(t, st.Replay(context.Background(), &out, "s1", false))
	if !strings.Contains(out.String(), "approval ap1 approved by dba-2@example.com via review-bot") {
		t.Fatalf("replay does not name the agent:\n%s", out.String())
	}
	out.Reset()
	must(t, st.Export(&out, time.Time{}, "ocsf"))
	if !strings.Contains(out.String(), `"decided_by_actor":"review-bot"`) {
		t.Fatalf("OCSF export lacks decided_by_actor:\n%s", out.String())
	}
}

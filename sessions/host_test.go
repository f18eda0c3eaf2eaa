package sessions

import (
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestHostSetHealthyIfKeepsANewerFailure: the probe's compare-and-swap.
// SetHealthyIf clears the health only while the failure in force is the
// one its caller read before probing; one reported meanwhile stands.
func TestHostSetHealthyIfKeepsANewerFailure(t *testing.T) {
	r := newRecorder(testCfg(), zerolog.Nop(), nil)
	h := host{r}
	if h.Health() != nil || !h.SetHealthyIf(nil) || r.Healthy() != nil {
		t.Fatalf("a healthy recorder: Health %v, Healthy %v", h.Health(), r.Healthy())
	}
	h.SetUnhealthy(errors.New("first"))
	was := h.Health()
	if !errors.Is(was, ErrUnavailable) || !errors.Is(r.Healthy(), ErrUnavailable) {
		t.Fatalf("Health %v, Healthy %v: want ErrUnavailable", was, r.Healthy())
	}
	if h.SetHealthyIf(nil) {
		t.Fatal("SetHealthyIf(nil) cleared a failure")
	}
	h.SetUnhealthy(errors.New("second")) // while the probe ran
	if h.SetHealthyIf(was) {
		t.Fatal("SetHealthyIf cleared a failure reported after its caller read Health")
	}
	if err := r.Healthy(); err == nil || !strings.Contains(err.Error(), "second") {
		t.Fatalf("Healthy() = %v, want the second failure", err)
	}
	if !h.SetHealthyIf(h.Health()) || h.Health() != nil || r.Healthy() != nil {
		t.Fatalf("SetHealthyIf with the failure in force: Healthy() = %v", r.Healthy())
	}
}

package gateway

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgwarden/pgwarden/internal/pgerr"
	"github.com/pgwarden/pgwarden/internal/sharedstore"
)

// An approvals-store call that failed because the shared store is down
// reaches the client as 08001 (the SPEC's code), anything else as the
// caller's own refusal; the cause stays out of the message.
func TestStoreRefusal(t *testing.T) {
	down := fmt.Errorf("approvals: %w: dial tcp 10.0.0.9:5432: connection refused", sharedstore.ErrUnreachable)
	got := storeRefusal(down, pgerr.New(pgerr.InsufficientPrivilege, "pgwarden: not stored"))
	if got.Code != pgerr.UnableToConnect || !strings.HasPrefix(got.Message, "pgwarden: ") || strings.Contains(got.Message, "10.0.0.9") {
		t.Fatalf("store down: %s %q", got.Code, got.Message)
	}
	other := storeRefusal(errors.New("approval is executed"), pgerr.New(pgerr.QueryCanceled, "pgwarden: approval x was already used"))
	if other.Code != pgerr.QueryCanceled || other.Message != "pgwarden: approval x was already used" {
		t.Fatalf("other failure: %s %q", other.Code, other.Message)
	}
}

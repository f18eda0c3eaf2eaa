package approvals_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the package starts (webhook deliveries, waits) has an
// owner that waits for it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package sessions

import (
	"os"
	"testing"
)

// stopShared stops the PostgreSQL server sharedDB started (if any).
var stopShared = func() {}

func TestMain(m *testing.M) {
	code := m.Run()
	stopShared()
	os.Exit(code)
}

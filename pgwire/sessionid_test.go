package pgwire

import (
	"regexp"
	"testing"
)

// TestSessionIDs: IDs are 24 lowercase base32 characters — URL-safe, and
// never starting with '-', which `pgwarden sessions show ID` would take for
// a flag (base64url IDs did, one time in 64) — and do not repeat.
func TestSessionIDs(t *testing.T) {
	re := regexp.MustCompile(`^[a-z2-7]{24}$`)
	seen := map[string]bool{}
	for i := 0; i < 5000; i++ {
		id, err := newSessionID()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(id) {
			t.Fatalf("session ID %q", id)
		}
		if seen[id] {
			t.Fatalf("session ID %q twice", id)
		}
		seen[id] = true
	}
}

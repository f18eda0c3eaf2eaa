package boltstore_test

import (
	"testing"

	"github.com/pgwarden/pgwarden/approvals"
	"github.com/pgwarden/pgwarden/approvals/boltstore"
	"github.com/pgwarden/pgwarden/approvals/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) approvals.Store {
		s, err := boltstore.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

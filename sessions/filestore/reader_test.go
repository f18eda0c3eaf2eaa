package filestore_test

import (
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/sessions"
	"github.com/pgwarden/pgwarden/sessions/filestore"
	"github.com/pgwarden/pgwarden/sessions/logtest"
)

var _ sessions.Log = (*filestore.Reader)(nil)

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) (*sessions.Recorder, sessions.Log) {
		dir := t.TempDir()
		r, err := sessions.Open(config.Default().Recording, config.Store{Dir: dir}, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r, filestore.NewReader(filepath.Join(dir, "sessions"))
	})
}

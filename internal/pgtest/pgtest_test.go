package pgtest

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartWithVector(t *testing.T) {
	c := StartT(t, Options{})
	ctx := context.Background()
	if err := c.CreateDB(ctx, "vectors"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "vectors", "CREATE ROLE r LOGIN PASSWORD 'secret-pw'"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.DSN("r", "secret-pw", "vectors"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var d float64
	if err := conn.QueryRow(ctx, "SELECT '[1,2]'::vector <-> '[1,3]'::vector").Scan(&d); err != nil || d != 1 {
		t.Fatalf("distance = %v, %v", d, err)
	}
	if _, err := pgx.Connect(ctx, c.DSN("r", "wrong", "vectors")); err == nil {
		t.Fatal("wrong password accepted: scram not enforced")
	}
}

// TestStartOnTakenPort: a cluster asked for a port another cluster serves
// fails with errPortTaken instead of taking the other server's answers for
// its own readiness (the retry of Start on a free port relies on this).
func TestStartOnTakenPort(t *testing.T) {
	a := StartT(t, Options{})
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Start(ctx, filepath.Join(dir, "data"), Options{Port: a.Port})
	if err == nil {
		b.Stop()
		t.Fatalf("a second cluster on port %d reported ready", a.Port)
	}
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("error is not errPortTaken: %v", err)
	}
}

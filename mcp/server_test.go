package mcp

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"
)

// TestServeStdioSessions drives ServeStdio with the SDK's client over
// pipes, without a database: the gateway address refuses connections, so
// calls fail with 08006 (and reconnect on the next call), limits refuse
// before any connection, concurrent calls of one session take turns, and
// the session's state is gone once the client hangs up.
func TestServeStdioSessions(t *testing.T) {
	var dials sync.Map
	s := New(Options{
		ConnConfig: func(db string) (*pgx.ConnConfig, error) {
			dials.Store(db, true)
			return pgx.ParseConfig("postgres://127.0.0.1:1/" + db + "?sslmode=disable&connect_timeout=2")
		},
		MaxRows: 10, MaxBytes: 1 << 20, Limits: Limits{CallsPerMinute: 4}, Log: zerolog.Nop(),
	})
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	served := make(chan error, 1)
	caller := Caller{User: "agent@example.com", Database: "vectors", Token: func(context.Context) (string, error) { return "tok", nil }}
	go func() { served <- s.ServeStdio(context.Background(), caller, sr, sw) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "unit", Version: "1"}, nil).Connect(ctx, &sdk.IOTransport{Reader: cr, Writer: cw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	texts := make([]string, 4)
	for i := range texts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "query", Arguments: map[string]any{"sql": "SELECT 1"}})
			if err != nil || !res.IsError {
				t.Errorf("call %d: %v %+v", i, err, res)
				return
			}
			texts[i] = res.Content[0].(*sdk.TextContent).Text
		}()
	}
	wg.Wait()
	for i, text := range texts {
		if !strings.Contains(text, "(SQLSTATE 08006)") {
			t.Errorf("call %d: %s", i, text)
		}
	}
	if _, ok := dials.Load("vectors"); !ok {
		t.Fatal("no connection was attempted to the caller's database")
	}
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "list_tables"})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*sdk.TextContent).Text, "4 calls per minute for agent@example.com") {
		t.Fatalf("the fifth call: %v %+v", err, res)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 4 {
		t.Fatalf("tools: %v %+v", err, tools)
	}
	for _, tl := range tools.Tools {
		if tl.Description == "" || tl.InputSchema == nil {
			t.Errorf("%s: no description or input schema", tl.Name)
		}
	}
	cs.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("ServeStdio: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStdio did not return after the client hung up")
	}
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d sessions left after Close", n)
	}
}

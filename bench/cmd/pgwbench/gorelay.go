package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// The go-relay target (-baseline) calibrates the benchmark: a plain TCP
// byte relay in Go — one goroutine per direction, a 16 KiB buffer each, no
// parsing, no policy, no masking, no recording — run as a separate process
// (this binary re-executed with -relay) against the same PostgreSQL. Its CPU
// per transaction is the cost of relaying through Go's netpoller and
// scheduler alone: the floor under any relay built on net.Conn goroutines,
// pgwarden's included.

// startGoRelay re-executes this binary as the relay and waits for it:
// mode "go" (goroutines on net.Conn) or "epoll" (epollrelay.go).
func startGoRelay(ctx context.Context, pg *pgtest.Cluster, direct *target, mode string) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(self, "-relay", fmt.Sprintf("%s:%d", pg.Host, pg.Port), "-relay-listen", addr, "-relay-mode", mode)
	// The same runtime tuning pgwarden serve applies to itself (cmd/pgwarden/runtime.go).
	cmd.Env = append(os.Environ(), "GODEBUG=schedtrace=2147483647")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	t := &target{Name: mode + "-relay", Host: "127.0.0.1", Port: port, User: direct.User, Password: direct.Password}
	if err := launch(ctx, cmd, t, 15*time.Second, nil); err != nil {
		return nil, fmt.Errorf("%s-relay: %w", mode, err)
	}
	return t, nil
}

// runRelay is the relay process: it serves until killed.
func runRelay(listen, upstream string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go relayConn(c, upstream)
	}
}

func relayConn(c net.Conn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.CopyBuffer(u, onlyReader{c}, make([]byte, 16<<10))
		_ = u.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.CopyBuffer(c, onlyReader{u}, make([]byte, 16<<10))
	<-done
}

// onlyReader hides io.WriterTo so io.CopyBuffer does plain read and write
// calls (no splice), as a message relay does.
type onlyReader struct{ io.Reader }

package mcp

import (
	"context"
	"errors"
	"io"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// ServeStdio serves one MCP session over in and out (newline-delimited
// JSON-RPC, the stdio transport) as caller, until in ends or ctx is
// cancelled; then it closes the session's gateway connection. Nothing but
// MCP messages is written to out.
func (s *Server) ServeStdio(ctx context.Context, caller Caller, in io.ReadCloser, out io.WriteCloser) error {
	s.mu.Lock()
	s.stdio = &caller
	s.mu.Unlock()
	err := s.sdk.Run(ctx, &sdk.IOTransport{Reader: in, Writer: out})
	s.Close()
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Command pgwarden is the one binary of pgwarden: the gateway (serve, dev)
// and the tools around it (token, approvals, sessions, policy, login, psql, mcp).
// It wires packages together from the configuration and does nothing else.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError marks bad usage (exit 2).
type usageError struct{ error }

// exitError carries an exit status chosen by a command (e.g. verify → 1).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	tuneRuntime()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and maps errors to the SPEC's exit codes:
// 0 ok, 1 runtime failure, 2 bad usage or bad configuration.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "pgwarden:", err)
	var ue usageError
	if errors.As(err, &ue) || config.IsConfigError(err) {
		return 2
	}
	return 1
}

type globals struct {
	logFormat string
	logLevel  string
	stdout    io.Writer
	stderr    io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "pgwarden",
		Short:         "Zero-trust PostgreSQL + pgvector gateway: OIDC login, per-session credentials, policy, approvals, masking, recording",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "log format: json | console (default: config log.format, else json)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "log level: debug | info | warn | error")
	root.AddCommand(
		serveCmd(g), devCmd(g), tokenCmd(g), approvalsCmd(g), sessionsCmd(g),
		policyCmd(g), storeCmd(g), versionCmd(g), loginCmd(g), psqlCmd(g), mcpCmd(g),
	)
	return root
}

// logger builds the zerolog logger from flags, falling back to the config.
func (g *globals) logger(c *config.Config) zerolog.Logger {
	format, level := g.logFormat, g.logLevel
	if c != nil {
		if format == "" {
			format = c.Log.Format
		}
		if level == "" {
			level = c.Log.Level
		}
	}
	var w io.Writer = g.stderr
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: g.stderr, TimeFormat: "15:04:05"}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %d argument(s), got %d", cmd.CommandPath(), n, len(args))}
		}
		return nil
	}
}

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(g.stdout, "pgwarden", version)
			return nil
		},
	}
}

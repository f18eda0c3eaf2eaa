package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/internal/devstack"
	"github.com/pgwarden/pgwarden/internal/gateway"
	"github.com/pgwarden/pgwarden/internal/pgtest"
)

// upstream is the one PostgreSQL + pgvector every test in this package shares.
var upstream struct {
	pg       *pgtest.Cluster
	adminDSN string
}

func TestMain(m *testing.M) {
	if err := pgtest.Available(); err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "integration:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "integration: skipped:", err)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "pgwarden-it-")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	pg, err := pgtest.Start(ctx, filepath.Join(dir, "pg"), pgtest.Options{})
	if err == nil {
		upstream.pg = pg
		upstream.adminDSN, err = devstack.Provision(ctx, pg, "admin-pw-"+fmt.Sprint(time.Now().UnixNano()))
	}
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: upstream:", err)
	} else {
		code = m.Run()
	}
	if upstream.pg != nil {
		upstream.pg.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// gw is a pgwarden started for one test.
type pgwardenConfig = config.Config

type gw struct {
	Addr     string // host:port of the Postgres listener
	AdminURL string
	Cfg      *config.Config
	Issuer   *oidcIssuer
	G        *gateway.Gateway
	stop     func()
}

// baseConfig is the SPEC's example policy and masking over the seeded database.
func baseConfig(t testing.TB, is *oidcIssuer) *config.Config {
	cfg := config.Default()
	cfg.TLS = config.TLS{SelfSigned: true, Require: true}
	cfg.Upstream.Host = upstream.pg.Host
	cfg.Upstream.Port = upstream.pg.Port
	cfg.Upstream.Databases = []string{"vectors"}
	cfg.Upstream.SSLMode = "disable"
	cfg.Auth.OIDC.Issuer = is.URL
	cfg.Credentials.Native.AdminDSN = upstream.adminDSN
	cfg.Policy.Roles = devstack.DemoRoles()
	cfg.Policy.Approval.Approvers = []string{"dba"}
	cfg.Masking.HMACKey = "test-mask-key"
	// The demo rules without customers.notes: tests that need the free-text
	// column masked add its rule themselves (maskingCorpusConfig).
	cfg.Masking.Rules = slices.DeleteFunc(devstack.DemoMaskRules(), func(r config.MaskRule) bool {
		return r.Table == "public.customers" && r.Column == "notes"
	})
	cfg.Store.Dir = t.TempDir()
	cfg.Log.Level = "warn"
	return cfg
}

// startGateway runs pgwarden in process with baseConfig changed by mutate,
// logging warnings and above to the test log.
func startGateway(t testing.TB, mutate func(*config.Config)) *gw {
	t.Helper()
	return startGatewayWith(t, gwOptions{Mutate: mutate})
}

// gwOptions are startGatewayWith's knobs; the zero value is startGateway(t, nil).
type gwOptions struct {
	Mutate func(*config.Config) // changes baseConfig before validation
	// Log, when set, receives the gateway's whole log at debug level
	// (warnings and above still go to the test log too).
	Log io.Writer
}

// startGatewayWith runs pgwarden in process as opts say and stops it at
// cleanup.
func startGatewayWith(t testing.TB, opts gwOptions) *gw {
	t.Helper()
	is := newIssuer(t)
	cfg := baseConfig(t, is)
	if opts.Mutate != nil {
		opts.Mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Admin.Listen = wl.Addr().String(), al.Addr().String()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	if opts.Log != nil {
		log = zerolog.New(zerolog.MultiLevelWriter(opts.Log, warnOnly{zerolog.NewTestWriter(t)})).Level(zerolog.DebugLevel)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, gateway.Options{Log: log})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, wl, al) }()
	w := &gw{Addr: cfg.Listen, AdminURL: "http://" + cfg.Admin.Listen, Cfg: cfg, Issuer: is, G: g}
	w.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop within 20s")
		}
	}
	t.Cleanup(w.stop)
	return w
}

// warnOnly passes warnings and above to w.
type warnOnly struct{ w io.Writer }

func (f warnOnly) Write(p []byte) (int, error) { return len(p), nil }

func (f warnOnly) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l < zerolog.WarnLevel {
		return len(p), nil
	}
	return f.w.Write(p)
}

func (w *gw) hostPort() (string, string) {
	h, p, _ := net.SplitHostPort(w.Addr)
	return h, p
}

// connConfig is a pgx config for user through the gateway with token.
func (w *gw) connConfig(t testing.TB, user, token string) *pgx.ConnConfig {
	t.Helper()
	h, p := w.hostPort()
	cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=vectors sslmode=require connect_timeout=10", h, p))
	if err != nil {
		t.Fatal(err)
	}
	cc.User, cc.Password = user, token
	cc.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	cc.Fallbacks = nil
	return cc
}

// connect opens a pgx connection as user in groups (a fresh valid token).
func (w *gw) connect(t testing.TB, user string, groups ...string) *pgx.Conn {
	t.Helper()
	return w.connectWith(t, w.connConfig(t, user, w.Issuer.token(t, user, groups...)))
}

// connectMode is connect with pgx's DefaultQueryExecMode set to mode.
func (w *gw) connectMode(t testing.TB, mode pgx.QueryExecMode, user string, groups ...string) *pgx.Conn {
	t.Helper()
	cc := w.connConfig(t, user, w.Issuer.token(t, user, groups...))
	cc.DefaultQueryExecMode = mode
	return w.connectWith(t, cc)
}

func (w *gw) connectWith(t testing.TB, cc *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("connect through pgwarden: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// direct opens a superuser connection straight to PostgreSQL.
func direct(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), upstream.pg.SuperDSN("vectors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// psql runs the real psql binary through the gateway and returns stdout.
func (w *gw) psql(t testing.TB, user, token string, args ...string) (string, string, error) {
	t.Helper()
	h, p := w.hostPort()
	conninfo := fmt.Sprintf("host=%s port=%s dbname=vectors user=%s sslmode=require connect_timeout=10", h, p, user)
	cmd := exec.Command("psql", append([]string{conninfo, "-X", "-v", "ON_ERROR_STOP=1", "-At"}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+token)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// sqlstate returns the SQLSTATE of a PostgreSQL error ("" if none).
func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// queryVector is the embedding of text as a pgvector literal.
func queryVector(text string) string { return devstack.VectorLiteral(devstack.Embed(text)) }

package main

import (
	"os"
	"strings"
)

// Runtime tuning for the gateway (pgwarden serve).
//
// Go's sysmon thread sleeps deeply whenever every P is idle, and the first
// system call after such an idle spell must wake it with a futex. A gateway
// in front of PostgreSQL is idle between almost every pair of messages
// (the database is doing the work), so on the kNN workload of `make bench`
// that wake-up and sysmon's own sleeps were ~12% of pgwarden's CPU
// (perf: runtime.entersyscallWakeSysmon, sysmon's notetsleep/usleep).
// GODEBUG=schedtrace=N keeps sysmon out of deep sleep (it polls, backing
// off to every 10ms when idle). That costs an idle process ~6ms of CPU per
// second (0.6% of a core, measured here) and saves ~20us per kNN
// transaction (~30% of pgwarden's CPU there), so it is on for serve, the
// data path, and not for dev (a laptop's try-out stack). N is the
// largest value, 2^31-1 ms, so the scheduler summary that schedtrace also
// prints to stderr appears only once the host's uptime passes 24.8 days,
// then every 24.8 days. docs/performance.md has the measurements.
//
// Opt out with PGWARDEN_RUNTIME_TUNING=off, or set schedtrace in GODEBUG
// yourself (any value, 0 included, is left alone).
const schedtraceMS = "2147483647"

// tunedEnv returns the environment to re-execute with, or ok=false when
// no re-execution is wanted (not a gateway command, opted out, or GODEBUG
// already names schedtrace).
func tunedEnv(args, environ []string) (env []string, ok bool) {
	if !gatewayCommand(args) {
		return nil, false
	}
	godebug, found := "", false
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PGWARDEN_RUNTIME_TUNING":
			if strings.EqualFold(v, "off") {
				return nil, false
			}
		case "GODEBUG":
			godebug, found = v, true
		}
	}
	for _, s := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(s, "="); strings.TrimSpace(k) == "schedtrace" {
			return nil, false
		}
	}
	val := "schedtrace=" + schedtraceMS
	if found && godebug != "" {
		val += "," + godebug // the user's settings come later and win where they overlap
	}
	env = make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	return append(env, "GODEBUG="+val), true
}

// gatewayCommand reports whether args run serve (global flags may come
// first).
func gatewayCommand(args []string) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return false
		case a == "--log-format" || a == "--log-level":
			i++ // its value
		case strings.HasPrefix(a, "-"):
		default:
			return a == "serve"
		}
	}
	return false
}

// tuneRuntime re-executes the process with the tuned GODEBUG when wanted;
// it returns only when nothing is to be done or the exec failed (then the
// gateway runs untuned).
func tuneRuntime() {
	if env, ok := tunedEnv(os.Args[1:], os.Environ()); ok {
		reexec(env)
	}
}

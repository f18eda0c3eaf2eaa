package main

import (
	"slices"
	"testing"
)

func TestTunedEnv(t *testing.T) {
	base := []string{"PATH=/usr/bin", "HOME=/root"}
	cases := []struct {
		name    string
		args    []string
		env     []string
		ok      bool
		godebug string
	}{
		{"serve", []string{"serve", "--config", "x.yaml"}, base, true, "GODEBUG=schedtrace=2147483647"},
		{"dev is not tuned", []string{"dev"}, base, false, ""},
		{"global flags first", []string{"--log-level", "debug", "serve"}, base, true, "GODEBUG=schedtrace=2147483647"},
		{"global flag with =", []string{"--log-format=console", "serve"}, base, true, "GODEBUG=schedtrace=2147483647"},
		{"user GODEBUG kept after", []string{"serve"}, append(slices.Clone(base), "GODEBUG=gctrace=1"), true, "GODEBUG=schedtrace=2147483647,gctrace=1"},
		{"user schedtrace wins", []string{"serve"}, append(slices.Clone(base), "GODEBUG=gctrace=1, schedtrace=0"), false, ""},
		{"opted out", []string{"serve"}, append(slices.Clone(base), "PGWARDEN_RUNTIME_TUNING=OFF"), false, ""},
		{"CLI command", []string{"sessions", "list"}, base, false, ""},
		{"serve as an argument", []string{"sessions", "show", "serve"}, base, false, ""},
		{"no command", nil, base, false, ""},
		{"after --", []string{"--", "serve"}, base, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, ok := tunedEnv(c.args, c.env)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			n := 0
			for _, kv := range env {
				if len(kv) >= 8 && kv[:8] == "GODEBUG=" {
					n++
					if kv != c.godebug {
						t.Fatalf("%s, want %s", kv, c.godebug)
					}
				}
			}
			if n != 1 || !slices.Contains(env, "PATH=/usr/bin") || !slices.Contains(env, "HOME=/root") {
				t.Fatalf("env %q", env)
			}
		})
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestMergeRounds(t *testing.T) {
	a := Result{Workload: "knn", Target: "pgwarden", Throughput: 100, N: 3, ProxyCPUus: 10, lat: []float64{1, 2, 3}}
	b := Result{Workload: "knn", Target: "pgwarden", Throughput: 300, N: 1, ProxyCPUus: 50, lat: []float64{10}}
	m := merge([]Result{a, b})
	if m.Throughput != 200 || m.N != 4 || m.Rounds != 2 {
		t.Fatalf("merged %+v", m)
	}
	if m.ProxyCPUus != 20 { // (10*3 + 50*1) / 4
		t.Fatalf("CPU per tx %v, want weighted 20", m.ProxyCPUus)
	}
	if m.P50us != 2 || m.P99us != 3 { // over all samples 1 2 3 10 (nearest rank below)
		t.Fatalf("p50 %v p99 %v", m.P50us, m.P99us)
	}
}

func TestChecks(t *testing.T) {
	rs := []Result{
		{Workload: "pgbench-S-prepared", Target: "pgwarden", Throughput: 89},
		{Workload: "pgbench-S-prepared", Target: "pgbouncer", Throughput: 100},
		{Workload: "knn", Target: "pgwarden", Throughput: 100, P50us: 1200},
		{Workload: "knn", Target: "pgbouncer", Throughput: 100},
		{Workload: "knn", Target: "direct", Throughput: 120, P50us: 1000},
		{Workload: "masked-read", Target: "pgwarden", Throughput: 85},
		{Workload: "masked-read", Target: "pgwarden-nomask", Throughput: 100},
		{Workload: "connect-churn", Target: "pgwarden", P50us: 9000},
		{Workload: "connect-churn", Target: "direct", P50us: 3000},
		{Workload: "idle-sessions", Target: "pgwarden", Throughput: 70},
		{Workload: "knn-literal", Target: "pgwarden", Throughput: 95, P50us: 2100},
		{Workload: "knn-literal", Target: "pgbouncer", Throughput: 100},
		{Workload: "knn-literal", Target: "direct", Throughput: 100, P50us: 2000},
		{Workload: "pgbench-S-simple", Target: "pgwarden", Throughput: 80},
		{Workload: "pgbench-S-simple", Target: "pgbouncer", Throughput: 100},
		{Workload: "insert-batch", Target: "pgwarden", Throughput: 80},
		{Workload: "insert-batch", Target: "pgbouncer", Throughput: 100},
	}
	want := map[string]bool{
		"pgbench -S -M prepared: pgwarden / pgbouncer throughput":    false, // 0.89
		"kNN with a literal vector: pgwarden / pgbouncer throughput": true,  // exactly 0.95
		"kNN with a literal vector p50: pgwarden − direct":           true,  // +100 µs
		"pgbench -S -M simple: pgwarden / pgbouncer throughput":      false,
		"insert-batch: pgwarden / pgbouncer throughput":              true, // exactly 0.80
		"kNN: pgwarden / pgbouncer throughput":                       true,
		"kNN p50: pgwarden − direct":                                 false, // +200 µs
		"masked read: pgwarden / pgwarden without masking rules":     true,
		"connect p50: pgwarden / direct SCRAM":                       true, // exactly 3×
		"idle session memory (pgwarden RSS per session)":             false,
	}
	cs := checks(rs)
	if len(cs) != len(want) {
		t.Fatalf("%d checks, want %d", len(cs), len(want))
	}
	for _, c := range cs {
		if w, ok := want[c.Name]; !ok || w != c.Pass {
			t.Errorf("%s: pass=%v got %v", c.Name, c.Pass, c.Got)
		}
	}
	var buf bytes.Buffer
	printTable(&buf, &Report{Results: rs, Checks: cs})
	if !strings.Contains(buf.String(), "| knn                | pgwarden ") || !strings.Contains(buf.String(), "MISS") {
		t.Fatalf("table:\n%s", buf.String())
	}
}

package main

import (
	"fmt"
	"io"
	"strings"
)

// Check is one of the performance targets (issue 16's, which keep issue
// 8's), evaluated on this run's numbers.
type Check struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Got    float64 `json:"got"`
	Unit   string  `json:"unit"`
	Pass   bool    `json:"pass"`
	Margin string  `json:"margin"`
}

func find(rs []Result, workload, target string) *Result {
	for i := range rs {
		if rs[i].Workload == workload && rs[i].Target == target {
			return &rs[i]
		}
	}
	return nil
}

func checks(rs []Result) []Check {
	var out []Check
	ratio := func(name, workload, a, b string, min float64) {
		x, y := find(rs, workload, a), find(rs, workload, b)
		if x == nil || y == nil || y.Throughput == 0 {
			return
		}
		got := x.Throughput / y.Throughput
		out = append(out, Check{Name: name, Want: fmt.Sprintf("≥ %.2f", min), Got: got, Unit: "×", Pass: got >= min,
			Margin: fmt.Sprintf("%+.1f%%", (got/min-1)*100)})
	}
	p50 := func(name, workload string, max float64) {
		if w, d := find(rs, workload, "pgwarden"), find(rs, workload, "direct"); w != nil && d != nil {
			got := w.P50us - d.P50us
			out = append(out, Check{Name: name, Want: fmt.Sprintf("≤ %.0f µs", max), Got: got, Unit: "µs", Pass: got <= max,
				Margin: fmt.Sprintf("%+.0f µs", got-max)})
		}
	}
	ratio("kNN with a literal vector: pgwarden / pgbouncer throughput", "knn-literal", "pgwarden", "pgbouncer", 0.95)
	p50("kNN with a literal vector p50: pgwarden − direct", "knn-literal", 150)
	ratio("pgbench -S -M simple: pgwarden / pgbouncer throughput", "pgbench-S-simple", "pgwarden", "pgbouncer", 0.90)
	ratio("insert-batch: pgwarden / pgbouncer throughput", "insert-batch", "pgwarden", "pgbouncer", 0.80)
	ratio("pgbench -S -M prepared: pgwarden / pgbouncer throughput", "pgbench-S-prepared", "pgwarden", "pgbouncer", 0.90)
	ratio("kNN: pgwarden / pgbouncer throughput", "knn", "pgwarden", "pgbouncer", 1.0)
	p50("kNN p50: pgwarden − direct", "knn", 150)
	ratio("masked read: pgwarden / pgwarden without masking rules", "masked-read", "pgwarden", "pgwarden-nomask", 0.8)
	if w, d := find(rs, "connect-churn", "pgwarden"), find(rs, "connect-churn", "direct"); w != nil && d != nil && d.P50us > 0 {
		got := w.P50us / d.P50us
		out = append(out, Check{Name: "connect p50: pgwarden / direct SCRAM", Want: "≤ 3.00", Got: got, Unit: "×", Pass: got <= 3,
			Margin: fmt.Sprintf("%+.1f%%", (got/3-1)*100)})
	}
	if w := find(rs, "idle-sessions", "pgwarden"); w != nil {
		out = append(out, Check{Name: "idle session memory (pgwarden RSS per session)", Want: "≤ 64 KiB", Got: w.Throughput, Unit: "KiB", Pass: w.Throughput <= 64,
			Margin: fmt.Sprintf("%+.1f KiB", w.Throughput-64)})
	}
	return out
}

func fmtUS(us float64) string {
	switch {
	case us == 0:
		return "-"
	case us >= 10000:
		return fmt.Sprintf("%.1f ms", us/1000)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

func fmtRatio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func printTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\npgwarden benchmark — %s, %d cores (%s), %s RAM; load average %s → %s; %s per workload per target; total %s\n\n",
		rep.Started.UTC().Format("2006-01-02 15:04 UTC"), rep.Machine.NProc, rep.Machine.CPU, rep.Machine.MemTotal,
		rep.LoadAvgStart, rep.LoadAvgEnd, rep.DurationEach, rep.Elapsed)
	fmt.Fprintf(w, "| %-18s | %-15s | %20s | %9s | %9s | %11s | %13s | %12s |\n", "workload", "target", "throughput", "p50", "p99", "pgw/direct", "pgw/pgbouncer", "proxy CPU/tx")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 20), strings.Repeat("-", 17), strings.Repeat("-", 22), strings.Repeat("-", 11), strings.Repeat("-", 11), strings.Repeat("-", 13), strings.Repeat("-", 15), strings.Repeat("-", 14))
	for _, r := range rep.Results {
		rd, rb := "", ""
		if r.Target == "pgwarden" {
			d, b := find(rep.Results, r.Workload, "direct"), find(rep.Results, r.Workload, "pgbouncer")
			if r.Workload == "connect-churn" { // lower is better: ratio of p50 connect time
				if d != nil {
					rd = fmtRatio(r.P50us, d.P50us) + " (p50)"
				}
				if b != nil {
					rb = fmtRatio(r.P50us, b.P50us) + " (p50)"
				}
			} else {
				if d != nil {
					rd = fmtRatio(r.Throughput, d.Throughput)
				}
				if b != nil {
					rb = fmtRatio(r.Throughput, b.Throughput)
				}
			}
		}
		tp := fmt.Sprintf("%.1f %s", r.Throughput, r.Unit)
		cpu := ""
		if r.ProxyCPUus > 0 {
			cpu = fmt.Sprintf("%.1f µs", r.ProxyCPUus)
		}
		fmt.Fprintf(w, "| %-18s | %-15s | %20s | %9s | %9s | %11s | %13s | %12s |\n", r.Workload, r.Target, tp, fmtUS(r.P50us), fmtUS(r.P99us), rd, rb, cpu)
	}
	fmt.Fprintln(w, "\ntargets (issue 16, with issue 8's kept):")
	for _, c := range rep.Checks {
		mark := "PASS"
		if !c.Pass {
			mark = "MISS"
		}
		fmt.Fprintf(w, "  %s  %-58s want %-9s got %.2f %s (%s)\n", mark, c.Name, c.Want, c.Got, c.Unit, c.Margin)
	}
	fmt.Fprintln(w)
}

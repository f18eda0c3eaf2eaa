package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// psql configured only by libpq's environment (PGHOST, PGPORT, PGUSER,
// PGDATABASE, PGSSLMODE, PGPASSWORD=token), reading a script on stdin with
// psql variables (:'vec') — the way people script it.
func TestCompatPsql(t *testing.T) {
	psql := needTool(t, "psql", "scripts/setup.sh installs postgresql-client")
	runCompat(t, "psql", psqlOp(psql))
}

var psqlErrRE = regexp.MustCompile(`(?m)^(?:psql:[^\n]*?)?ERROR:\s+([0-9A-Z]{5}): (.*)$`)

func psqlOp(psql string) compatOp {
	return func(t *testing.T, w *gw, op, user string, groups []string, env []string) (clientResult, string) {
		t.Helper()
		var r clientResult
		args := []string{"-X", "-q", "-A", "-t", "-F", "|", "-v", "VERBOSITY=verbose", "-f", "-"}
		var script string
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "COMPAT_VEC":
				args = append(args, "-v", "vec="+v)
			case "COMPAT_TITLE":
				args = append(args, "-v", "title="+v)
			}
		}
		switch op {
		case "knn":
			script = "\\set ON_ERROR_STOP 1\nSELECT id FROM documents ORDER BY embedding <-> :'vec' LIMIT 5;\n"
		case "insert":
			script = "\\set ON_ERROR_STOP 1\nINSERT INTO documents (title, body, embedding) VALUES (:'title', 'inserted by psql', :'vec') RETURNING id;\n"
		case "masked":
			script = "\\set ON_ERROR_STOP 1\n" + maskedSQL + ";\n"
		case "denied":
			// no ON_ERROR_STOP: psql reports the error and goes on, like a person at the prompt
			script = deniedSQL + ";\nSELECT 1;\n"
		}
		out, stderr, err := w.runClient(t, user, groups, nil, script, psql, args...)
		all := out + stderr
		if err != nil {
			t.Fatalf("psql %s: %v\nstdout: %s\nstderr: %s", op, err, out, stderr)
		}
		lines := strings.Fields(strings.TrimSpace(out))
		switch op {
		case "knn":
			for _, l := range lines {
				r.IDs = append(r.IDs, atoi(t, l))
			}
		case "insert":
			if len(lines) != 1 {
				t.Fatalf("psql insert printed %q", out)
			}
			r.ID = atoi(t, lines[0])
		case "masked":
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				r.Rows = append(r.Rows, strings.Split(l, "|"))
			}
		case "denied":
			if m := psqlErrRE.FindStringSubmatch(stderr); m != nil {
				r.SQLState, r.Message = m[1], m[2]
			}
			if len(lines) == 1 {
				r.After = atoi(t, lines[0])
			}
		}
		return r, all
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("not an integer: %q", s)
	}
	return n
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The example notebook, executed headless by Debian's nbconvert against a
// gateway: every cell runs without error, its free-text search (its Python
// port of devstack.Embed) finds the ids a direct query with the Go embedding
// finds, the customer emails it shows are the masked ones, and neither a raw
// customer email/ssn nor the token appears anywhere in the executed notebook.
func TestNotebookSemanticSearch(t *testing.T) {
	needPython(t, "nbconvert", "nbformat", "ipykernel", "psycopg")
	w := startGateway(t, nil)
	cw := computeWant(t, w)
	ctx := context.Background()
	const query = "weekly notes on telescope observations of a distant galaxy and nebula"
	want := ids(t, must(direct(t).Query(ctx, knnSQL, queryVector(query))))

	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..", "examples", "notebooks", "semantic-search.ipynb")
	nb, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "semantic-search.ipynb")
	must0(t, os.WriteFile(in, nb, 0o600))

	user := "alice@example.com"
	h, p := w.hostPort()
	token := w.Issuer.token(t, user, "analyst")
	env := []string{
		"PGWARDEN_TOKEN=" + token, "PGWARDEN_USER=" + user, "PGWARDEN_HOST=" + h, "PGWARDEN_PORT=" + p,
		"NOTEBOOK_QUERY=" + query,
		"HOME=" + dir, "JUPYTER_RUNTIME_DIR=" + filepath.Join(dir, "runtime"), "IPYTHONDIR=" + filepath.Join(dir, "ipython"),
		"JUPYTER_PLATFORM_DIRS=1", "PYDEVD_DISABLE_FILE_VALIDATION=1",
	}
	start := time.Now()
	out, stderr, err := w.runClient(t, user, []string{"analyst"}, env, "", debianPython,
		"-m", "nbconvert", "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=120",
		"--ExecutePreprocessor.kernel_name=python3", "--output-dir", dir, "--output", "executed.ipynb", in)
	if err != nil {
		t.Fatalf("nbconvert --execute: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("notebook executed in %v", time.Since(start).Round(time.Millisecond))
	executed, err := os.ReadFile(filepath.Join(dir, "executed.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cells []struct {
			CellType       string `json:"cell_type"`
			ExecutionCount *int   `json:"execution_count"`
			Outputs        []struct {
				OutputType string          `json:"output_type"`
				Name       string          `json:"name"`
				Text       json.RawMessage `json:"text"`
				Ename      string          `json:"ename"`
				Evalue     string          `json:"evalue"`
			} `json:"outputs"`
		} `json:"cells"`
	}
	must0(t, json.Unmarshal(executed, &doc))
	var text strings.Builder
	code := 0
	for i, c := range doc.Cells {
		if c.CellType != "code" {
			continue
		}
		code++
		if c.ExecutionCount == nil {
			t.Fatalf("code cell %d did not run", i)
		}
		for _, o := range c.Outputs {
			if o.OutputType == "error" {
				t.Fatalf("cell %d raised %s: %s", i, o.Ename, o.Evalue)
			}
			if o.Name == "stderr" {
				t.Fatalf("cell %d wrote to stderr: %s", i, o.Text)
			}
			var lines []string
			if json.Unmarshal(o.Text, &lines) != nil {
				var s string
				json.Unmarshal(o.Text, &s)
				lines = []string{s}
			}
			text.WriteString(strings.Join(lines, ""))
		}
	}
	if code < 5 {
		t.Fatalf("the executed notebook has %d code cells", code)
	}
	output := text.String()
	cw.noRawPII(t, "executed notebook", string(executed))
	if strings.Contains(string(executed), token) {
		t.Fatal("the executed notebook contains the token")
	}
	if wantLine := fmt.Sprintf("nearest ids: %v", pyList(want)); !strings.Contains(output, wantLine) {
		t.Fatalf("the notebook's search does not match PostgreSQL: want %q in\n%s", wantLine, output)
	}
	for _, r := range cw.masked[:5] {
		if !strings.Contains(output, r[1]) || !strings.Contains(output, r[2]) {
			t.Fatalf("customer %s's masked email/ssn %v not in the notebook output:\n%s", r[0], r[1:], output)
		}
	}
	if !strings.Contains(output, "42501") {
		t.Fatalf("the notebook did not show the refused DELETE:\n%s", output)
	}
	t.Logf("notebook output:\n%s", output)
}

// pyList formats ids as Python prints a list of ints.
func pyList(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

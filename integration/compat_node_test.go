package integration

import (
	"os"
	"path/filepath"
	"testing"
)

// node-postgres (`pg`) with the `pgvector` npm package: extended protocol
// with unnamed and named prepared statements, pgvector's type registration
// (a catalog lookup at connect) and its vector parser.
func TestCompatNodePostgres(t *testing.T) {
	node := needTool(t, "node", "apt-get install nodejs")
	if _, err := os.Stat(filepath.Join(compatDir(t), "node", "node_modules", "pgvector")); err != nil {
		missing(t, "node packages not installed (run scripts/setup-clients.sh)")
	}
	runCompat(t, "node-postgres", jsonClient(node, filepath.Join(compatDir(t), "node", "compat.js")))
}

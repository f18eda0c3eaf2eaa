package integration

import (
	"path/filepath"
	"testing"
)

// psycopg 3 (Debian's python3-psycopg): server-side binding, prepare=True,
// pipeline mode, binary results.
func TestCompatPsycopg3(t *testing.T) {
	needPython(t, "psycopg")
	runCompat(t, "psycopg3", jsonClient(debianPython, filepath.Join(compatDir(t), "compat_psycopg3.py")))
}

// psycopg2 (Debian's python3-psycopg2): client-side interpolation (simple
// protocol), transactions, a named server-side cursor.
func TestCompatPsycopg2(t *testing.T) {
	needPython(t, "psycopg2")
	runCompat(t, "psycopg2", jsonClient(debianPython, filepath.Join(compatDir(t), "compat_psycopg2.py")))
}

// SQLAlchemy 1.4 (Debian's python3-sqlalchemy) on psycopg2 with a vector
// column type: ORM insert, an ORDER BY distance select, the ORM's own
// connect-time queries.
func TestCompatSQLAlchemy(t *testing.T) {
	needPython(t, "sqlalchemy", "psycopg2")
	runCompat(t, "sqlalchemy", jsonClient(debianPython, filepath.Join(compatDir(t), "compat_sqlalchemy.py")))
}

"""psycopg 3 through pgwarden: one operation per run, result as JSON on stdout.

Connection settings come from libpq's environment (PGHOST, PGPORT, PGUSER,
PGDATABASE, PGSSLMODE=require, PGPASSWORD=<OIDC token>); the query vector and
title from COMPAT_VEC / COMPAT_TITLE. Run with Debian's /usr/bin/python3.
Usage: compat_psycopg3.py knn|insert|masked|denied
"""
import json
import os
import sys

import psycopg

KNN = "SELECT id FROM documents ORDER BY embedding <-> %s::vector LIMIT 5"
MASKED = "SELECT id, email, ssn FROM customers ORDER BY id LIMIT 10"


def rows_text(rows):
    return [[str(v) for v in r] for r in rows]


def main(op):
    out = {}
    with psycopg.connect("", autocommit=True) as conn:  # "" = everything from PG* variables
        vec = os.environ.get("COMPAT_VEC", "")
        if op == "knn":
            # server-side binding (extended protocol), then a named prepared
            # statement (prepare=True), then pipeline mode
            out["ids"] = [r[0] for r in conn.execute(KNN, (vec,)).fetchall()]
            runs = []
            for _ in range(3):
                runs.append([r[0] for r in conn.execute(KNN, (vec,), prepare=True).fetchall()])
            with conn.pipeline():
                curs = [conn.execute(KNN, (vec,)) for _ in range(2)]
            for c in curs:
                runs.append([r[0] for r in c.fetchall()])
            out["runs"] = runs
        elif op == "insert":
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO documents (title, body, metadata, embedding) "
                    "VALUES (%s, %s, %s, %s::vector) RETURNING id",
                    (os.environ["COMPAT_TITLE"], "inserted by psycopg 3",
                     psycopg.types.json.Jsonb({"source": "compat"}), vec),
                ).fetchone()
            out["id"] = row[0]
        elif op == "masked":
            out["rows"] = rows_text(conn.execute(MASKED).fetchall())
            with conn.cursor(binary=True) as cur:  # binary result format
                out["rows_bin"] = rows_text(cur.execute(MASKED).fetchall())
        elif op == "denied":
            try:
                conn.execute("DELETE FROM documents WHERE id = %s", (1,))
            except psycopg.Error as e:
                out["sqlstate"] = e.sqlstate
                out["message"] = e.diag.message_primary or str(e)
            out["after"] = conn.execute("SELECT 1").fetchone()[0]
        else:
            raise SystemExit("unknown operation " + op)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])

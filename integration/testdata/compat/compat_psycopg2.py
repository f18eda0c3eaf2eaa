"""psycopg2 through pgwarden: one operation per run, result as JSON on stdout.

psycopg2 interpolates parameters client-side, so every statement reaches
pgwarden as a simple Query message. Connection settings come from libpq's
environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE=require,
PGPASSWORD=<OIDC token>). Run with Debian's /usr/bin/python3.
Usage: compat_psycopg2.py knn|insert|masked|denied
"""
import json
import os
import sys

import psycopg2
import psycopg2.extras

KNN = "SELECT id FROM documents ORDER BY embedding <-> %s::vector LIMIT 5"
MASKED = "SELECT id, email, ssn FROM customers ORDER BY id LIMIT 10"


def main(op):
    out = {}
    conn = psycopg2.connect("")  # "" = everything from PG* variables
    try:
        vec = os.environ.get("COMPAT_VEC", "")
        cur = conn.cursor()
        if op == "knn":
            cur.execute(KNN, (vec,))
            out["ids"] = [r[0] for r in cur.fetchall()]
            runs = []
            for _ in range(2):
                cur.execute(KNN, (vec,))
                runs.append([r[0] for r in cur.fetchall()])
            # a named (server-side) cursor: DECLARE ... CURSOR / FETCH in a transaction
            with conn.cursor(name="knn_cursor") as named:
                named.itersize = 2
                named.execute(KNN, (vec,))
                runs.append([r[0] for r in named])
            conn.rollback()
            out["runs"] = runs
        elif op == "insert":
            cur.execute(
                "INSERT INTO documents (title, body, metadata, embedding) "
                "VALUES (%s, %s, %s, %s::vector) RETURNING id",
                (os.environ["COMPAT_TITLE"], "inserted by psycopg2",
                 psycopg2.extras.Json({"source": "compat"}), vec),
            )
            out["id"] = cur.fetchone()[0]
            conn.commit()
        elif op == "masked":
            cur.execute(MASKED)
            out["rows"] = [[str(v) for v in r] for r in cur.fetchall()]
            conn.rollback()
        elif op == "denied":
            try:
                cur.execute("DELETE FROM documents WHERE id = %s", (1,))
                conn.commit()
            except psycopg2.Error as e:
                out["sqlstate"] = e.pgcode
                out["message"] = (e.diag.message_primary or str(e)) if e.diag else str(e)
                conn.rollback()
            cur.execute("SELECT 1")
            out["after"] = cur.fetchone()[0]
            conn.rollback()
        else:
            raise SystemExit("unknown operation " + op)
    finally:
        conn.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])

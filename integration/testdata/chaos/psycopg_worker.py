"""One psycopg 3 client of the chaos test (integration/chaos_test.go).

Connects through pgwarden with the libpq environment the test sets (PGHOST,
PGPORT, PGUSER, PGPASSWORD = a token, PGSSLMODE=require, ...), and until
DURATION seconds have passed runs kNN searches, masked reads and inserts,
each with a unique marker, reconnecting after every connection error and
every 25 statements. It prints one line per outcome, flushed at once, which
the test reads:

    ack <marker>                                    the client received the result
    err <marker> <sqlstate|-> connect|stmt <msg>    the connect or the statement failed

<msg> is the server's primary message when there is an SQLSTATE, else the
exception's text on one line.

argv: worker name, duration in seconds, random seed.
"""

import random
import sys
import time

import psycopg


def out(*words):
    print(*words, flush=True)


def one_line(e):
    return " ".join(str(e).split())[:300]


def report(marker, phase, e):
    diag = getattr(e, "diag", None)
    sqlstate = (diag and diag.sqlstate) or "-"
    primary = (diag and diag.message_primary) or ""
    text = " ".join(primary.split()) if sqlstate != "-" and primary else one_line(e)
    out("err", marker, sqlstate, phase, text)


def main():
    name, duration, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    rnd = random.Random(seed)
    end = time.monotonic() + duration
    seq = 0
    while time.monotonic() < end:
        seq += 1
        marker = "chaos-%s-%d" % (name, seq)
        try:
            conn = psycopg.connect("", connect_timeout=15, autocommit=True)
        except psycopg.Error as e:
            report(marker, "connect", e)
            time.sleep(0.2)
            continue
        try:
            for _ in range(25):
                if time.monotonic() >= end:
                    break
                kind = rnd.choice(("knn", "read", "insert"))
                if kind == "knn":
                    sql = ("SELECT /* %s */ id, title FROM documents ORDER BY embedding <-> "
                           "(SELECT embedding FROM documents WHERE id = %d) LIMIT 5") % (marker, rnd.randint(1, 1000))
                elif kind == "read":
                    lo = rnd.randint(1, 190)
                    sql = ("SELECT /* %s */ id, name, email, ssn FROM customers "
                           "WHERE id BETWEEN %d AND %d ORDER BY id") % (marker, lo, lo + 2)
                else:
                    sql = "INSERT /* %s */ INTO chaos_items (marker, client) VALUES ('%s', 'psycopg')" % (marker, marker)
                try:
                    cur = conn.execute(sql)
                    if kind != "insert":
                        cur.fetchall()
                    out("ack", marker)
                except psycopg.Error as e:
                    report(marker, "stmt", e)
                    if conn.closed or conn.broken:
                        break
                seq += 1
                marker = "chaos-%s-%d" % (name, seq)
        finally:
            try:
                conn.close()
            except Exception:
                pass


if __name__ == "__main__":
    main()

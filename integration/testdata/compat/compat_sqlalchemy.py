"""SQLAlchemy (Debian's python3-sqlalchemy 1.4, psycopg2 driver) through
pgwarden, with a pgvector column as a small UserDefinedType: one operation per
run, result as JSON on stdout.

The engine URL is just "postgresql+psycopg2://": host, port, user, database,
sslmode and the token (PGPASSWORD) come from libpq's environment.
Usage: compat_sqlalchemy.py knn|insert|masked|denied
"""
import json
import os
import sys

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session, declarative_base
from sqlalchemy.types import Float, UserDefinedType


class Vector(UserDefinedType):
    """pgvector's vector(n): Python lists of floats in, lists of floats out."""

    cache_ok = True

    def __init__(self, dim):
        self.dim = dim

    def get_col_spec(self, **kw):
        return "vector(%d)" % self.dim

    def bind_processor(self, dialect):
        def process(value):
            if value is None:
                return None
            return "[" + ",".join(repr(float(x)) for x in value) + "]"
        return process

    def bind_expression(self, bindvalue):
        return sa.cast(bindvalue, self)

    def result_processor(self, dialect, coltype):
        def process(value):
            if value is None:
                return None
            return [float(x) for x in value.strip("[]").split(",")]
        return process

    class comparator_factory(UserDefinedType.Comparator):
        def l2_distance(self, other):
            return self.op("<->", return_type=Float)(other)


Base = declarative_base()


class Document(Base):
    __tablename__ = "documents"
    id = sa.Column(sa.BigInteger, primary_key=True)
    title = sa.Column(sa.Text, nullable=False)
    body = sa.Column(sa.Text, nullable=False)
    meta = sa.Column("metadata", JSONB, nullable=False, default=dict)
    embedding = sa.Column(Vector(384))


class Customer(Base):
    __tablename__ = "customers"
    id = sa.Column(sa.BigInteger, primary_key=True)
    email = sa.Column(sa.Text)
    ssn = sa.Column(sa.Text)


def parse_vec(text):
    return [float(x) for x in text.strip("[]").split(",")]


def main(op):
    engine = sa.create_engine("postgresql+psycopg2://", future=True)
    out = {}
    vec = parse_vec(os.environ["COMPAT_VEC"]) if os.environ.get("COMPAT_VEC") else None
    with Session(engine, future=True) as session:
        if op == "knn":
            q = sa.select(Document.id).order_by(Document.embedding.l2_distance(vec)).limit(5)
            out["ids"] = list(session.scalars(q))
            out["runs"] = [list(session.scalars(q)) for _ in range(2)]
        elif op == "insert":
            doc = Document(title=os.environ["COMPAT_TITLE"], body="inserted by SQLAlchemy",
                           meta={"source": "compat"}, embedding=vec)
            session.add(doc)
            session.commit()
            out["id"] = doc.id
            # read it back through the type's result processor
            back = session.get(Document, doc.id)
            if back is None or len(back.embedding) != 384:
                raise SystemExit("inserted document not readable")
        elif op == "masked":
            q = sa.select(Customer.id, Customer.email, Customer.ssn).order_by(Customer.id).limit(10)
            out["rows"] = [[str(v) for v in r] for r in session.execute(q)]
        elif op == "denied":
            try:
                session.execute(sa.delete(Document).where(Document.id == 1))
                session.commit()
            except exc.DBAPIError as e:
                session.rollback()
                out["sqlstate"] = getattr(e.orig, "pgcode", None)
                diag = getattr(e.orig, "diag", None)
                out["message"] = (diag.message_primary if diag else None) or str(e.orig)
            out["after"] = session.execute(sa.text("SELECT 1")).scalar_one()
        else:
            raise SystemExit("unknown operation " + op)
    engine.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])

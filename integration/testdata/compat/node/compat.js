// node-postgres (`pg`) with the `pgvector` npm package through pgwarden: one
// operation per run, result as JSON on stdout.
//
// Connection settings come from the environment node-postgres reads (PGHOST,
// PGPORT, PGUSER, PGDATABASE, PGPASSWORD=<OIDC token>). TLS is required by
// pgwarden; this test gateway has a self-signed certificate, so the client
// skips verification — in production pass `ssl: { ca: fs.readFileSync(...) }`.
// Usage: node compat.js knn|insert|masked|denied
'use strict';
const pg = require('pg');
const pgvector = require('pgvector/pg');

const KNN = 'SELECT id FROM documents ORDER BY embedding <-> $1 LIMIT 5';
const MASKED = 'SELECT id, email, ssn FROM customers ORDER BY id LIMIT 10';

async function main(op) {
  const client = new pg.Client({ ssl: { rejectUnauthorized: false } });
  await client.connect();
  const out = {};
  try {
    await pgvector.registerTypes(client);
    const vec = process.env.COMPAT_VEC ? JSON.parse(process.env.COMPAT_VEC) : null;
    if (op === 'knn') {
      // an unnamed statement (extended protocol), then a named prepared one, reused
      const ids = (res) => res.rows.map((r) => Number(r.id));
      out.ids = ids(await client.query(KNN, [pgvector.toSql(vec)]));
      out.runs = [];
      for (let i = 0; i < 3; i++) {
        out.runs.push(ids(await client.query({ name: 'knn', text: KNN, values: [pgvector.toSql(vec)] })));
      }
    } else if (op === 'insert') {
      await client.query('BEGIN');
      const res = await client.query(
        'INSERT INTO documents (title, body, metadata, embedding) VALUES ($1, $2, $3, $4) RETURNING id, embedding',
        [process.env.COMPAT_TITLE, 'inserted by node-postgres', { source: 'compat' }, pgvector.toSql(vec)]);
      await client.query('COMMIT');
      const back = res.rows[0].embedding; // parsed by pgvector's type parser
      if (!Array.isArray(back) || back.length !== vec.length) throw new Error('embedding did not round-trip');
      out.id = Number(res.rows[0].id);
    } else if (op === 'masked') {
      const text = (res) => res.rows.map((r) => [String(r.id), String(r.email), String(r.ssn)]);
      out.rows = text(await client.query(MASKED)); // simple query
      // the same through the extended protocol (a parameter forces Parse/Bind)
      out.rows_bin = text(await client.query('SELECT id, email, ssn FROM customers WHERE id > $1 ORDER BY id LIMIT 10', [0]));
    } else if (op === 'denied') {
      try {
        await client.query('DELETE FROM documents WHERE id = $1', [1]);
      } catch (e) {
        out.sqlstate = e.code;
        out.message = e.message;
      }
      out.after = Number((await client.query('SELECT 1 AS one')).rows[0].one);
    } else {
      throw new Error('unknown operation ' + op);
    }
  } finally {
    await client.end();
  }
  console.log(JSON.stringify(out));
}

main(process.argv[2]).catch((e) => {
  console.error(e && e.message ? `${e.code || ''} ${e.message}` : e);
  process.exit(1);
});

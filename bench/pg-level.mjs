/**
 * PgLevel (src/storage/pg-level.ts) against a real PostgreSQL: batch puts of
 * 1000 rows (rows/s, one writer and four), getMany of 512 random present keys
 * (keys/s), an iterator scan (keys/s), and what a chunk-index-like row (a
 * 32-byte key, a 20-byte value, as the pack index stores them) costs on disk:
 * pg_total_relation_size of the kv table (heap, its TOAST and the primary
 * key's index) per row, with the key under the `chunks` sublevel (as the
 * services store it) and as a bare 32-byte root key (what the prefix costs).
 * Each run works in a database of its own, dropped at the end. Run after
 * `npm run build`, with the server the tests use (scripts/services/pg-up.sh,
 * which runs PostgreSQL with fsync off: write figures are the server's CPU
 * and protocol cost, not a disk's):
 *   FETCH_CACHE_TEST_POSTGRES=postgres://ci@127.0.0.1:15432/fc node bench/pg-level.mjs
 * BENCH_PG_ROWS (default 200000) rows are written. Not part of `npm run bench`.
 */

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import postgres from 'postgres';
import { REPO } from './lib.mjs';

const { PgLevel } = await import(join(REPO, 'dist/storage/pg-level.js'));
const { connectPostgres, migrate } = await import(join(REPO, 'dist/storage/postgres.js'));

const server = process.env.FETCH_CACHE_TEST_POSTGRES;
if (!server) {
  console.error('FETCH_CACHE_TEST_POSTGRES is unset: start a server with scripts/services/pg-up.sh DIR');
  process.exit(2);
}
const ROWS = Number(process.env.BENCH_PG_ROWS ?? 200_000);
const BATCH = 1000;
const GET_MANY = 512;
const GET_ROUNDS = 200;
const BINARY = { keyEncoding: 'view', valueEncoding: 'view' };

const admin = postgres(server, { max: 1, onnotice: () => {} });
const [{ version }] = await admin`select current_setting('server_version') as version`;

/** A fresh migrated database; `fn(url)`; the database dropped whatever happens. */
async function withDatabase(fn) {
  const name = `fc_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  await admin.unsafe(`create database ${name}`);
  const u = new URL(server);
  u.pathname = `/${name}`;
  try {
    const sql = await connectPostgres(u.href, { max: 1 });
    await migrate(sql);
    await sql.end();
    return await fn(u.href);
  } finally {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  }
}

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9;
const rate = (n, s) => `${Math.round(n / s).toLocaleString('en-US')}/s`;

/** `count` random 32-byte keys with 20-byte values, as batches of BATCH puts. */
function batches(count) {
  const out = [];
  for (let i = 0; i < count; i += BATCH) {
    out.push(
      Array.from({ length: Math.min(BATCH, count - i) }, () => ({
        type: 'put',
        key: new Uint8Array(randomBytes(32)),
        value: new Uint8Array(randomBytes(20)),
      })),
    );
  }
  return out;
}

/** Writes ROWS rows into `db` (a sublevel or the root); returns rows/s for one writer and for four. */
async function fill(db) {
  const all = batches(ROWS);
  const half = Math.floor(all.length / 2);
  let start = process.hrtime.bigint();
  for (const b of all.slice(0, half)) await db.batch(b);
  const one = (half * BATCH) / seconds(start);
  const rest = all.slice(half);
  start = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < rest.length) await db.batch(rest[next++]);
    }),
  );
  const four = (rest.length * BATCH) / seconds(start);
  return { one, four, keys: all.flat().map((op) => op.key) };
}

/** The kv table's bytes per row: total (heap + TOAST + index), heap, index. */
async function sizes(url, rows) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  await sql`vacuum analyze kv`;
  const [r] = await sql`
    select pg_total_relation_size('kv')::float8 as total, pg_relation_size('kv')::float8 as heap,
           pg_indexes_size('kv')::float8 as index, (select count(*) from kv)::float8 as n`;
  await sql.end();
  if (r.n !== rows) throw new Error(`expected ${rows} rows, found ${r.n}`);
  return { total: r.total / rows, heap: r.heap / rows, index: r.index / rows };
}

console.log(`PgLevel on PostgreSQL ${version} at ${new URL(server).host} (loopback), ${ROWS} rows`);

await withDatabase(async (url) => {
  const level = new PgLevel(url, { ...BINARY, pool: { max: 8 } });
  await level.open();
  const chunks = level.sublevel('chunks', BINARY);
  const { one, four, keys } = await fill(chunks);
  console.log(
    `batch put, ${BATCH} rows per batch:   ${rate(one, 1)} (one writer), ${rate(four, 1)} (four writers)`,
  );

  let start = process.hrtime.bigint();
  for (let r = 0; r < GET_ROUNDS; r++) {
    const want = Array.from({ length: GET_MANY }, () => keys[Math.floor(Math.random() * keys.length)]);
    const got = await chunks.getMany(want);
    if (got.some((v) => v === undefined)) throw new Error('a present key was not found');
  }
  console.log(`getMany of ${GET_MANY} random present keys: ${rate(GET_ROUNDS * GET_MANY, seconds(start))}`);

  start = process.hrtime.bigint();
  let n = 0;
  for await (const _ of chunks.iterator()) n++;
  console.log(`iterator scan (for await, entries):  ${rate(n, seconds(start))}`);
  start = process.hrtime.bigint();
  const it = chunks.keys();
  let m = 0;
  for (let page = await it.nextv(1000); page.length > 0; page = await it.nextv(1000)) m += page.length;
  await it.close();
  console.log(`iterator scan (nextv(1000), keys):   ${rate(m, seconds(start))}`);
  if (n !== ROWS || m !== ROWS) throw new Error(`scanned ${n} and ${m} of ${ROWS}`);
  await level.close();

  const s = await sizes(url, ROWS);
  console.log(
    `chunk-index row, key '!chunks!' + 32 B, value 20 B: ${s.total.toFixed(1)} B/row (heap ${s.heap.toFixed(1)}, index ${s.index.toFixed(1)})`,
  );
});

await withDatabase(async (url) => {
  const level = new PgLevel(url, { ...BINARY, pool: { max: 8 } });
  await level.open();
  await fill(level);
  await level.close();
  const s = await sizes(url, ROWS);
  console.log(
    `same rows, bare 32-byte root keys:                 ${s.total.toFixed(1)} B/row (heap ${s.heap.toFixed(1)}, index ${s.index.toFixed(1)})`,
  );
});

await admin.end();

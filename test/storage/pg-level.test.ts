/**
 * PgLevel (src/storage/pg-level.ts) against the real PostgreSQL named by
 * FETCH_CACHE_TEST_POSTGRES (scripts/services/pg-up.sh; .ci/run starts it):
 * abstract-level's own test suite, then what a shared store relies on: a
 * batch is atomic as another connection sees it, a write to the `pathinfo`
 * sublevel bumps the generation in its own transaction and is announced to
 * LISTENers only when it commits, and several PgLevels on one database
 * (standing for several machines) write and read concurrently. Without the
 * server these are skipped, except in CI, where its absence fails.
 */

import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { AbstractDatabaseOptions } from 'abstract-level';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { LevelPathInfoService } from '../../src/pathinfo/leveldb.js';
import { binarySublevel, type KV } from '../../src/storage/kv.js';
import { PgLevel, type PgLevelOptions } from '../../src/storage/pg-level.js';
import { PATHINFO_CHANNEL, pathInfoGeneration } from '../../src/storage/postgres.js';
import {
  migratedSchema,
  pgLevelsForFile,
  SchemaPgLevel,
  schemaName,
  withSchema,
} from '../helpers/pg-level.js';
import { TEST_POSTGRES } from '../helpers/postgres.js';
import { tapeTests } from '../helpers/tape.js';
import { PATH_INFO_DIRECTORY, PATH_INFO_FILE } from '../pathinfo/conformance.js';

const require = createRequire(import.meta.url);
const suite = require('abstract-level/test') as (options: {
  test: unknown;
  factory: (options?: AbstractDatabaseOptions<Uint8Array, Uint8Array>) => PgLevel;
}) => void;

const skipped = TEST_POSTGRES === undefined;
const reason = skipped ? ': skipped, FETCH_CACHE_TEST_POSTGRES is unset (scripts/services/pg-up.sh)' : '';

it.runIf(process.env.CI === 'true')(
  'has a real PostgreSQL in CI (FETCH_CACHE_TEST_POSTGRES, started by .ci/run)',
  () => {
    expect(
      TEST_POSTGRES,
      'FETCH_CACHE_TEST_POSTGRES is unset: .ci/run must start it (scripts/services/pg-up.sh)',
    ).toBeDefined();
  },
);

const levels = skipped ? undefined : await pgLevelsForFile();

describe.skipIf(skipped)(`abstract-level test suite on PgLevel${reason}`, () => {
  if (levels !== undefined) suite({ test: tapeTests(), factory: (options) => levels.make(options) });
});

const enc = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const txt = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString('utf8'));
const pad = (i: number) => String(i).padStart(6, '0');

/** The notifications on PATHINFO_CHANNEL, read on a connection of its own. */
async function listener(url: string) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const sender = postgres(url, { max: 1, onnotice: () => {} });
  const got: string[] = [];
  const waiting = new Set<() => void>();
  await sql.listen(PATHINFO_CHANNEL, (payload) => {
    got.push(payload);
    for (const w of waiting) w();
  });
  let markers = 0;
  const until = (ok: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (ok()) {
          waiting.delete(check);
          resolve();
        }
      };
      waiting.add(check);
      check();
    });
  return {
    /** What arrived so far, markers left out. */
    got: () => got.filter((p) => !p.startsWith('marker')),
    until: (n: number) => until(() => got.filter((p) => !p.startsWith('marker')).length >= n),
    /** Everything committed before this call has been delivered once it resolves. */
    async sync() {
      const m = `marker-${markers++}`;
      await sender.notify(PATHINFO_CHANNEL, m);
      await until(() => got.includes(m));
    },
    end: async () => {
      await sql.end({ timeout: 1 });
      await sender.end({ timeout: 1 });
    },
  };
}

describe.skipIf(skipped)(`PgLevel${reason}`, () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  /** An open PgLevel on a new schema, and the URL of that schema for other connections. */
  const fresh = async (options: PgLevelOptions = {}) => {
    const schema = schemaName();
    const url = await migratedSchema(levels!.database.url, schema);
    const level = new SchemaPgLevel(levels!.database.url, schema, options) as PgLevel;
    await level.open();
    cleanup.push(() => level.close());
    return { level: level as unknown as KV, url, schema };
  };
  /** Another PgLevel on the same schema: another machine on the same store. */
  const another = async (schema: string) => {
    const level = new SchemaPgLevel(levels!.database.url, schema) as PgLevel;
    await level.open();
    cleanup.push(() => level.close());
    return level as unknown as KV;
  };
  const connect = (url: string) => {
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    cleanup.push(() => sql.end({ timeout: 1 }));
    return sql;
  };

  it('getMany answers in request order, with repeats and misses', async () => {
    const { level } = await fresh();
    await level.batch([
      { type: 'put', key: enc('a'), value: enc('A') },
      { type: 'put', key: enc('b'), value: enc('B') },
      { type: 'put', key: enc(''), value: enc('empty key') },
    ]);
    const keys = ['b', 'x', 'a', '', 'b'].map(enc);
    expect((await level.getMany(keys)).map(txt)).toEqual(['B', undefined, 'A', 'empty key', 'B']);
    expect(await level.hasMany(keys)).toEqual([true, false, true, true, true]);
  });

  it('a batch: the last operation on a key wins; many rows go in few statements', async () => {
    const { level, url } = await fresh();
    const sql = connect(url);
    await level.batch([
      { type: 'put', key: enc('k'), value: enc('1') },
      { type: 'del', key: enc('k') },
      { type: 'put', key: enc('j'), value: enc('1') },
      { type: 'del', key: enc('i') },
      { type: 'put', key: enc('i'), value: enc('2') },
      { type: 'put', key: enc('j'), value: enc('3') },
    ]);
    expect((await level.iterator().all()).map(([k, v]) => `${txt(k)}=${txt(v)}`)).toEqual(['i=2', 'j=3']);

    // 25 000 puts: one transaction (one xmin), three upsert statements of at most 10 000 rows
    // (cmin is the number of the statement within its transaction that wrote the row).
    const n = 25_000;
    const puts = Array.from({ length: n }, (_, i) => ({
      type: 'put' as const,
      key: enc(`m${pad(i)}`),
      value: enc('v'),
    }));
    await level.batch(puts);
    const [stats] = await sql<{ rows: number; xacts: number; statements: number }[]>`
      select count(*)::int as rows, count(distinct xmin::text)::int as xacts, count(distinct cmin::text)::int as statements
      from kv where key >= 'm' and key < 'n'`;
    expect(stats).toEqual({ rows: n, xacts: 1, statements: 3 });
  });

  it('an iterator reads pages without holding a transaction, sees later writes past its position, never repeats a key', async () => {
    const { level, url } = await fresh({ pageSize: 10 });
    const sql = connect(url);
    const db = binarySublevel(level, 'it');
    await db.batch(
      Array.from({ length: 100 }, (_, i) => ({
        type: 'put' as const,
        key: enc(pad(i * 2)),
        value: enc('v'),
      })),
    );
    const it = db.iterator();
    const seen: string[] = [];
    for (let i = 0; i < 15; i++) seen.push(txt((await it.next())![0])!);
    // Between pages, no connection of this database sits in a transaction or holds a cursor
    // (the server's own workers, such as autovacuum, are not connections).
    const busy = await sql`
      select pid, state, query, backend_type from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'
        and backend_type = 'client backend'`;
    expect(busy).toEqual([]);
    // Before its position: never seen. After it: seen, or gone when deleted.
    await db.batch([
      { type: 'put', key: enc(pad(1)), value: enc('new, behind') },
      { type: 'put', key: enc(pad(41)), value: enc('new, ahead') },
      { type: 'del', key: enc(pad(60)) },
      { type: 'put', key: enc(pad(62)), value: enc('changed') },
    ]);
    for (let e = await it.next(); e !== undefined; e = await it.next())
      seen.push(`${txt(e[0])}${txt(e[1]) === 'v' ? '' : `=${txt(e[1])}`}`);
    await it.close();
    const expected = Array.from({ length: 100 }, (_, i) => pad(i * 2)).filter((k) => k !== pad(60));
    expected.splice(expected.indexOf(pad(42)), 0, pad(41));
    expect(seen).toEqual(
      expected.map((k) => (k === pad(41) ? `${k}=new, ahead` : k === pad(62) ? `${k}=changed` : k)),
    );
  });

  it('a batch is atomic as another connection sees it, also when it is several statements', async () => {
    const { level, url } = await fresh();
    const sql = connect(url);
    const db = binarySublevel(level, 'atomic');
    const n = 10_500; // deletes and puts of more than 10 000 rows each: six statements
    const keys = (prefix: string) => Array.from({ length: n }, (_, i) => enc(`${prefix}${pad(i)}`));
    await db.batch(keys('a').map((key) => ({ type: 'put' as const, key, value: enc('old') })));
    const seen = new Set<string>();
    let done = false;
    const reader = (async () => {
      while (!done) {
        const [r] = await sql<{ a: number; b: number }[]>`
          select count(*) filter (where key < '!atomic!b')::int as a, count(*) filter (where key >= '!atomic!b')::int as b
          from kv where key >= '!atomic!' and key < '!atomic"'`;
        seen.add(`${r!.a}/${r!.b}`);
      }
    })();
    const swap = (from: string, to: string) =>
      db.batch([
        ...keys(from).map((key) => ({ type: 'del' as const, key })),
        ...keys(to).map((key) => ({ type: 'put' as const, key, value: enc('new') })),
      ]);
    await swap('a', 'b');
    await swap('b', 'a');
    done = true;
    await reader;
    expect([...seen].sort()).toEqual([`0/${n}`, `${n}/0`].filter((x) => seen.has(x)));
    expect(seen.has(`${n}/0`)).toBe(true);
  });

  it('a failed batch leaves nothing behind', async () => {
    const { level } = await fresh();
    const db = binarySublevel(level, 'failed');
    await db.put(enc('kept'), enc('before'));
    const tooLong = new Uint8Array(randomBytes(9000)); // past the btree's limit for an index entry
    const error = await db
      .batch([
        { type: 'put', key: enc('kept'), value: enc('after') },
        ...Array.from({ length: 11_000 }, (_, i) => ({
          type: 'put' as const,
          key: enc(`x${pad(i)}`),
          value: enc('v'),
        })),
        { type: 'put', key: tooLong, value: enc('v') },
      ])
      .catch((e: unknown) => e);
    expect(isFetchCacheError(error, 'ERR_STORE_BACKEND')).toBe(true);
    expect(String((error as Error).message)).toMatch(/index row/);
    expect(txt(await db.get(enc('kept')))).toBe('before');
    expect(await db.keys().all()).toHaveLength(1);
  });

  describe('the path-info generation', () => {
    it('is bumped once by each transaction that writes the pathinfo sublevel, and announced', async () => {
      const { level, url } = await fresh();
      const sql = connect(url);
      const notes = await listener(url);
      cleanup.push(notes.end);
      const pathinfo = binarySublevel(level, 'pathinfo');
      const other = binarySublevel(level, 'pathinfos'); // a prefix of another sublevel is not the sublevel
      const start = await pathInfoGeneration(sql);
      await other.put(enc('k'), enc('v'));
      await binarySublevel(level, 'chunks').batch([{ type: 'put', key: enc('c'), value: enc('v') }]);
      await level.put(enc('pathinfo'), enc('a root key, not in the sublevel'));
      await notes.sync();
      expect(await pathInfoGeneration(sql)).toBe(start);
      expect(notes.got()).toEqual([]);

      await level.batch([
        { type: 'put', key: enc('k1'), value: enc('v'), sublevel: pathinfo },
        { type: 'put', key: enc('k2'), value: enc('v'), sublevel: pathinfo },
        { type: 'put', key: enc('c2'), value: enc('v'), sublevel: binarySublevel(level, 'chunks') },
        { type: 'del', key: enc('k3'), sublevel: pathinfo },
      ] as never);
      await pathinfo.put(enc('k1'), enc('changed'));
      await pathinfo.del(enc('k2'));
      await pathinfo.clear();
      await notes.until(4);
      await notes.sync();
      expect(await pathInfoGeneration(sql)).toBe(start + 4n);
      expect(notes.got()).toEqual([1n, 2n, 3n, 4n].map((d) => String(start + d)));
    });

    it('changes in the transaction of the write: invisible and unannounced until it commits, undone by a rollback', async () => {
      const { level, url } = await fresh();
      const sql = connect(url);
      const notes = await listener(url);
      cleanup.push(notes.end);
      const start = await pathInfoGeneration(sql);

      const writer = await sql.reserve();
      cleanup.push(async () => writer.release());
      await writer`begin`;
      await writer`insert into kv (key, value) values (${enc('!pathinfo!x')}, ${enc('v')})`;
      // Inside: the writer sees its bump; nobody else does, nor is it announced.
      expect(await pathInfoGeneration(writer)).toBe(start + 1n);
      expect(await pathInfoGeneration(sql)).toBe(start);
      expect(await binarySublevel(level, 'pathinfo').get(enc('x'))).toBeUndefined();
      await notes.sync();
      expect(notes.got()).toEqual([]);
      await writer`commit`;
      await notes.until(1);
      expect(notes.got()).toEqual([String(start + 1n)]);
      expect(await pathInfoGeneration(sql)).toBe(start + 1n);
      expect(txt(await binarySublevel(level, 'pathinfo').get(enc('x')))).toBe('v');

      await writer`begin`;
      await writer`delete from kv where key = ${enc('!pathinfo!x')}`;
      expect(await pathInfoGeneration(writer)).toBe(start + 2n);
      await writer`rollback`;
      await notes.sync();
      expect(notes.got()).toEqual([String(start + 1n)]);
      expect(await pathInfoGeneration(sql)).toBe(start + 1n);

      // A PgLevel batch that fails takes its bump with it.
      const failed = await level
        .batch([
          { type: 'put', key: enc('!pathinfo!y'), value: enc('v') },
          { type: 'put', key: new Uint8Array(randomBytes(9000)), value: enc('v') },
        ])
        .catch((e: unknown) => e);
      expect(isFetchCacheError(failed, 'ERR_STORE_BACKEND')).toBe(true);
      await notes.sync();
      expect(notes.got()).toEqual([String(start + 1n)]);
      expect(await pathInfoGeneration(sql)).toBe(start + 1n);
    });

    it('is bumped by the path-info service on PgLevel (its sublevel is the one the trigger watches)', async () => {
      const { level, url } = await fresh();
      const sql = connect(url);
      const start = await pathInfoGeneration(sql);
      const service = new LevelPathInfoService(level);
      await service.put(PATH_INFO_FILE);
      await service.put(PATH_INFO_DIRECTORY);
      expect(await pathInfoGeneration(sql)).toBe(start + 2n);
      await service.delete(PATH_INFO_FILE.storePath.digest);
      expect(await pathInfoGeneration(sql)).toBe(start + 3n);
      expect(await service.get(PATH_INFO_DIRECTORY.storePath.digest)).toEqual(PATH_INFO_DIRECTORY);
    });
  });

  it('several PgLevels on one database write and read concurrently', async () => {
    const { level: first, url, schema } = await fresh();
    const sql = connect(url);
    const levels = [first, ...(await Promise.all([1, 2, 3].map(() => another(schema))))];
    const start = await pathInfoGeneration(sql);
    const per = 400;
    const keyOf = (w: number, i: number) => enc(`w${w}-${pad(i)}`);
    await Promise.all(
      levels.map(async (level, w) => {
        const db = binarySublevel(level, 'shared');
        const pathinfo = binarySublevel(level, 'pathinfo');
        for (let i = 0; i < per; i += 40) {
          await db.batch(
            Array.from({ length: 40 }, (_, j) => ({
              type: 'put' as const,
              key: keyOf(w, i + j),
              value: enc(`${w}`),
            })),
          );
          await pathinfo.put(keyOf(w, i), enc('v'));
          // Read what the others wrote so far: a prefix of each one's keys, never a gap.
          for (let o = 0; o < levels.length; o++) {
            const got = await db.getMany(Array.from({ length: per }, (_, j) => keyOf(o, j)));
            const present = got.findLastIndex((v) => v !== undefined) + 1;
            expect(got.slice(0, present).every((v) => txt(v) === `${o}`)).toBe(true);
            expect(present % 40).toBe(0);
          }
        }
      }),
    );
    for (const level of levels) {
      const all = await binarySublevel(level, 'shared').keys().all();
      expect(all.length).toBe(per * levels.length);
    }
    // Every path-info write was a transaction of its own, none lost.
    expect(await pathInfoGeneration(sql)).toBe(start + BigInt((per / 40) * levels.length));

    // Batches that cross (one deletes what the other puts, and the other way round) may deadlock
    // in PostgreSQL, which rolls one back: PgLevel runs it again, so every batch lands.
    const [x, y] = [enc('!cross!x'), enc('!cross!y')];
    for (let round = 0; round < 10; round++) {
      await Promise.all([
        first.batch([
          { type: 'del', key: x },
          { type: 'put', key: y, value: enc('first') },
          { type: 'put', key: enc('!pathinfo!cross'), value: enc('first') },
        ]),
        levels[1]!.batch([
          { type: 'put', key: enc('!pathinfo!cross'), value: enc('second') },
          { type: 'del', key: y },
          { type: 'put', key: x, value: enc('second') },
        ]),
      ]);
      const [vx, vy] = (await first.getMany([x, y])).map(txt);
      expect([vx, vy].filter((v) => v !== undefined)).toHaveLength(1);
    }
  });

  it('over a pool the caller owns: the schema is checked on open, and close leaves the pool open', async () => {
    const { url } = await fresh();
    const sql = connect(url);
    const level = new PgLevel(sql);
    await level.open();
    await level.put(enc('k'), enc('v'));
    await level.close();
    expect((await sql`select count(*)::int as n from kv where key = ${enc('k')}`)[0]?.n).toBe(1);
    await level.open();
    expect(txt(await level.get(enc('k')))).toBe('v');
    await level.close();

    const bare = connect(withSchema(levels!.database.url, schemaName()));
    const error = (await new PgLevel(bare).open().catch((e: unknown) => e)) as Error & { cause?: unknown };
    expect(isFetchCacheError(error.cause, 'ERR_STORE_MIGRATE')).toBe(true);
    expect((await bare`select 1 as one`)[0]?.one).toBe(1);
  });

  it('failures are ERR_STORE_BACKEND without the password; a missing schema is ERR_STORE_MIGRATE', async () => {
    const unreachable = new PgLevel('postgres://u:hunter2-secret@127.0.0.1:1/db', {
      pool: { connectTimeoutS: 5 },
    });
    const e1 = (await unreachable.open().catch((e: unknown) => e)) as Error & { cause?: unknown };
    expect(isFetchCacheError(e1.cause, 'ERR_STORE_BACKEND')).toBe(true);
    expect(String((e1.cause as Error).message)).not.toContain('hunter2');

    const bare = new PgLevel(withSchema(levels!.database.url, schemaName()));
    const e2 = (await bare.open().catch((e: unknown) => e)) as Error & { cause?: unknown };
    expect(isFetchCacheError(e2.cause, 'ERR_STORE_MIGRATE')).toBe(true);
  });
});

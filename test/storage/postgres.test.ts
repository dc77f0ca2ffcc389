/**
 * PostgreSQL foundations (src/storage/postgres.ts) against the real server
 * named by FETCH_CACHE_TEST_POSTGRES (scripts/services/pg-up.sh; .ci/run
 * starts it): connecting, the migration runner (idempotent, serialised
 * across connections, atomic, refusing older and newer schemas), and the two
 * server behaviours the shared store's coordination builds on: session
 * advisory locks die with their session, and LISTEN/NOTIFY delivers on commit.
 * Each test has a database of its own. Without the server these are
 * skipped, except in CI, where its absence fails.
 */

import type { Sql } from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import {
  checkSchema,
  connectPostgres,
  MIGRATIONS,
  migrate,
  openPostgres,
  redactPostgresUrl,
  schemaVersion,
} from '../../src/storage/postgres.js';
import { freshDatabase, TEST_POSTGRES, type TestDatabase } from '../helpers/postgres.js';

async function codeOf(p: Promise<unknown>): Promise<{ code: string | undefined; message: string }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err as Error,
  );
  expect(e, 'expected a rejection').toBeDefined();
  return { code: isFetchCacheError(e) ? e.code : undefined, message: e?.message ?? '' };
}

it('refuses a URL that is not postgres:// (ERR_BAD_URL), blanking a password in messages', async () => {
  expect((await codeOf(connectPostgres('mysql://u:pw@host/db'))).code).toBe('ERR_BAD_URL');
  expect(redactPostgresUrl('postgres://u:hunter2@h:5/db')).toBe('postgres://u:***@h:5/db');
});

it('reports an unreachable server as ERR_STORE_BACKEND without the password', async () => {
  const { code, message } = await codeOf(
    connectPostgres('postgres://u:hunter2-secret@127.0.0.1:1/db', { connectTimeoutS: 5 }),
  );
  expect(code).toBe('ERR_STORE_BACKEND');
  expect(message).toContain('127.0.0.1:1');
  expect(message).toContain('ECONNREFUSED');
  expect(message).not.toContain('hunter2');
});

it.runIf(process.env.CI === 'true')(
  'has a real PostgreSQL in CI (FETCH_CACHE_TEST_POSTGRES, started by .ci/run)',
  () => {
    expect(
      TEST_POSTGRES,
      'FETCH_CACHE_TEST_POSTGRES is unset: .ci/run must start it (scripts/services/pg-up.sh)',
    ).toBeDefined();
  },
);

describe.skipIf(TEST_POSTGRES === undefined)(
  `against PostgreSQL${TEST_POSTGRES === undefined ? ': skipped, FETCH_CACHE_TEST_POSTGRES is unset (scripts/services/pg-up.sh)' : ''}`,
  () => {
    const cleanup: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const f of cleanup.splice(0).reverse()) await f();
    });
    const database = async (): Promise<TestDatabase> => {
      const db = await freshDatabase();
      cleanup.push(db.drop);
      return db;
    };
    const connect = async (url: string, max = 4): Promise<Sql> => {
      const sql = await connectPostgres(url, { max });
      cleanup.push(() => sql.end({ timeout: 1 }));
      return sql;
    };

    it('refuses to open a database without the schema, and names `fetch-cache migrate`', async () => {
      const db = await database();
      const { code, message } = await codeOf(openPostgres(db.url));
      expect(code).toBe('ERR_STORE_MIGRATE');
      expect(message).toContain('fetch-cache migrate');
    });

    it('migrates once; a second migrate is a no-op; then the store opens', async () => {
      const db = await database();
      const sql = await connect(db.url);
      expect(await schemaVersion(sql)).toBe(0);
      expect(await migrate(sql)).toEqual({ from: 0, to: MIGRATIONS.length });
      expect(await migrate(sql)).toEqual({ from: MIGRATIONS.length, to: MIGRATIONS.length });
      const rows = await sql`select version from schema_version order by version`;
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
      const opened = await openPostgres(db.url);
      await opened.end();
    });

    it('serialises concurrent migrations from two connections: each migration runs once', async () => {
      const db = await database();
      // Not idempotent on purpose: applied twice, `create table` would fail.
      const migrations = [
        ...MIGRATIONS,
        'create table once_only (x integer); select pg_sleep(0.3)',
        'insert into once_only values (1)',
      ];
      const a = await connect(db.url);
      const b = await connect(db.url);
      const results = await Promise.all([migrate(a, migrations), migrate(b, migrations)]);
      expect(results.map((r) => r.to)).toEqual([migrations.length, migrations.length]);
      expect(results.map((r) => r.from).sort()).toEqual([0, migrations.length]);
      expect((await a`select count(*)::int as n from once_only`)[0]?.n).toBe(1);
      expect(await schemaVersion(b)).toBe(migrations.length);
    });

    it('applies the missing migrations of an older schema, all or nothing', async () => {
      const db = await database();
      const sql = await connect(db.url);
      await migrate(sql);
      const newer = [...MIGRATIONS, 'create table t2 (x integer)', 'create table t3 (x integer)'];
      expect((await codeOf(checkSchema(sql, newer))).code).toBe('ERR_STORE_MIGRATE');
      const opening = await codeOf(openPostgres(db.url, { migrations: newer }));
      expect(opening.code).toBe('ERR_STORE_MIGRATE');
      expect(opening.message).toContain(
        `version ${MIGRATIONS.length}, this fetch-cache needs ${newer.length}`,
      );

      const broken = [...newer, 'create table t4 (x integer', 'create table t5 (x integer)'];
      const failed = await codeOf(migrate(sql, broken));
      expect(failed.code).toBe('ERR_STORE_BACKEND');
      expect(failed.message).toContain(`schema version ${newer.length + 1}`);
      expect(await schemaVersion(sql)).toBe(MIGRATIONS.length);
      expect((await sql`select to_regclass('t2') as t`)[0]?.t).toBeNull();

      expect(await migrate(sql, newer)).toEqual({ from: MIGRATIONS.length, to: newer.length });
      await checkSchema(sql, newer);
    });

    it('refuses a schema newer than the code (ERR_STORE_VERSION), and will not migrate it', async () => {
      const db = await database();
      const sql = await connect(db.url);
      await migrate(sql);
      await sql`insert into schema_version (version) values (${MIGRATIONS.length + 1})`;
      const opening = await codeOf(openPostgres(db.url));
      expect(opening.code).toBe('ERR_STORE_VERSION');
      expect(opening.message).toContain('upgrade fetch-cache');
      expect((await codeOf(migrate(sql))).code).toBe('ERR_STORE_VERSION');
      expect(await schemaVersion(sql)).toBe(MIGRATIONS.length + 1);
    });

    it('a session advisory lock dies with its session (pg_terminate_backend)', async () => {
      const db = await database();
      const sql = await connect(db.url);
      const KEY = 4711;
      const ingest = await sql.reserve();
      const [{ pid }] = (await ingest`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
      await ingest`select pg_advisory_lock_shared(${KEY}::bigint)`;
      // A second shared holder is fine; the exclusive (gc) lock is not available.
      const other = await sql.reserve();
      expect((await other`select pg_try_advisory_lock_shared(${KEY}::bigint) as ok`)[0]?.ok).toBe(true);
      await other`select pg_advisory_unlock_shared(${KEY}::bigint)`;
      expect((await other`select pg_try_advisory_lock(${KEY}::bigint) as ok`)[0]?.ok).toBe(false);

      // The ingesting process "dies": its session is terminated, and with it the lock.
      expect((await other`select pg_terminate_backend(${pid}::int) as ok`)[0]?.ok).toBe(true);
      await expect(ingest`select 1`).rejects.toThrow();
      let got = false;
      for (let i = 0; i < 100 && !got; i++) {
        got = (await other`select pg_try_advisory_lock(${KEY}::bigint) as ok`)[0]?.ok === true;
        if (!got) await new Promise((r) => setTimeout(r, 50));
      }
      expect(got).toBe(true);
      await other`select pg_advisory_unlock(${KEY}::bigint)`;
      other.release();
      ingest.release();
    });

    it('LISTEN/NOTIFY: delivered to another connection, and only when the notifying transaction commits', async () => {
      const db = await database();
      const listener = await connect(db.url, 2);
      const writer = await connect(db.url, 2);
      const got: string[] = [];
      let wake: () => void = () => {};
      const arrived = (n: number) =>
        new Promise<void>((resolve) => {
          wake = () => got.length >= n && resolve();
          wake();
        });
      await listener.listen('fc_generation', (payload) => {
        got.push(payload);
        wake();
      });
      await writer.notify('fc_generation', 'plain');
      await arrived(1);
      expect(got).toEqual(['plain']);

      // A notification sent inside a transaction is held until it commits: 'outside', sent
      // while the transaction is open, arrives first.
      await writer.begin(async (tx) => {
        await tx`select pg_notify('fc_generation', 'in-transaction')`;
        await writer.notify('fc_generation', 'outside');
        await arrived(2);
      });
      await arrived(3);
      expect(got).toEqual(['plain', 'outside', 'in-transaction']);
    });
  },
);

/**
 * What the coordination of a `postgres://` store (src/coordination/postgres.ts,
 * pg-uploads.ts) does beyond the conformance suite (run on it by
 * test/backends/conformance.test.ts): a use lease nobody renews (its process
 * died) stops counting once it expires, and one that is renewed does not;
 * pending uploads are bounded in number and age, as rows every server sees;
 * path writes exclude each other per path across processes, so two caches
 * on one store given other contents for one path at once never both win;
 * an ingest whose database session ended (its lock against gc with it)
 * writes no path info.
 * On the real PostgreSQL (FETCH_CACHE_TEST_POSTGRES); skipped without it
 * (test/backends/postgres.test.ts fails in CI then).
 */

import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { PgPendingUploads } from '../../src/coordination/pg-uploads.js';
import { PostgresCoordination } from '../../src/coordination/postgres.js';
import type { PendingUpload } from '../../src/coordination/service.js';
import { TEST_POSTGRES } from '../helpers/postgres.js';
import { postgresStore, type TestPostgresStore } from '../helpers/postgres-store.js';
import { PATH_INFO_SYMLINK } from '../pathinfo/conformance.js';
import { gate } from './conformance.js';

const opened: { end(): Promise<void> }[] = [];
const stores: TestPostgresStore[] = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.end();
  for (const s of stores.splice(0)) await s.remove();
});

async function pools(): Promise<{ sql: postgres.Sql; sessions: postgres.Sql }> {
  const s = await postgresStore();
  stores.push(s);
  const sql = postgres(s.store, { max: 4, onnotice: () => {} });
  const sessions = postgres(s.store, { max: 4, onnotice: () => {} });
  opened.push({ end: () => sql.end() }, { end: () => sessions.end() });
  return { sql, sessions };
}

function upload(n: number, receivedAt: number): PendingUpload {
  return {
    node: { type: 'file', digest: new Uint8Array(32).fill(n), size: n, executable: true },
    narSha256: new Uint8Array(32).fill(n),
    narSize: 2 ** 40 + n,
    fileSha256: new Uint8Array(32).fill(100 + n),
    fileSize: n,
    compression: 'zstd',
    receivedAt,
  };
}

/** Waits (at most 20 s) until `done()`. */
async function until(done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(await done()).toBe(true);
}

describe.skipIf(TEST_POSTGRES === undefined)('coordination of a postgres:// store', () => {
  it('pathWrite: a writer of a path waits for another process writing it; other paths do not wait', async () => {
    const p = await pools();
    const a = await PostgresCoordination.open(p);
    const b = await PostgresCoordination.open(p);
    const path = new Uint8Array(20).fill(7);
    const events: string[] = [];
    const held = gate();
    const inside = gate();
    const first = a.pathWrite(path, async () => {
      events.push('a in');
      inside.open();
      await held.promise;
      events.push('a out');
    });
    await inside.promise;
    const second = b.pathWrite(path, async () => {
      events.push('b in');
    });
    // Another path goes through while `a` holds this one.
    await b.pathWrite(new Uint8Array(20).fill(8), async () => {
      events.push('other path');
    });
    await new Promise((r) => setTimeout(r, 300));
    held.open();
    await Promise.all([first, second]);
    expect(events).toEqual(['a in', 'other path', 'a out', 'b in']);
    await a.close();
    await b.close();
  });

  it('of two caches on one store given other contents for one path at once, exactly one wins each time', async () => {
    const s = await postgresStore();
    stores.push(s);
    const caches = await Promise.all([0, 1].map(() => openCache({ store: s.store, blobStore: s.blobStore })));
    try {
      for (let round = 0; round < 12; round++) {
        const storePath = { ...PATH_INFO_SYMLINK.storePath, digest: new Uint8Array(20).fill(round + 1) };
        const versions = caches.map((_, i) => ({
          ...PATH_INFO_SYMLINK,
          storePath,
          narSha256: new Uint8Array(32).fill(16 * round + i + 1),
        }));
        const results = await Promise.allSettled(caches.map((c, i) => c.pathInfos.put(versions[i]!)));
        expect(
          results.filter((r) => r.status === 'fulfilled'),
          `round ${round}`,
        ).toHaveLength(1);
        const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        expect(lost.reason).toMatchObject({ code: 'ERR_PATH_CONFLICT' });
        const won = versions[results.findIndex((r) => r.status === 'fulfilled')]!;
        for (const c of caches)
          expect((await c.pathInfos.get(storePath.digest))?.narSha256).toEqual(won.narSha256);
      }
    } finally {
      for (const c of caches) await c.close();
    }
  });

  it('an ingest whose session was lost (gc may have run meanwhile) writes no path info', async () => {
    const s = await postgresStore();
    stores.push(s);
    const cache = await openCache({ store: s.store, blobStore: s.blobStore });
    const admin = postgres(s.database, { max: 1, onnotice: () => {} });
    try {
      const ingest = cache.coordination.ingest(async () => {
        // The connection holding INGEST drops: PostgreSQL ends its session, and the lock with it.
        // (This store's INGEST key only: other tests may run on the same database.)
        const holders = await admin<{ pid: number }[]>`select pid from pg_locks
          where locktype = 'advisory' and mode = 'ShareLock' and granted and objsubid = 1
            and database = (select oid from pg_database where datname = current_database())
            and ((classid::bigint << 32) | objid::bigint)
              = hashtextextended(${s.schema} || '/fetch-cache/ingest', 0)`;
        expect(holders.length).toBeGreaterThan(0);
        for (const h of holders) await admin`select pg_terminate_backend(${h.pid})`;
        // So a gc (from anywhere) gets its exclusive phase at once...
        const end = await cache.coordination.exclusive({ timeoutMs: 10_000 });
        await end();
        // ...and this ingest must not record what it made.
        await cache.pathInfos.put(PATH_INFO_SYMLINK);
      });
      await expect(ingest).rejects.toMatchObject({ code: 'ERR_STORE_BACKEND' });
      expect(await cache.pathInfos.get(PATH_INFO_SYMLINK.storePath.digest)).toBeUndefined();
      // The next ingest takes a new session and writes.
      await cache.coordination.ingest(() => cache.pathInfos.put(PATH_INFO_SYMLINK));
      expect(await cache.pathInfos.get(PATH_INFO_SYMLINK.storePath.digest)).toEqual(PATH_INFO_SYMLINK);
    } finally {
      await admin.end();
      await cache.close();
    }
  });

  it('a use lease that is not renewed (its process died) stops counting once it expires', async () => {
    const p = await pools();
    const dying = await PostgresCoordination.open({ ...p, holdTtlMs: 300 });
    const other = await PostgresCoordination.open(p);
    const digest = new Uint8Array(20).fill(3);
    await dying.hold(digest); // never released
    expect(await other.held()).toEqual(new Set([Buffer.from(digest).toString('hex')]));
    await dying.close(); // stops renewing, as a killed process does
    await until(async () => (await other.held()).size === 0);
    await other.close();
  });

  it('a held lease is renewed while held', async () => {
    const p = await pools();
    const c = await PostgresCoordination.open({ ...p, holdTtlMs: 600 });
    const release = await c.hold(new Uint8Array(20).fill(4));
    const expiry = async () =>
      (
        await p.sql<
          { at: number }[]
        >`select extract(epoch from max(expires_at))::float8 as at from use_leases`
      )[0]!.at;
    const first = await expiry();
    await until(async () => (await expiry()) > first);
    await release();
    expect(await c.held()).toEqual(new Set());
    await c.close();
  });

  it('pending uploads: the newest `capacity` kept, none past their age, seen by every handle', async () => {
    const p = await pools();
    let now = 1_000_000;
    const a = new PgPendingUploads(p.sql, 2, 10_000, () => now);
    const b = new PgPendingUploads(p.sql, 2, 10_000, () => now);
    await a.add(upload(1, now - 3));
    await a.add(upload(2, now - 2));
    await a.add(upload(3, now - 1));
    expect(await b.count()).toBe(2);
    expect(await b.byNarHash(upload(1, 0).narSha256)).toBeUndefined();
    expect(await b.byNarHash(upload(3, 0).narSha256)).toEqual(upload(3, now - 1));
    expect(await b.byFileHash(upload(2, 0).fileSha256)).toEqual(upload(2, now - 2));
    now += 10_000 - 1; // upload 2 is now 10,001 ms old, upload 3 10,000
    expect(await b.byNarHash(upload(2, 0).narSha256)).toBeUndefined();
    expect(await b.byFileHash(upload(2, 0).fileSha256)).toBeUndefined();
    expect(await b.count()).toBe(1);
  });
});

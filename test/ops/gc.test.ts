/**
 * gc: what no path info reaches goes, everything reachable stays and still
 * verifies; --max-size evicts least recently used paths first, never a held
 * one or a recent one; a running ingest is waited for, and a dead process's
 * lease never blocks.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { missingData } from '../../src/maintenance/reach.js';
import { gc } from '../../src/ops/gc.js';
import { storeStats } from '../../src/ops/stats.js';
import { verify } from '../../src/ops/verify.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { addTree, bytes, chunkKeys, cleanTempDirs, storedKeys } from '../helpers/ops-store.js';

afterEach(cleanTempDirs);

async function writeOrphan(cache: Cache, seed: number, size: number): Promise<void> {
  const w = cache.blobs.writer();
  await w.write(bytes(seed, size));
  await w.close();
}

/** Record a use of the path at `when` and wait until it is written. */
async function usedAt(cache: Cache, info: PathInfo, when: number): Promise<void> {
  cache.coordination.recordUse(info.storePath.digest, when);
  await cache.coordination.flushUses();
}

/**
 * Waits until the uses the fetcher base notes for these adds are written (behind them, a turn of the event
 * loop later), so that the times the test sets afterwards are the last word.
 */
async function usesWritten(cache: Cache, infos: readonly PathInfo[]): Promise<void> {
  for (;;) {
    const atimes = await cache.coordination.lastUses();
    if (infos.every((i) => atimes.has(Buffer.from(i.storePath.digest).toString('hex')))) return;
    await new Promise((r) => setImmediate(r));
  }
}

describe('gc', () => {
  it('deletes only what no path info reaches, and the store still verifies', async () => {
    const cache = await openCache({ memory: true });
    await addTree(cache, 'one', { 'a.bin': bytes(1, 300_000), 'sub/b.txt': 'hello\n', 'c.txt': 'x' });
    await addTree(cache, 'two', { 'a.bin': bytes(1, 300_000), 'd.bin': bytes(2, 50_000) });
    const before = await storeStats(cache);
    const chunksBefore = (await chunkKeys(cache)).length;
    await writeOrphan(cache, 3, 400_000); // a failed fetch's leftovers
    const dirty = await storeStats(cache);
    expect(dirty.unreachable.chunks).toBeGreaterThan(0);
    const sumsBefore = (await storedKeys(cache, 'listSums')).length;
    const report = await gc(cache);
    // The orphan's chunk list went, and its sum with it; the live lists keep theirs.
    expect((await storedKeys(cache, 'listSums')).length).toBe(sumsBefore - 1);
    expect(await storedKeys(cache, 'listSums')).toEqual(await storedKeys(cache, 'chunkLists'));
    expect(report.deleted.chunks).toBe(dirty.unreachable.chunks);
    expect(report.deleted.chunkLists).toBe(1);
    expect(report.freedBytes).toBeGreaterThanOrEqual(400_000);
    expect(report.deleted.pathInfos).toBe(0);
    expect((await chunkKeys(cache)).length).toBe(chunksBefore);
    const after = await storeStats(cache);
    expect({ ...after, unreachable: undefined }).toEqual({ ...before, unreachable: undefined });
    expect(after.unreachable.bytes).toBe(0);
    expect((await verify(cache)).damaged).toEqual([]);
    await cache.close();
  });

  it('is a no-op on a clean store and on an empty one', async () => {
    const empty = await openCache({ memory: true });
    expect((await gc(empty)).freedBytes).toBe(0);
    const cache = await openCache({ memory: true });
    await addTree(cache, 'one', { f: bytes(9, 100_000) });
    const r = await gc(cache);
    expect(r.freedBytes).toBe(0);
    expect(r.paths).toBe(1);
  });

  it('--max-size evicts least recently used paths first, keeping shared data of the others', async () => {
    const cache = await openCache({ memory: true });
    const shared = bytes(10, 200_000);
    const old = await addTree(cache, 'old', { s: shared, own: bytes(11, 200_000) });
    const mid = await addTree(cache, 'mid', { s: shared, own: bytes(12, 200_000) });
    const fresh = await addTree(cache, 'fresh', { s: shared, own: bytes(13, 200_000) });
    await usesWritten(cache, [old, mid, fresh]);
    await usedAt(cache, old, 1_000);
    await usedAt(cache, mid, 2_000);
    await usedAt(cache, fresh, 3_000);
    const stats = await storeStats(cache);
    // Room for everything but one path's own 200 kB.
    const report = await gc(cache, { maxSize: stats.storedBytes - 150_000, now: () => 10_000 });
    expect(report.evicted).toEqual([expect.stringMatching(/-old$/)]);
    expect(report.freedBytes).toBeGreaterThanOrEqual(200_000);
    expect(report.storedBytes).toBeLessThanOrEqual(stats.storedBytes - 150_000);
    expect(await cache.pathInfos.get(old.storePath.digest)).toBeUndefined();
    const v = await verify(cache);
    expect(v.checked).toBe(2);
    expect(v.damaged).toEqual([]);
  });

  it('never evicts a held path or one used within keepRecentMs', async () => {
    const cache = await openCache({ memory: true });
    const a = await addTree(cache, 'a', { f: bytes(20, 100_000) });
    const b = await addTree(cache, 'b', { f: bytes(21, 100_000) });
    const c = await addTree(cache, 'c', { f: bytes(22, 100_000) });
    await usesWritten(cache, [a, b, c]);
    await usedAt(cache, a, 1);
    await usedAt(cache, b, 2);
    await usedAt(cache, c, Date.now());
    const release = await cache.coordination.hold(a.storePath.digest);
    const r = await gc(cache, { maxSize: 0, keepRecentMs: 60_000 });
    expect(r.evicted).toEqual([expect.stringMatching(/-b$/)]);
    expect(await cache.pathInfos.get(a.storePath.digest)).toBeDefined();
    await release();
    const r2 = await gc(cache, { maxSize: 0 });
    expect(r2.evicted.length).toBe(2);
    expect(r2.paths).toBe(0);
    expect((await storeStats(cache)).chunks).toBe(0);
    expect(await chunkKeys(cache)).toEqual([]);
  });

  it('waits for a running ingest and keeps the data it reused or wrote', async () => {
    const cache = await openCache({ memory: true });
    await addTree(cache, 'base', { f: bytes(30, 100_000) });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // An ingest that wrote its blob but not yet its path info when gc starts.
    let started!: () => void;
    const ingesting = new Promise<void>((r) => {
      started = r;
    });
    const ingest = cache.coordination.ingest(async () => {
      started();
      await writeOrphan(cache, 31, 250_000);
      await gate;
      return addTree(cache, 'late', { f: bytes(31, 250_000) });
    });
    await ingesting;
    let gcDone = false;
    const running = gc(cache).then((r) => {
      gcDone = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(gcDone).toBe(false);
    release();
    const late = await ingest;
    const report = await running;
    expect(report.paths).toBe(2);
    expect(await cache.pathInfos.get(late.storePath.digest)).toBeDefined();
    expect((await verify(cache)).damaged).toEqual([]);
  });

  it('missingData names what a tree lacks, for writers that commit after a gc could have run', async () => {
    const cache = await openCache({ memory: true });
    const info = await addTree(cache, 'a', { big: bytes(40, 300_000), small: 's' });
    expect(await missingData(cache.maintenance, info.node)).toEqual([]);
    const [first] = await chunkKeys(cache);
    expect(await cache.maintenance.delete('chunks', [Buffer.from(first!, 'hex')])).toMatchObject({
      count: 1,
    });
    expect(await missingData(cache.maintenance, info.node)).toEqual([`chunk ${first} is missing`]);
  });
});

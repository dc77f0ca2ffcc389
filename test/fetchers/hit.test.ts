/**
 * A cache hit is a read: a pinned hit and an index hit (unpinned, inside the TTL) take no lease and write
 * nothing before their answer; their use is noted (written behind it), and `gc --max-size` orders eviction
 * by it. Every call that writes to the store or takes a lease is seen at the services (the seam: whatever
 * the backend), over a real loopback HTTP server.
 */

import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import type { FetchResult, FetchSpec } from '../../src/fetchers/types.js';
import { gc } from '../../src/ops/gc.js';
import { storeStats } from '../../src/ops/stats.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

const A = randomBytes(100_000);
const B = randomBytes(100_000);
const sri = (b: Uint8Array) => `sha256-${createHash('sha256').update(b).digest('base64')}`;

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ '/a.bin': { body: A }, '/b.bin': { body: B } });
});

afterAll(async () => {
  await server?.close();
});

/**
 * Every call from now on that writes to the store or takes a lease (`service.method`), and the uses noted
 * (`use`, which are written behind the caller).
 */
function watchWrites(cache: Cache): string[] {
  const calls: string[] = [];
  const spy = (service: object, name: string, methods: string[]) => {
    const target = service as Record<string, (...args: unknown[]) => unknown>;
    for (const method of methods) {
      const original = target[method]!.bind(service);
      target[method] = (...args: unknown[]) => {
        calls.push(method === 'recordUse' ? 'use' : `${name}.${method}`);
        return original(...args);
      };
    }
  };
  spy(cache.blobs, 'blobs', ['writer']);
  spy(cache.directories, 'directories', ['put', 'putter']);
  spy(cache.pathInfos, 'pathInfos', ['put', 'delete']);
  spy(cache.narSums, 'narSums', ['put', 'delete']);
  spy(cache.fetchIndex, 'fetchIndex', ['put']);
  spy(cache.maintenance, 'maintenance', ['put', 'delete']);
  spy(cache.coordination, 'coordination', ['ingest', 'hold', 'recordUse']);
  return calls;
}

const hex = (r: FetchResult) => Buffer.from(r.storePath.digest).toString('hex');

/** Waits, a turn of the event loop at a time, until the recorded use of `r` is later than `after`. */
async function useRecorded(cache: Cache, r: FetchResult, after = 0): Promise<number> {
  for (;;) {
    const at = (await cache.coordination.lastUses()).get(hex(r));
    if (at !== undefined && at > after) return at;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('a cache hit', () => {
  it('pinned or from the fetch index: no write before the answer, its use written after it', async () => {
    const cache = await openCache({ memory: true });
    const pinned: FetchSpec = { type: 'url', url: server.url('/a.bin'), hash: sri(A) };
    const unpinned: FetchSpec = { type: 'url', url: server.url('/b.bin') };
    const a = await new Fetcher(cache).fetch(pinned);
    const b = await new Fetcher(cache).fetch(unpinned);
    const usedA = await useRecorded(cache, a);
    const usedB = await useRecorded(cache, b);
    const requests = server.requests();

    const writes = watchWrites(cache);
    const hitA = await new Fetcher(cache).fetch(pinned);
    expect(hitA.cached).toBe(true);
    expect(writes).toEqual(['use']); // no lease, no write on the way to the answer: a use noted
    expect(await useRecorded(cache, a, usedA - 1)).toBeGreaterThanOrEqual(usedA);

    writes.length = 0;
    const hitB = await new Fetcher(cache).fetch(unpinned);
    expect(hitB.cached).toBe(true);
    expect(writes).toEqual(['use']);
    expect(await useRecorded(cache, b, usedB - 1)).toBeGreaterThanOrEqual(usedB);
    expect(server.requests()).toBe(requests);
    await cache.close();
  });

  it('counts as a use for gc --max-size: the path hit last is kept, the other evicted', async () => {
    const cache = await openCache({ memory: true });
    const specA: FetchSpec = { type: 'url', url: server.url('/a.bin'), hash: sri(A), name: 'a' };
    const specB: FetchSpec = { type: 'url', url: server.url('/b.bin'), hash: sri(B), name: 'b' };
    const fetcher = new Fetcher(cache);
    const a = await fetcher.fetch(specA);
    await useRecorded(cache, a);
    // b is fetched after a: without a later use of a, a would be the least recently used.
    while (Date.now() <= (await useRecorded(cache, a))) await new Promise((r) => setImmediate(r));
    const b = await fetcher.fetch(specB);
    const usedB = await useRecorded(cache, b);
    while (Date.now() <= usedB) await new Promise((r) => setImmediate(r));
    const hit = await fetcher.fetch(specA);
    expect(hit.cached).toBe(true);
    await useRecorded(cache, a, usedB);
    const stats = await storeStats(cache);
    const report = await gc(cache, { maxSize: stats.storedBytes - 50_000 });
    expect(report.evicted).toEqual([expect.stringMatching(/-b$/)]);
    expect(await cache.pathInfos.get(a.storePath.digest)).toBeDefined();
    await cache.close();
  }, 30_000);
});

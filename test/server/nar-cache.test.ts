/**
 * The in-memory cache of small NARs (nar-cache.ts): a second download is
 * served from memory with identical bytes, Ranges are slices of it, a path
 * that gc deleted is never served from it, and the budgets hold.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { gc } from '../../src/ops/gc.js';
import { NarCache } from '../../src/server/nar-cache.js';
import { countCalls } from '../helpers/count-calls.js';
import { addSampleTree, type Harness, rawRequest, startHarness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('NAR cache', () => {
  it('serves a repeated NAR from memory with identical bytes, and Ranges as slices', async () => {
    h = await startHarness();
    const info = await addSampleTree(h, 'cached', 300_000);
    const url = `/nar/${encodeNix32(info.narSha256)}.nar`;
    const loads = countCalls(h.cache.directories, 'getRecursive');
    // A Range before the NAR is cached renders from its offset and caches nothing.
    const early = await rawRequest(h.port, 'GET', url, { Range: 'bytes=250000-' });
    expect(early.status).toBe(206);
    expect(h.services.narCache.size).toBe(0);
    const first = await rawRequest(h.port, 'GET', url);
    expect(first.status).toBe(200);
    expect(Buffer.from(sha256(first.body)).equals(Buffer.from(info.narSha256))).toBe(true);
    expect(h.services.narCache.size).toBe(info.narSize);
    const again = await rawRequest(h.port, 'GET', url);
    expect(again.body.equals(first.body)).toBe(true);
    expect(again.headers['content-length']).toBe(String(info.narSize));
    expect(again.headers.etag).toBe(`"${encodeNix32(info.narSha256)}"`);
    for (const [range, start, end] of [
      ['bytes=100-4000', 100, 4000],
      ['bytes=250000-', 250_000, info.narSize - 1],
      ['bytes=-77', info.narSize - 77, info.narSize - 1],
    ] as const) {
      const r = await rawRequest(h.port, 'GET', url, { Range: range });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${info.narSize}`);
      expect(r.body.equals(first.body.subarray(start, end + 1))).toBe(true);
    }
    expect((await rawRequest(h.port, 'GET', url, { Range: `bytes=${info.narSize}-` })).status).toBe(416);
    expect(early.body.equals(first.body.subarray(250_000))).toBe(true);
    expect(loads.count).toBe(1);
  });

  it('never serves a cached NAR of a path gc deleted', async () => {
    h = await startHarness();
    const info = await addSampleTree(h, 'gone', 1000);
    const url = `/nar/${encodeNix32(info.narSha256)}.nar`;
    expect((await rawRequest(h.port, 'GET', url)).status).toBe(200);
    expect(h.services.narCache.size).toBe(info.narSize);
    await gc(h.cache, { maxSize: 1 });
    expect((await rawRequest(h.port, 'GET', url)).status).toBe(404);
    expect((await rawRequest(h.port, 'GET', url, { Range: 'bytes=0-10' })).status).toBe(404);
  });

  it('streams NARs over the item size without keeping them', async () => {
    h = await startHarness({ narCache: { budgetBytes: 1 << 20, maxItemBytes: 100_000 } });
    const info = await addSampleTree(h, 'big', 300_000);
    const r = await rawRequest(h.port, 'GET', `/nar/${encodeNix32(info.narSha256)}.nar`);
    expect(Buffer.from(sha256(r.body)).equals(Buffer.from(info.narSha256))).toBe(true);
    expect(h.services.narCache.size).toBe(0);
  });

  it('keeps within its byte budget, least recently used out first, and shares concurrent loads', async () => {
    const cache = new NarCache({ budgetBytes: 100, maxItemBytes: 60, maxLoadingBytes: 100 });
    let loads = 0;
    const load = (n: number) => async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 5));
      return Buffer.alloc(n, loads);
    };
    const [a, b] = await Promise.all([
      cache.getOrLoad('a', 40, load(40)),
      cache.getOrLoad('a', 40, load(40)),
    ]);
    expect(a).toBe(b);
    expect(loads).toBe(1);
    await cache.getOrLoad('b', 40, load(40));
    expect(cache.get('a')).toBeDefined(); // a is now the most recent
    await cache.getOrLoad('c', 40, load(40));
    expect(cache.size).toBe(80);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
    expect(await cache.getOrLoad('d', 61, load(61))).toBeUndefined();
    expect(loads).toBe(3);
  });
});

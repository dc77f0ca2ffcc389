/**
 * GetBatcher (src/blob/chunk-store.ts): gets issued together reach the
 * database as one getMany, each caller gets its own value (misses included),
 * and a failing read fails every caller of that batch.
 */

import { describe, expect, it } from 'vitest';
import { openMemoryKV } from '../../src/backends/memory.js';
import { GetBatcher } from '../../src/blob/chunk-store.js';
import type { KV } from '../../src/storage/kv.js';

const key = (n: number) => new Uint8Array([n]);

async function counted() {
  const db = await openMemoryKV();
  const calls = { get: 0, getMany: 0, keys: [] as number[] };
  const getMany = db.getMany.bind(db);
  const get = db.get.bind(db);
  Object.assign(db, {
    getMany: (keys: Uint8Array[]) => {
      calls.getMany++;
      calls.keys.push(keys.length);
      return getMany(keys);
    },
    get: (k: Uint8Array) => {
      calls.get++;
      return get(k);
    },
  });
  return { db: db as KV, calls };
}

describe('GetBatcher', () => {
  it('sends gets issued in one synchronous stretch as one getMany, in order, misses as undefined', async () => {
    const { db, calls } = await counted();
    for (let i = 0; i < 50; i += 2) await db.put(key(i), new Uint8Array([i, i]));
    const b = new GetBatcher(db);
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => b.get(key(i))));
    expect(calls).toMatchObject({ getMany: 1, get: 0, keys: [50] });
    got.forEach((v, i) => {
      if (i % 2 === 0) expect([...v!]).toEqual([i, i]);
      else expect(v).toBeUndefined();
    });
    // A lone get later is a plain get.
    expect([...(await b.get(key(4)))!]).toEqual([4, 4]);
    expect(calls.get).toBe(1);
  });

  it('rejects every caller of a batch whose read fails', async () => {
    const db = await openMemoryKV();
    Object.assign(db, { getMany: () => Promise.reject(new Error('disk on fire')) });
    const b = new GetBatcher(db);
    const results = await Promise.allSettled([b.get(key(1)), b.get(key(2))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

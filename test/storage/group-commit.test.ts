/**
 * GroupCommit: concurrent writers share batches, a failed batch fails every
 * writer in it (and no later group is lost), `put()` resolves only once the
 * data is in the database, `room()` holds writers back while a full group
 * waits, puts into sublevels of one root are one atomic batch, and with
 * `lingerMs` a stream of small puts fills one group. Also the
 * blob service on top: many concurrent small blobs make few batches.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { openMemoryKV } from '../../src/backends/memory.js';
import { LevelBlobService } from '../../src/blob/leveldb.js';
import { blake3 } from '../../src/nix/hashing.js';
import { GroupCommit, type Put } from '../../src/storage/group-commit.js';
import { binarySublevel, type KV } from '../../src/storage/kv.js';

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);
const key = (i: number) => new Uint8Array([i >> 8, i & 0xff]);
const hex = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString('hex'));

/** Counts `batch()` calls on a root and can make them fail. */
function instrument(db: KV): { batches: number[]; fail: { next: boolean } } {
  const batches: number[] = [];
  const fail = { next: false };
  const original = db.batch.bind(db) as (ops: unknown[]) => Promise<void>;
  (db as unknown as { batch: (ops: unknown[]) => Promise<void> }).batch = async (ops: unknown[]) => {
    if (fail.next) {
      fail.next = false;
      throw new Error('disk full');
    }
    batches.push(ops.length);
    return original(ops);
  };
  return { batches, fail };
}

describe('GroupCommit', () => {
  it('groups many concurrent writers into few batches; each resolves with its data stored', async () => {
    const db = await openMemoryKV();
    const kv = binarySublevel(db, 'x');
    const { batches } = instrument(db);
    const commit = new GroupCommit();
    const writers = Array.from({ length: 500 }, (_, i) =>
      commit.put([{ kv, key: key(i), value: bytes(100, i) }]).then(async () => {
        // Durable when the writer hears of it: readable right away.
        expect(hex(await kv.get(key(i)))).toBe(hex(bytes(100, i)));
      }),
    );
    await Promise.all(writers);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(500);
    expect(batches.length).toBeLessThanOrEqual(2);
    expect(commit.stats).toEqual({ batches: batches.length, puts: 500 });
    await db.close();
  });

  it('a writer that arrives while a batch is written goes into the next one, written right after', async () => {
    const db = await openMemoryKV();
    const { batches } = instrument(db);
    const commit = new GroupCommit();
    const first = commit.put([{ kv: db, key: key(1), value: bytes(1) }]);
    await new Promise((r) => setImmediate(r)); // the first group starts writing
    const later = [2, 3, 4].map((i) => commit.put([{ kv: db, key: key(i), value: bytes(1) }]));
    await Promise.all([first, ...later]);
    expect(batches).toEqual([1, 3]);
    await db.close();
  });

  it('a failing batch rejects every writer in it; the next group still gets written', async () => {
    const db = await openMemoryKV();
    const { fail } = instrument(db);
    const commit = new GroupCommit();
    fail.next = true;
    const failed = [1, 2, 3].map((i) => commit.put([{ kv: db, key: key(i), value: bytes(1) }]));
    const results = await Promise.allSettled(failed);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ message: 'disk full' });
    expect(await db.get(key(1))).toBeUndefined();
    await commit.put([{ kv: db, key: key(9), value: bytes(1) }]);
    expect(hex(await db.get(key(9)))).toBe(hex(bytes(1)));
    await db.close();
  });

  it('puts of one call are never split, and sublevels of one root share one batch', async () => {
    const db = await openMemoryKV();
    const a = binarySublevel(db, 'a');
    const b = binarySublevel(db, 'b');
    const { batches } = instrument(db);
    const commit = new GroupCommit({ groupBytes: 10 });
    await commit.put([
      { kv: a, key: key(1), value: bytes(50) },
      { kv: b, key: key(1), value: bytes(50) },
      { kv: a, key: key(2), value: bytes(50) },
    ]);
    expect(batches).toEqual([3]);
    expect(hex(await b.get(key(1)))).toBe(hex(bytes(50)));
    await db.close();
  });

  it('room() holds writers while a full group waits for the batch being written', async () => {
    const db = await openMemoryKV();
    const commit = new GroupCommit({ groupBytes: 1000 });
    const big = (i: number): Put[] => [{ kv: db, key: key(i), value: bytes(1000) }];
    const writing = commit.put(big(1)); // full: starts writing at once
    const queued = commit.put(big(2)); // full again while 1 is written
    let roomy = false;
    const room = commit.room().then(() => {
      roomy = true;
    });
    expect(roomy).toBe(false);
    await writing;
    await room; // group 2 started writing once group 1 was done
    expect(roomy).toBe(true);
    await queued;
    await commit.drain();
    await db.close();
  });

  it('with lingerMs, a stream of small puts fills one group; a lone put waits lingerMs', async () => {
    const db = await openMemoryKV();
    const { batches } = instrument(db);
    const commit = new GroupCommit({ lingerMs: 500 });
    const started = performance.now();
    await commit.put([{ kv: db, key: key(0), value: bytes(1) }]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(490);
    expect(batches).toEqual([1]);
    // One writer after another, each put 2 ms after the last: no pause of 500 ms, so one group.
    const written: Promise<void>[] = [];
    for (let i = 1; i <= 20; i++) {
      written.push(commit.put([{ kv: db, key: key(i), value: bytes(1) }]));
      await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(written);
    expect(batches).toEqual([1, 20]);
    await db.close();
  });

  it('with lingerMs, a group that never pauses is still written 50 × lingerMs after its first put', async () => {
    const db = await openMemoryKV();
    const { batches } = instrument(db);
    const commit = new GroupCommit({ lingerMs: 10 });
    const written: Promise<void>[] = [];
    let firstDone = -1;
    const started = performance.now();
    for (let i = 0; performance.now() - started < 1200; i++) {
      const p = commit.put([{ kv: db, key: key(i), value: bytes(1) }]);
      if (i === 0) p.then(() => (firstDone = performance.now() - started));
      written.push(p);
      await new Promise((r) => setTimeout(r, 4));
    }
    await Promise.all(written);
    // (A stall of the event loop longer than lingerMs ends a group sooner; never later.)
    expect(batches.length).toBeGreaterThanOrEqual(2);
    expect(firstDone).toBeGreaterThanOrEqual(0);
    expect(firstDone).toBeLessThan(1200);
    await db.close();
  });

  it('with lingerMs, a full group is written at once', async () => {
    const db = await openMemoryKV();
    const commit = new GroupCommit({ lingerMs: 60_000, groupBytes: 1000 });
    const started = performance.now();
    await commit.put([{ kv: db, key: key(1), value: bytes(1000) }]);
    expect(performance.now() - started).toBeLessThan(30_000);
    await db.close();
  });

  it('the filter can drop puts before the batch', async () => {
    const db = await openMemoryKV();
    const { batches } = instrument(db);
    const commit = new GroupCommit({ filter: async (puts) => puts.filter((p) => p.key[1] !== 2) });
    await Promise.all([1, 2, 3].map((i) => commit.put([{ kv: db, key: key(i), value: bytes(1) }])));
    expect(batches).toEqual([2]);
    expect(await db.get(key(2))).toBeUndefined();
    await db.close();
  });
});

describe('LevelBlobService with group commit', () => {
  it('1,000 concurrent small blobs make few batches; each is readable once its close() resolves', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fetch-cache-group-'));
    const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'db'), {
      keyEncoding: 'view',
      valueEncoding: 'view',
    });
    await db.open();
    try {
      const service = new LevelBlobService(db as unknown as KV);
      const closed = await Promise.all(
        Array.from({ length: 1000 }, async (_, i) => {
          const data = new TextEncoder().encode(`file number ${i}\n`.repeat(1 + (i % 50)));
          const w = service.writer();
          await w.write(data);
          const { digest } = await w.close();
          expect(digest).toEqual(blake3(data));
          expect(await service.has(digest)).toBe(true);
          return digest;
        }),
      );
      expect(new Set(closed.map((d) => Buffer.from(d).toString('hex'))).size).toBe(1000);
      expect(service.commit.stats.puts).toBe(1000);
      expect(service.commit.stats.batches).toBeLessThanOrEqual(5);
      // Writing them all again stores nothing new: the group's hasMany drops them.
      const before = service.commit.stats.batches;
      await Promise.all(
        Array.from({ length: 1000 }, async (_, i) => {
          const w = service.writer();
          await w.write(new TextEncoder().encode(`file number ${i}\n`.repeat(1 + (i % 50))));
          await w.close();
        }),
      );
      expect(service.commit.stats.batches).toBe(before);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a failing batch fails the close() of every blob in it, and leaves no blob visible', async () => {
    const db = await openMemoryKV();
    const service = new LevelBlobService(db);
    const { fail } = instrument(db);
    fail.next = true;
    const data = [1, 2, 3].map((i) => new TextEncoder().encode(`blob ${i}`));
    const results = await Promise.allSettled(
      data.map(async (d) => {
        const w = service.writer();
        await w.write(d);
        return w.close();
      }),
    );
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const d of data) expect(await service.has(blake3(d))).toBe(false);
    await db.close();
  });
});

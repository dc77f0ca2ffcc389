/**
 * LevelBlobService: the conformance suite with chunk bytes inline in
 * classic-level (LevelDB in a temp dir; with pack files, and on memory-level,
 * it runs in test/backends/conformance.test.ts and packs.test.ts), plus what
 * only this layout can show: damaged
 * chunks and chunk lists are caught, shared chunks are stored once, chunks are
 * written while the blob streams in, and data survives reopening.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { describe, expect, it } from 'vitest';
import { openMemoryKV } from '../../src/backends/memory.js';
import { decodeChunkList, encodeChunkList } from '../../src/blob/chunk-list.js';
import { DEFAULT_CHUNKER_PARAMS } from '../../src/blob/fastcdc.js';
import { LevelBlobService, listSum } from '../../src/blob/leveldb.js';
import type { B3Digest } from '../../src/castore/digest.js';
import { isFetchCacheError } from '../../src/errors.js';
import { blake3 } from '../../src/nix/hashing.js';
import type { KV } from '../../src/storage/kv.js';
import { blobServiceConformance, randomBytes, readAll, writeBlob } from './conformance.js';

async function flipByte(kv: KV, key: Uint8Array, index = 0): Promise<void> {
  const value = await kv.get(key);
  if (value === undefined) throw new Error('nothing stored under that key');
  const damaged = new Uint8Array(value);
  damaged[index % damaged.length]! ^= 0x01;
  await kv.put(key, damaged);
}

async function countKeys(kv: KV): Promise<number> {
  return (await kv.keys().all()).length;
}

async function memoryService(options = {}) {
  const db = await openMemoryKV();
  const service = new LevelBlobService(db, options);
  return { db, service, close: () => db.close() };
}

function openClassic(dir: string): ClassicLevel<Uint8Array, Uint8Array> {
  return new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'db'), {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
}

blobServiceConformance(
  'LevelBlobService on classic-level',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fetch-cache-blob-'));
    const db = openClassic(dir);
    await db.open();
    const service = new LevelBlobService(db as unknown as KV);
    return {
      service,
      corrupt: (d: B3Digest) => flipByte(service.chunks, d, 7),
      close: async () => {
        await db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  { chunker: DEFAULT_CHUNKER_PARAMS },
);

describe('LevelBlobService layout', () => {
  it('stores a single-chunk blob once, under its own digest, with no chunk list', async () => {
    const { service, close } = await memoryService();
    const data = randomBytes(1000, 1);
    const { digest } = await writeBlob(service, data);
    expect(await countKeys(service.blobs)).toBe(0);
    expect(Buffer.from((await service.chunks.get(digest))!).equals(data)).toBe(true);
    expect(await service.stat(digest)).toEqual({ size: 1000, chunks: [{ digest, size: 1000 }] });
    await close();
  });

  it('stores a chunk shared by two blobs once; writing again adds nothing', async () => {
    const { service, close } = await memoryService();
    const v1 = randomBytes(4 << 20, 2);
    const v2 = new Uint8Array(
      Buffer.concat([v1.subarray(0, 2 << 20), Buffer.from('an insertion'), v1.subarray(2 << 20)]),
    );
    const a = await writeBlob(service, v1, [1 << 20]);
    const b = await writeBlob(service, v2, [70_000]);
    const chunksA = (await service.stat(a.digest))!.chunks;
    const chunksB = (await service.stat(b.digest))!.chunks;
    const distinct = new Set([...chunksA, ...chunksB].map((c) => Buffer.from(c.digest).toString('hex')));
    expect(distinct.size).toBeLessThan(chunksA.length + chunksB.length - chunksA.length / 2);
    expect(await countKeys(service.chunks)).toBe(distinct.size);
    expect(await countKeys(service.blobs)).toBe(2);
    await writeBlob(service, v2, [1 << 22]);
    expect(await countKeys(service.chunks)).toBe(distinct.size);
    await close();
  });

  it('writes chunks while the blob streams in (bounded memory), the list only at close', async () => {
    const { service, close } = await memoryService({ batchBytes: 256 << 10 });
    const data = randomBytes(4 << 20, 3);
    const w = service.writer();
    for (let pos = 0; pos < data.length; pos += 256 << 10)
      await w.write(data.subarray(pos, pos + (256 << 10)));
    expect(await countKeys(service.chunks)).toBeGreaterThan(8);
    expect(await countKeys(service.blobs)).toBe(0);
    await w.abort();
    expect(await service.has(blake3(data))).toBe(false);
    await close();
  });

  it('a damaged chunk list is ERR_INTEGRITY on stat and read', async () => {
    const { service, close } = await memoryService();
    const { digest } = await writeBlob(service, randomBytes(1 << 20, 4));
    const list = (await service.blobs.get(digest))!;
    for (const index of [0, 1, 10, list.length - 10, list.length - 1]) {
      await flipByte(service.blobs, digest, index);
      await expect(service.stat(digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
      await expect(service.read(digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
      await service.blobs.put(digest, list);
    }
    await service.blobs.put(digest, list.subarray(0, list.length - 5));
    await expect(service.stat(digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await expect(service.read(digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await close();
  });

  it('a missing chunk is ERR_INTEGRITY naming the blob', async () => {
    const { service, close } = await memoryService();
    const { digest } = await writeBlob(service, randomBytes(1 << 20, 5));
    const chunks = (await service.stat(digest))!.chunks;
    await service.chunks.del(chunks[1]!.digest);
    const error = await readAll(service, digest).catch((e: unknown) => e);
    expect(isFetchCacheError(error, 'ERR_INTEGRITY')).toBe(true);
    expect((error as { path: string }).path).toBe(Buffer.from(digest).toString('hex'));
    await close();
  });

  it('a chunk list whose chunks are valid but reordered fails the whole-blob check', async () => {
    const { service, close } = await memoryService();
    const { digest } = await writeBlob(service, randomBytes(1 << 20, 6));
    const chunks = [...(await service.stat(digest))!.chunks];
    [chunks[0], chunks[1]] = [chunks[1]!, chunks[0]!];
    await service.blobs.put(digest, encodeChunkList(chunks));
    await expect(readAll(service, digest)).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      expected: Buffer.from(digest).toString('hex'),
    });
    await close();
  });

  it('after a verified full read, still catches a reordered list and a damaged chunk', async () => {
    const { service, close } = await memoryService();
    const data = randomBytes(1 << 20, 8);
    const { digest } = await writeBlob(service, data);
    expect(Buffer.from((await readAll(service, digest))!).equals(data)).toBe(true);
    expect(Buffer.from((await readAll(service, digest))!).equals(data)).toBe(true);
    const chunks = [...(await service.stat(digest))!.chunks];
    const list = (await service.blobs.get(digest))!;
    [chunks[0], chunks[1]] = [chunks[1]!, chunks[0]!];
    await service.blobs.put(digest, encodeChunkList(chunks));
    await expect(readAll(service, digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await service.blobs.put(digest, list);
    await flipByte(service.chunks, chunks[2]!.digest, 3);
    await expect(readAll(service, digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await close();
  });

  it('a list sum spares a fresh service the whole-blob hash; a missing or damaged one is re-made by a full read', async () => {
    const db = await openMemoryKV();
    const data = randomBytes(1 << 20, 9);
    const { digest } = await writeBlob(new LevelBlobService(db), data);
    // Written with its sum: a new service (nothing verified in memory) reads without hashing the blob.
    const fresh = new LevelBlobService(db);
    expect((await fresh.listSums!.get(digest))?.length).toBe(32);
    expect(Buffer.from((await readAll(fresh, digest))!).equals(data)).toBe(true);
    expect(fresh.stats.wholeBlobHashes).toBe(0);
    // As a store written before sums existed: the first full read hashes the blob and writes the sum.
    await fresh.listSums!.del(digest);
    const old = new LevelBlobService(db);
    expect(Buffer.from((await readAll(old, digest))!).equals(data)).toBe(true);
    expect(old.stats.wholeBlobHashes).toBe(1);
    await old.close();
    const sum = Buffer.from((await old.listSums!.get(digest))!);
    expect(sum.equals(listSum(digest, (await old.blobs.get(digest))!))).toBe(true);
    const after = new LevelBlobService(db);
    await readAll(after, digest);
    expect(after.stats.wholeBlobHashes).toBe(0);
    // A damaged sum is only a reason to hash again.
    await flipByte(after.listSums!, digest, 5);
    const damaged = new LevelBlobService(db);
    expect(Buffer.from((await readAll(damaged, digest))!).equals(data)).toBe(true);
    expect(damaged.stats.wholeBlobHashes).toBe(1);
    await db.close();
  });

  it('a list sum does not vouch for another list under the key: a swapped list still fails', async () => {
    const db = await openMemoryKV();
    const service = new LevelBlobService(db);
    const a = await writeBlob(service, randomBytes(1 << 20, 10));
    const b = await writeBlob(service, randomBytes(1 << 20, 11));
    // b's list (whose chunks all verify) under a's key, and even b's sum with it.
    await service.blobs.put(a.digest, (await service.blobs.get(b.digest))!);
    const fresh = new LevelBlobService(db);
    await expect(readAll(fresh, a.digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await service.listSums!.put(a.digest, (await service.listSums!.get(b.digest))!);
    await expect(readAll(new LevelBlobService(db), a.digest)).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
    });
    await db.close();
  });

  it('survives closing and reopening LevelDB', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fetch-cache-blob-'));
    try {
      const data = randomBytes(1 << 20, 8);
      let db = openClassic(dir);
      await db.open();
      const { digest } = await writeBlob(new LevelBlobService(db as unknown as KV), data);
      await db.close();
      db = openClassic(dir);
      await db.open();
      const again = new LevelBlobService(db as unknown as KV);
      expect(Buffer.from((await readAll(again, digest))!).equals(data)).toBe(true);
      await db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('chunk list encoding', () => {
  const chunks = [
    { digest: blake3(new Uint8Array([1])), size: 1 },
    { digest: blake3(new Uint8Array([2])), size: 300 },
    { digest: blake3(new Uint8Array([3])), size: 0xffffffff },
  ];
  /** A body with a valid checksum, to reach the checks behind it. */
  const sealed = (body: number[]) => {
    const b = new Uint8Array(body);
    return new Uint8Array([...b, ...blake3(b).subarray(0, 4)]);
  };
  const entry = (size: number[]) => [...chunks[0]!.digest, ...size];

  it('round-trips and is compact', () => {
    const bytes = encodeChunkList(chunks);
    expect(bytes.length).toBe(1 + 1 + 3 * 32 + 1 + 2 + 5 + 4);
    expect(decodeChunkList(bytes)).toEqual({ size: 1 + 300 + 0xffffffff, chunks });
    expect(decodeChunkList(sealed([1, 1, ...entry([0x81, 0x01])])).size).toBe(129);
  });

  it('rejects garbage strictly', () => {
    const bad = [
      new Uint8Array(0),
      new Uint8Array([1, 0, 0, 0]),
      randomBytes(100, 9),
      sealed([2, 0]), // version
      sealed([1, 1, ...entry([0])]), // empty chunk
      sealed([1, 1, ...entry([0x81, 0x00])]), // overlong varint
      sealed([1, 1, ...entry([0x80, 0x80, 0x80, 0x80, 0x10])]), // > 2^32-1
      sealed([1, 2, ...entry([5])]), // count exceeds data
      sealed([1, 1, ...entry([5]), 0]), // trailing byte
      sealed([1, 1, ...chunks[0]!.digest.subarray(0, 20)]), // truncated
    ];
    for (const b of bad) {
      expect(() => decodeChunkList(b, 'blob')).toThrow(
        expect.objectContaining({ code: 'ERR_INTEGRITY', path: 'blob' }),
      );
    }
  });
});

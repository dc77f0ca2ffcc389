/**
 * Pack files (src/blob/packs.ts): the blob conformance suite with chunk bytes
 * in packs beside classic-level, the on-disk record and location formats,
 * reopening, rollover to a new pack, compaction after deletes (and what it
 * must leave alone), damage that must surface as ERR_INTEGRITY, and the
 * memory that holds chunks until their group is written (reused, never
 * overwritten while a chunk waits in it).
 */

import { spawn } from 'node:child_process';
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CHUNKER_PARAMS } from '../../src/blob/fastcdc.js';
import { LevelBlobService } from '../../src/blob/leveldb.js';
import {
  decodeLocation,
  encodeLocation,
  LOCATION_SIZE,
  PACK_MAGIC,
  PackChunkStore,
  packFile,
  packWriterPid,
  RECORD_HEADER,
} from '../../src/blob/packs.js';
import type { B3Digest } from '../../src/castore/digest.js';
import { isFetchCacheError } from '../../src/errors.js';
import { blake3 } from '../../src/nix/hashing.js';
import type { Put } from '../../src/storage/group-commit.js';
import type { KV } from '../../src/storage/kv.js';
import { flipChunkByte } from '../helpers/chunk-damage.js';
import { blobServiceConformance, randomBytes, readAll, writeBlob } from './conformance.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Opened {
  dir: string;
  db: ClassicLevel<Uint8Array, Uint8Array>;
  service: LevelBlobService;
  store: PackChunkStore;
  close(): Promise<void>;
}

async function open(dir?: string, packBytes?: number, batchBytes?: number): Promise<Opened> {
  const root = dir ?? mkdtempSync(join(tmpdir(), 'fc-packs-'));
  if (dir === undefined) dirs.push(root);
  const db = new ClassicLevel<Uint8Array, Uint8Array>(join(root, 'db'), {
    keyEncoding: 'view',
    valueEncoding: 'view',
  });
  await db.open();
  const service = new LevelBlobService(db as unknown as KV, {
    chunkStore: (index) =>
      new PackChunkStore(index, join(root, 'packs'), {
        // A location cache (what `serve` turns on): the conformance suite reads its large blobs through it.
        locationCache: 1 << 16,
        ...(packBytes === undefined ? {} : { packBytes }),
      }),
    ...(batchBytes === undefined ? {} : { batchBytes }),
  });
  const store = service.chunkStore as PackChunkStore;
  return {
    dir: root,
    db,
    service,
    store,
    close: async () => {
      await service.close();
      await db.close();
    },
  };
}

function packNames(dir: string): string[] {
  return readdirSync(join(dir, 'packs')).filter((n) => n.endsWith('.pack'));
}

blobServiceConformance(
  'LevelBlobService with pack files on classic-level',
  async () => {
    const o = await open();
    return {
      service: o.service,
      corrupt: (d: B3Digest) => flipChunkByte(o.store, d, 7),
      close: o.close,
    };
  },
  { chunker: DEFAULT_CHUNKER_PARAMS },
);

/** Bytes in all packs of `dir`. */
function packBytes(dir: string): number {
  return packNames(dir).reduce((n, name) => n + readFileSync(join(dir, 'packs', name)).length, 0);
}

/** The pack store's slabs for held chunks: all there are, and how many hold a chunk now. */
function slabs(store: PackChunkStore): { all: number; holding: number } {
  const held = (store as unknown as { held: { slabs: Map<unknown, { held: number }> } }).held;
  const all = [...held.slabs.values()];
  return { all: all.length, holding: all.filter((s) => s.held > 0).length };
}

describe('chunks held until their group is written', () => {
  it('a large blob reuses a few slabs of held chunks, whatever its size', async () => {
    const o = await open();
    try {
      const data = randomBytes(64 << 20, 41);
      const { digest } = await writeBlob(o.service, data, [1 << 20]);
      // 64 MiB through 4 MiB slabs: without reuse 16 of them; the group commit holds ~2 groups of 8 MiB.
      expect(slabs(o.store).all).toBeLessThanOrEqual(8);
      expect(slabs(o.store).holding).toBe(0);
      expect(Buffer.from((await readAll(o.service, digest))!).equals(data)).toBe(true);
    } finally {
      await o.close();
    }
  });

  it('concurrent writers, small groups: no chunk is overwritten while it waits for its group', async () => {
    const o = await open(undefined, undefined, 256 << 10);
    try {
      const blobs = Array.from({ length: 12 }, (_, i) => randomBytes((1 << 20) + i * 77_777, 50 + i));
      const written = await Promise.all(
        blobs.map((b, i) => writeBlob(o.service, b, [4096 + i * 1000, 200_000])),
      );
      for (let i = 0; i < blobs.length; i++) {
        expect(Buffer.from(written[i]!.digest).equals(Buffer.from(blake3(blobs[i]!)))).toBe(true);
        expect(Buffer.from((await readAll(o.service, written[i]!.digest))!).equals(blobs[i]!)).toBe(true);
      }
      expect(slabs(o.store).holding).toBe(0);
    } finally {
      await o.close();
    }
  });

  it('write a chunk repeated in the blob, or already stored, once (and with a given digest)', async () => {
    const o = await open();
    try {
      // A 1 MiB random block seven times: FastCDC cuts the repeats alike after the first.
      const block = randomBytes(1 << 20, 42);
      const data = new Uint8Array(7 << 20);
      for (let i = 0; i < 7; i++) data.set(block, i << 20);
      const w = o.service.writer({ digest: Promise.resolve(blake3(data)) });
      for (let pos = 0; pos < data.length; pos += 3 << 19) await w.write(data.slice(pos, pos + (3 << 19)));
      const { digest } = await w.close();
      const chunks = (await o.service.stat(digest))!.chunks;
      const unique = new Map(chunks.map((c) => [Buffer.from(c.digest).toString('hex'), c.size]));
      expect(unique.size).toBeLessThan(chunks.length);
      const expected =
        PACK_MAGIC.length + [...unique.values()].reduce((n, size) => n + RECORD_HEADER + size, 0);
      expect(packBytes(o.dir)).toBe(expected);
      await writeBlob(o.service, data, [1 << 20]);
      expect(packBytes(o.dir)).toBe(expected);
      expect(Buffer.from((await readAll(o.service, digest))!).equals(data)).toBe(true);
    } finally {
      await o.close();
    }
  });

  it('a failed pack write fails the blob: nothing of it is indexed, no list is put, nothing stays held', async () => {
    const o = await open();
    try {
      const store = o.store as unknown as { store(puts: readonly Put[]): Promise<Put[]> };
      store.store = async () => {
        throw new Error('no space left on device');
      };
      const data = randomBytes(6 << 20, 43);
      await expect(writeBlob(o.service, data, [1 << 20])).rejects.toThrow(/no space left/);
      expect(await o.service.has(blake3(data))).toBe(false);
      expect(await o.service.chunks.keys().all()).toEqual([]);
      await o.service.commit.drain(); // groups the failed writer had filled before it failed
      expect(slabs(o.store).holding).toBe(0);
    } finally {
      await o.close();
    }
  });
});

describe('pack file format', () => {
  it('keeps chunk bytes in a pack and a 20-byte location in the index', async () => {
    const o = await open();
    const data = randomBytes(300_000, 1);
    const { digest } = await writeBlob(o.service, data);
    const chunks = (await o.service.stat(digest))!.chunks;
    expect(chunks.length).toBeGreaterThan(1);
    const [name] = packNames(o.dir);
    const pack = readFileSync(join(o.dir, 'packs', name!));
    expect(pack.subarray(0, PACK_MAGIC.length).toString('latin1')).toBe('FCPACK1\n');
    expect(packWriterPid(name!.slice(0, 16))).toBe(process.pid);
    let at = 0;
    for (const c of chunks) {
      const row = (await o.service.chunks.get(c.digest))!;
      expect(row.length).toBe(LOCATION_SIZE);
      const loc = decodeLocation(row)!;
      expect(loc.pack).toBe(name!.slice(0, 16));
      expect(loc.length).toBe(c.size);
      // u32le length | digest | bytes
      expect(pack.readUInt32LE(loc.offset - RECORD_HEADER)).toBe(c.size);
      expect(Buffer.from(pack.subarray(loc.offset - 32, loc.offset)).equals(Buffer.from(c.digest))).toBe(
        true,
      );
      const bytes = pack.subarray(loc.offset, loc.offset + loc.length);
      expect(Buffer.from(blake3(bytes)).equals(Buffer.from(c.digest))).toBe(true);
      expect(bytes.equals(Buffer.from(data.subarray(at, at + c.size)))).toBe(true);
      at += c.size;
    }
    expect(pack.length).toBe(PACK_MAGIC.length + chunks.length * RECORD_HEADER + data.length);
    await o.close();
  });

  it('encodes offsets beyond 4 GiB in locations', () => {
    const id = Buffer.from('0102030405060708', 'hex');
    const loc = decodeLocation(encodeLocation(id, 5 * 2 ** 32 + 77, 65536))!;
    expect(loc).toEqual({ pack: '0102030405060708', offset: 5 * 2 ** 32 + 77, length: 65536 });
    expect(decodeLocation(new Uint8Array(19))).toBeUndefined();
  });

  it('stores a chunk once however often it is written, and reads after reopening', async () => {
    const o = await open();
    const data = randomBytes(200_000, 2);
    const a = await writeBlob(o.service, data);
    const b = await writeBlob(o.service, data);
    expect(b.digest).toEqual(a.digest);
    const size = readFileSync(join(o.dir, 'packs', packNames(o.dir)[0]!)).length;
    const chunks = (await o.service.stat(a.digest))!.chunks.length;
    expect(size).toBe(PACK_MAGIC.length + chunks * RECORD_HEADER + data.length);
    await o.close();
    const again = await open(o.dir);
    expect(Buffer.from((await readAll(again.service, a.digest))!).equals(Buffer.from(data))).toBe(true);
    // A new writer appends to a new pack of its own.
    await writeBlob(again.service, randomBytes(1000, 3));
    expect(packNames(o.dir).length).toBe(2);
    await again.close();
  });

  it('starts a new pack when the current one is full', async () => {
    const o = await open(undefined, 256 << 10);
    const blobs = [];
    for (let i = 0; i < 6; i++) blobs.push({ data: randomBytes(200_000, 10 + i) });
    const digests = [];
    for (const b of blobs) digests.push((await writeBlob(o.service, b.data)).digest);
    expect(packNames(o.dir).length).toBeGreaterThan(2);
    for (let i = 0; i < blobs.length; i++) {
      expect(Buffer.from((await readAll(o.service, digests[i]!))!).equals(Buffer.from(blobs[i]!.data))).toBe(
        true,
      );
    }
    await o.close();
  });
});

/** A blob to keep and a blob whose chunks are then deleted (what gc leaves for compaction). */
async function keepAndDrop(o: Opened, keepBytes: number, dropBytes: number, seed: number) {
  const keep = randomBytes(keepBytes, seed);
  const drop = randomBytes(dropBytes, seed + 1);
  const k = await writeBlob(o.service, keep);
  const d = await writeBlob(o.service, drop);
  const dropChunks = (await o.service.stat(d.digest))!.chunks;
  await o.service.chunks.batch(dropChunks.map((c) => ({ type: 'del' as const, key: c.digest })));
  return { keep, drop, k, dropChunks };
}

describe('compaction', () => {
  it('moves live chunks out of mostly dead packs, deletes the packs and frees their space', async () => {
    const o = await open();
    const { keep, drop, k, dropChunks } = await keepAndDrop(o, 100_000, 900_000, 20);
    await o.close();

    const again = await open(o.dir);
    const [before] = packNames(o.dir);
    const report = await again.store.compact();
    expect(report.packs).toBe(1);
    expect(report.moved).toBe((await again.service.stat(k.digest))!.chunks.length);
    expect(report.freedBytes).toBe(PACK_MAGIC.length + drop.length + dropChunks.length * RECORD_HEADER);
    expect(packNames(o.dir)).not.toContain(before);
    expect(Buffer.from((await readAll(again.service, k.digest))!).equals(Buffer.from(keep))).toBe(true);
    expect(again.store.diskBytes()).toBeLessThan(keep.length + 10_000);
    await again.close();
  });

  it('remembers chunk locations (a second read looks up no chunk) and still finds chunks that another store compacted away', async () => {
    const o = await open();
    const { keep, k } = await keepAndDrop(o, 600_000, 900_000, 22);
    expect(Buffer.from((await readAll(o.service, k.digest))!).equals(Buffer.from(keep))).toBe(true);
    const looked: Uint8Array[] = [];
    const getMany = o.store.index.getMany.bind(o.store.index);
    o.store.index.getMany = (keys: Uint8Array[]) => {
      looked.push(...keys);
      return getMany(keys);
    };
    expect(Buffer.from((await readAll(o.service, k.digest))!).equals(Buffer.from(keep))).toBe(true);
    // Only the probe of the blob digest itself as a one-chunk blob, none of its chunks.
    expect(looked.map((key) => Buffer.from(key).toString('hex'))).toEqual([
      Buffer.from(k.digest).toString('hex'),
    ]);

    // Another store over the same database and packs (as another process would) moves the chunks and
    // deletes the pack the first one remembers.
    const other = new LevelBlobService(o.db as unknown as KV, {
      chunkStore: (index) => new PackChunkStore(index, join(o.dir, 'packs')),
    });
    const [before] = packNames(o.dir);
    expect((await (other.chunkStore as PackChunkStore).compact()).packs).toBe(1);
    expect(packNames(o.dir)).not.toContain(before);
    expect(Buffer.from((await readAll(o.service, k.digest))!).equals(Buffer.from(keep))).toBe(true);
    await other.close();
    await o.close();
  });

  it('merges small finished packs and leaves a single one, the current one, and running writers alone', async () => {
    const o = await open();
    const first = await writeBlob(o.service, randomBytes(5000, 30));
    await o.close();
    const o2 = await open(o.dir);
    const second = await writeBlob(o2.service, randomBytes(5000, 31));
    await o2.close();
    // A pack whose writer runs (our parent process): never touched, even with nothing live in it.
    const id = Buffer.alloc(8);
    id.writeUInt32LE(process.ppid, 0);
    id.writeUInt32LE(0xabcdef, 4);
    const foreign = packFile(join(o.dir, 'packs'), id.toString('hex'));
    writeFileSync(foreign, PACK_MAGIC);

    const o3 = await open(o.dir);
    const finished = packNames(o.dir);
    await writeBlob(o3.service, randomBytes(5000, 32));
    const current = packNames(o.dir).filter((n) => !finished.includes(n));
    expect(current.length).toBe(1);
    const report = await o3.store.compact();
    expect(report.packs).toBe(2); // the two small finished packs, merged into o3's
    expect(packNames(o.dir).sort()).toEqual([`${id.toString('hex')}.pack`, current[0]!].sort());
    for (const b of [first, second]) expect((await readAll(o3.service, b.digest))!.length).toBe(5000);
    // Nothing else to do now: one finished pack would only be copied onto itself.
    await o3.close();
    const o4 = await open(o.dir);
    expect((await o4.store.compact()).packs).toBe(0);
    await o4.close();
    unlinkSync(foreign);
  });

  it('tolerates a torn record at the end of a pack left by a killed writer', async () => {
    const o = await open();
    const a = await writeBlob(o.service, randomBytes(70_000, 40));
    const dropped = await writeBlob(o.service, randomBytes(400_000, 41));
    const dropChunks = (await o.service.stat(dropped.digest))!.chunks;
    await o.service.chunks.batch(dropChunks.map((c) => ({ type: 'del' as const, key: c.digest })));
    await o.close();
    const [name] = packNames(o.dir);
    const header = Buffer.alloc(RECORD_HEADER);
    header.writeUInt32LE(50_000, 0);
    appendFileSync(join(o.dir, 'packs', name!), Buffer.concat([header, Buffer.alloc(1000, 7)]));
    const again = await open(o.dir);
    expect((await again.store.compact()).packs).toBe(1);
    expect((await readAll(again.service, a.digest))!.length).toBe(70_000);
    await again.close();
  });

  it('keeps a pack whose records cannot all be read back (a damaged record header), live chunks and all', async () => {
    const o = await open();
    // Dead chunks first, the live blob after them: a scan stopped by the damage never reaches it.
    const dropped = await writeBlob(o.service, randomBytes(900_000, 50));
    const keep = randomBytes(100_000, 51);
    const k = await writeBlob(o.service, keep);
    const dropChunks = (await o.service.stat(dropped.digest))!.chunks;
    await o.service.chunks.batch(dropChunks.map((c) => ({ type: 'del' as const, key: c.digest })));
    await o.close();
    const [name] = packNames(o.dir);
    const file = join(o.dir, 'packs', name!);
    const data = readFileSync(file);
    data.writeUInt32LE(0xfffffff0, PACK_MAGIC.length); // the first record's length, now past the end
    writeFileSync(file, data);
    const again = await open(o.dir);
    expect((await again.store.compact()).packs).toBe(0);
    expect(packNames(o.dir)).toContain(name);
    expect(Buffer.from((await readAll(again.service, k.digest))!).equals(Buffer.from(keep))).toBe(true);
    await again.close();
  });

  it('does not count a pack of a process that is gone as running', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
    const o = await open();
    const id = Buffer.alloc(8);
    id.writeUInt32LE(pid, 0);
    writeFileSync(packFile(join(o.dir, 'packs'), id.toString('hex')), PACK_MAGIC);
    expect((await o.store.compact()).packs).toBe(1);
    expect(packNames(o.dir)).toEqual([]);
    await o.close();
  });
});

describe('damage', () => {
  const integrity = (e: unknown) => isFetchCacheError(e) && e.code === 'ERR_INTEGRITY';

  it('a deleted pack file makes reads fail with ERR_INTEGRITY', async () => {
    const o = await open();
    const { digest } = await writeBlob(o.service, randomBytes(150_000, 50));
    await o.close();
    for (const n of packNames(o.dir)) unlinkSync(join(o.dir, 'packs', n));
    const again = await open(o.dir);
    const e = await readAll(again.service, digest).catch((x: unknown) => x);
    expect(integrity(e)).toBe(true);
    await again.close();
  });

  it('readSmall: a one-chunk blob whole and verified; several chunks or a miss undefined', async () => {
    const o = await open();
    const small = await writeBlob(o.service, randomBytes(5000, 53));
    const big = await writeBlob(o.service, randomBytes(150_000, 54));
    expect((await o.service.readSmall(small.digest))!.length).toBe(5000);
    expect(await o.service.readSmall(big.digest)).toBeUndefined();
    expect(await o.service.readSmall(blake3(new Uint8Array([1])))).toBeUndefined();
    await flipChunkByte(o.store, small.digest, 3);
    expect(integrity(await o.service.readSmall(small.digest).catch((x: unknown) => x))).toBe(true);
    await o.close();
  });

  it('a truncated pack or a damaged index row fails with ERR_INTEGRITY', async () => {
    const o = await open();
    const big = await writeBlob(o.service, randomBytes(150_000, 51));
    const small = await writeBlob(o.service, randomBytes(3000, 52));
    await o.close();
    const [name] = packNames(o.dir);
    const file = join(o.dir, 'packs', name!);
    writeFileSync(file, readFileSync(file).subarray(0, -100)); // cuts into the last chunk: `small`
    const again = await open(o.dir);
    expect(integrity(await readAll(again.service, small.digest).catch((x: unknown) => x))).toBe(true);
    const first = (await again.service.stat(big.digest))!.chunks[0]!;
    await again.service.chunks.put(first.digest, new Uint8Array(7));
    expect(integrity(await readAll(again.service, big.digest).catch((x: unknown) => x))).toBe(true);
    await again.close();
  });
});

/** The bytes `readSegments` names, read back from the files; every run released. */
async function segmentBytes(service: LevelBlobService, digest: B3Digest) {
  const runs = await service.readSegments(digest);
  if (runs === undefined) return undefined;
  const parts: Buffer[] = [];
  const lengths: number[] = [];
  for await (const run of runs) {
    for (const s of run.segments) {
      const b = Buffer.alloc(s.length);
      expect(readSync(s.fd, b, 0, s.length, s.offset)).toBe(s.length);
      parts.push(b);
      lengths.push(s.length);
    }
    run.release();
    run.release(); // idempotent
  }
  return { bytes: Buffer.concat(parts), lengths };
}

describe('segments (for sendfile)', () => {
  const integrity = (e: unknown) => isFetchCacheError(e) && e.code === 'ERR_INTEGRITY';

  it('name the bytes of a multi-chunk blob in the pack files, one segment per chunk, in order', async () => {
    const o = await open();
    const data = randomBytes(3_000_000, 60);
    const { digest } = await writeBlob(o.service, data, [100_000, 700_000, 2_200_000]);
    const got = (await segmentBytes(o.service, digest))!;
    expect(got.bytes.equals(Buffer.from(data))).toBe(true);
    expect(got.lengths).toEqual((await o.service.stat(digest))!.chunks.map((c) => c.size));
    expect(got.lengths.length).toBeGreaterThan(10);
    await o.close();
  });

  it('are undefined for a one-chunk blob, a miss, and a list not known to add up to its blob until a full read checked it', async () => {
    const o = await open();
    const small = await writeBlob(o.service, randomBytes(5000, 61));
    const data = randomBytes(600_000, 62);
    const big = await writeBlob(o.service, data);
    expect(await o.service.readSegments(small.digest)).toBeUndefined();
    expect(await o.service.readSegments(blake3(new Uint8Array([9])))).toBeUndefined();
    await o.service.listSums!.del(big.digest);
    await o.close();
    const again = await open(o.dir);
    expect(await again.service.readSegments(big.digest)).toBeUndefined();
    expect(Buffer.from((await readAll(again.service, big.digest))!).equals(Buffer.from(data))).toBe(true);
    expect((await segmentBytes(again.service, big.digest))!.bytes.equals(Buffer.from(data))).toBe(true);
    await again.close();
  });

  it('verify every chunk: a flipped byte, a truncated pack and a damaged index row are ERR_INTEGRITY', async () => {
    const o = await open();
    const data = randomBytes(2_500_000, 63);
    const { digest } = await writeBlob(o.service, data);
    const chunks = (await o.service.stat(digest))!.chunks;
    const victim = chunks[chunks.length - 3]!;
    await flipChunkByte(o.store, victim.digest, 11);
    const runs: { release(): void }[] = [];
    const e = await (async () => {
      for await (const run of (await o.service.readSegments(digest))!) runs.push(run);
    })().catch((x: unknown) => x);
    expect(integrity(e)).toBe(true);
    expect((e as { expected?: string }).expected).toBe(Buffer.from(victim.digest).toString('hex'));
    expect(runs.length).toBeGreaterThan(0); // the runs before the damaged chunk came out
    for (const r of runs) r.release();
    await flipChunkByte(o.store, victim.digest, 11); // repaired
    expect((await segmentBytes(o.service, digest))!.bytes.equals(Buffer.from(data))).toBe(true);
    await o.close();

    const [name] = packNames(o.dir);
    const file = join(o.dir, 'packs', name!);
    writeFileSync(file, readFileSync(file).subarray(0, -1000));
    const cut = await open(o.dir);
    expect(integrity(await segmentBytes(cut.service, digest).catch((x: unknown) => x))).toBe(true);
    await cut.service.chunks.put(chunks[0]!.digest, new Uint8Array(7));
    expect(integrity(await segmentBytes(cut.service, digest).catch((x: unknown) => x))).toBe(true);
    await cut.service.chunks.del(chunks[1]!.digest);
    const missing = await segmentBytes(cut.service, digest).catch((x: unknown) => x);
    expect(integrity(missing)).toBe(true);
    await cut.close();
  });

  it('find chunks again after another store compacted their pack away, while a held run stays readable', async () => {
    const o = await open();
    const { keep, k } = await keepAndDrop(o, 1_500_000, 2_000_000, 64);
    expect((await segmentBytes(o.service, k.digest))!.bytes.equals(Buffer.from(keep))).toBe(true);
    const runs = (await o.service.readSegments(k.digest))![Symbol.asyncIterator]();
    const held = (await runs.next()).value as import('../../src/blob/capabilities.js').SegmentRun;
    const other = new LevelBlobService(o.db as unknown as KV, {
      chunkStore: (index) => new PackChunkStore(index, join(o.dir, 'packs')),
    });
    const [before] = packNames(o.dir);
    expect((await (other.chunkStore as PackChunkStore).compact()).packs).toBe(1);
    expect(packNames(o.dir)).not.toContain(before);
    // The held run's descriptor still reads the deleted pack's bytes.
    const s = held.segments[0]!;
    const b = Buffer.alloc(s.length);
    expect(readSync(s.fd, b, 0, s.length, s.offset)).toBe(s.length);
    expect(b.equals(Buffer.from(keep.subarray(0, s.length)))).toBe(true);
    held.release();
    await runs.return?.(undefined);
    expect((await segmentBytes(o.service, k.digest))!.bytes.equals(Buffer.from(keep))).toBe(true);
    await other.close();
    await o.close();
  });
});

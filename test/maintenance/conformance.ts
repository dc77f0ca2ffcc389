/**
 * The suite every store's maintenance service passes (maintenance/service.ts):
 * what the services write is listed by kind, in the documented formats;
 * records are read, sized, deleted (in batches, with the change stamp moved
 * for path infos) and written raw; compaction keeps what is live; and gc,
 * verify and stats, which see the store only through this service, work on
 * it unchanged.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeChunkList } from '../../src/blob/chunk-list.js';
import type { Cache } from '../../src/cache.js';
import { encodeEntry } from '../../src/castore/nodes.js';
import { isFetchCacheError } from '../../src/errors.js';
import { addPath } from '../../src/fs/add.js';
import { KINDS, type Kind } from '../../src/maintenance/service.js';
import { blake3 } from '../../src/nix/hashing.js';
import { gc } from '../../src/ops/gc.js';
import { storeStats } from '../../src/ops/stats.js';
import { verify } from '../../src/ops/verify.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { decodePathInfo } from '../../src/pathinfo/proto.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function bytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function keys(cache: Cache, kind: Kind): Promise<string[]> {
  const out: string[] = [];
  for await (const k of cache.maintenance.keys(kind)) out.push(hex(k));
  return out;
}

async function writeBlob(cache: Cache, data: Uint8Array): Promise<Uint8Array> {
  const w = cache.blobs.writer();
  await w.write(data);
  return (await w.close()).digest;
}

export function maintenanceConformance(
  name: string,
  open: () => Promise<{ cache: Cache; close(): Promise<void> }>,
): void {
  describe(`Maintenance conformance: ${name}`, () => {
    let cache: Cache;
    let close: () => Promise<void>;
    let dir: string;
    beforeEach(async () => {
      ({ cache, close } = await open());
      dir = mkdtempSync(join(tmpdir(), 'fc-maint-'));
    });
    afterEach(async () => {
      await close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** A tree of a small file, a large file (several chunks) and a subdirectory, added as `name`. */
    async function addTree(treeName: string, seed: number): Promise<{ info: PathInfo; big: Uint8Array }> {
      const root = join(dir, treeName);
      mkdirSync(join(root, 'sub'), { recursive: true });
      const big = bytes(seed, 700_000);
      writeFileSync(join(root, 'big.bin'), big);
      writeFileSync(join(root, 'sub', 'small.txt'), `small ${seed}\n`);
      return { info: await addPath(cache, root), big };
    }

    it('an empty store holds nothing of any kind, and a miss is a miss', async () => {
      const m = cache.maintenance;
      for (const kind of KINDS) expect(await keys(cache, kind)).toEqual([]);
      const absent = new Uint8Array(32).fill(7);
      expect(await m.getMany('directories', [absent])).toEqual([undefined]);
      expect(await m.hasMany('chunks', [absent])).toEqual([false]);
      expect(await m.sizes('chunks', [absent])).toEqual([undefined]);
      expect(await m.chunkBytes(absent)).toBeUndefined();
      expect(await m.delete('chunks', [absent])).toEqual({ count: 0, bytes: 0 });
      expect(await m.compact()).toMatchObject({ packs: 0, moved: 0 });
      expect(await m.reindex()).toEqual({ chunks: 0, bytes: 0 });
      expect(m.damage(new Error('not damage'))).toBeUndefined();
      expect(typeof m.database).toBe('string');
    });

    it('lists what the services wrote, by kind, in the documented formats', async () => {
      const m = cache.maintenance;
      const { info, big } = await addTree('t', 1);
      await cache.fetchIndex.put('["k"]', '{"v":1}');

      const infos = await collect(m.entries('pathInfos'));
      expect(infos.length).toBe(1);
      const [key, value] = infos[0]!;
      expect(hex(key)).toBe(hex(info.storePath.digest));
      expect(decodePathInfo(value)).toEqual(info);
      expect(await keys(cache, 'narHashIndex')).toEqual([hex(info.narSha256) + hex(info.storePath.digest)]);

      const dirs = await collect(m.entries('directories'));
      expect(dirs.length).toBe(2);
      for (const [k, v] of dirs) expect(hex(blake3(v))).toBe(hex(k));

      const bigDigest = blake3(big);
      const stat = (await cache.blobs.stat(bigDigest))!;
      expect(stat.chunks.length).toBeGreaterThan(1);
      expect(await keys(cache, 'chunkLists')).toEqual([hex(bigDigest)]);
      const [list] = await m.getMany('chunkLists', [bigDigest]);
      expect(decodeChunkList(list!).chunks.map((c) => hex(c.digest))).toEqual(
        stat.chunks.map((c) => hex(c.digest)),
      );
      expect(await keys(cache, 'listSums')).toEqual([hex(bigDigest)]);

      // Every chunk of the large file, and the small file (one chunk: its own digest), are chunks.
      const chunks = await keys(cache, 'chunks');
      expect(chunks.length).toBe(stat.chunks.length + 1);
      let at = 0;
      for (const c of stat.chunks) {
        expect(chunks).toContain(hex(c.digest));
        expect(hex((await m.chunkBytes(c.digest))!)).toBe(hex(big.subarray(at, at + c.size)));
        at += c.size;
      }
      expect(
        await m.sizes(
          'chunks',
          stat.chunks.map((c) => c.digest),
        ),
      ).toEqual(stat.chunks.map((c) => c.size));
      expect(await m.hasMany('chunks', [stat.chunks[0]!.digest, new Uint8Array(32)])).toEqual([true, false]);

      const [sum] = await m.getMany('narSums', [encodeEntry(new Uint8Array(0), info.node)]);
      expect(sum?.length).toBe(40);
      expect(hex(sum!.subarray(0, 32))).toBe(hex(info.narSha256));

      const fetch = await collect(m.entries('fetchIndex'));
      expect(fetch.map(([k, v]) => [Buffer.from(k).toString(), Buffer.from(v).toString()])).toEqual([
        ['["k"]', '{"v":1}'],
      ]);
    });

    it('deletes in batches, counting what was there; deleting path infos changes the stamp', async () => {
      const m = cache.maintenance;
      const { info } = await addTree('t', 2);
      const dirs = (await collect(m.entries('directories'))).map(([k, v]) => ({ k, size: v.length }));
      const absent = new Uint8Array(32).fill(9);
      const r = await m.delete('directories', [...dirs.map((d) => d.k), absent], { batchSize: 1 });
      expect(r).toEqual({ count: 2, bytes: dirs[0]!.size + dirs[1]!.size });
      expect(await keys(cache, 'directories')).toEqual([]);

      const chunk = (await collect(m.keys('chunks')))[0]!;
      const [size] = await m.sizes('chunks', [chunk]);
      expect(await m.delete('chunks', [chunk])).toEqual({ count: 1, bytes: size });
      expect(await m.chunkBytes(chunk)).toBeUndefined();

      const before = cache.coordination.changes.current();
      expect((await m.delete('pathInfos', [info.storePath.digest])).count).toBe(1);
      expect(cache.coordination.changes.current()).not.toBe(before);
      expect(await cache.pathInfos.get(info.storePath.digest)).toBeUndefined();
    });

    it('writes records raw; the services still verify what they read', async () => {
      const m = cache.maintenance;
      const { info } = await addTree('t', 3);
      const before = cache.coordination.changes.current();
      await m.put('pathInfos', [[info.storePath.digest, new Uint8Array([1, 2, 3])]]);
      expect(cache.coordination.changes.current()).not.toBe(before);
      expect(hex((await m.getMany('pathInfos', [info.storePath.digest]))[0]!)).toBe('010203');
      const e = await cache.pathInfos.get(info.storePath.digest).catch((x: unknown) => x);
      expect(isFetchCacheError(e, 'ERR_INTEGRITY')).toBe(true);
    });

    it('compaction keeps every live chunk readable', async () => {
      const a = await addTree('a', 4);
      await writeBlob(cache, bytes(5, 900_000)); // garbage: no path reaches it
      expect((await storeStats(cache)).unreachable.chunks).toBeGreaterThan(0);
      const report = await gc(cache);
      expect(report.deleted.chunks).toBeGreaterThan(0);
      expect(report.compacted.packs).toBeGreaterThanOrEqual(0);
      expect((await verify(cache)).damaged).toEqual([]);
      const read: Uint8Array[] = [];
      for await (const c of (await cache.blobs.read(blake3(a.big)))!) read.push(c);
      expect(hex(Buffer.concat(read))).toBe(hex(a.big));
      const disk = cache.maintenance.diskBytes();
      expect(disk === undefined || disk >= 0).toBe(true);
    });

    it('gc, verify and stats work on it unchanged', async () => {
      const a = await addTree('a', 6);
      const b = await addTree('b', 7);
      const clean = await storeStats(cache);
      expect(clean).toMatchObject({
        paths: 2,
        logicalBytes: a.info.narSize + b.info.narSize,
        damagedPathInfos: 0,
      });
      expect(clean.unreachable).toEqual({ chunks: 0, chunkLists: 0, directories: 0, bytes: 0 });
      expect(await verify(cache)).toMatchObject({ checked: 2, damaged: [] });
      // Evict b (least recently used), then everything only it reached goes.
      cache.coordination.recordUse(a.info.storePath.digest, 2_000);
      cache.coordination.recordUse(b.info.storePath.digest, 1_000);
      await cache.coordination.flushUses();
      const r = await gc(cache, { maxSize: clean.storedBytes - 1, now: () => 10_000 });
      expect(r.evicted).toEqual([expect.stringMatching(/-b$/)]);
      expect(await cache.pathInfos.get(b.info.storePath.digest)).toBeUndefined();
      expect([...(await cache.coordination.lastUses()).keys()]).toEqual([hex(a.info.storePath.digest)]);
      const after = await storeStats(cache);
      expect(after).toMatchObject({ paths: 1, logicalBytes: a.info.narSize });
      expect(after.unreachable.bytes).toBe(0);
      expect(await verify(cache)).toMatchObject({ checked: 1, damaged: [] });
      // A damaged directory is reported against the path it breaks.
      const [dirKey] = (await collect(cache.maintenance.keys('directories'))).filter(
        (k) => a.info.node.type !== 'directory' || hex(k) !== hex(a.info.node.digest),
      );
      await cache.maintenance.put('directories', [[dirKey!, new Uint8Array([8, 1])]]);
      const v = await verify(cache);
      expect(v.damaged.map((d) => d.path)).toEqual([expect.stringMatching(/-a$/)]);
    });
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

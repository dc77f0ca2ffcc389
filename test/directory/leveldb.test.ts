// LevelDirectoryService (the conformance suite runs on every backend built on it:
// test/backends/conformance.test.ts), plus what only a persistent store can show: re-opening keeps the
// data, and bytes damaged on disk (another valid directory's bytes, or garbage, under a digest) surface as
// ERR_INTEGRITY.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openMemoryKV } from '../../src/backends/memory.js';
import { b3ToHex } from '../../src/castore/digest.js';
import { Directory } from '../../src/castore/directory.js';
import { directoryNode } from '../../src/castore/nodes.js';
import { DIRECTORY_SUBLEVEL, LevelDirectoryService } from '../../src/directory/leveldb.js';
import { binarySublevel, type KV } from '../../src/storage/kv.js';
import { openClassic, tempLocations } from '../helpers/level.js';
import {
  collect,
  DIRECTORY_A,
  DIRECTORY_B,
  DIRECTORY_COMPLICATED,
  DIRECTORY_D,
  DIRECTORY_WITH_KEEP,
} from './conformance.js';

const newLocation = tempLocations('fetch-cache-dir-');

describe('LevelDirectoryService on classic-level', () => {
  it('keeps a closure across close and re-open', async () => {
    const location = newLocation();
    const first = await openClassic(location);
    const putter = new LevelDirectoryService(first).putter();
    for (const d of [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]) await putter.put(d);
    await putter.close();
    await first.close();
    const second = await openClassic(location);
    try {
      const got = await collect(new LevelDirectoryService(second).getRecursive(DIRECTORY_D.digest()));
      expect(got.map((d) => b3ToHex(d.digest())).sort()).toEqual(
        [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D].map((d) => b3ToHex(d.digest())).sort(),
      );
    } finally {
      await second.close();
    }
  });
});

describe('LevelDirectoryService integrity', () => {
  let db: KV;
  let raw: KV;
  let svc: LevelDirectoryService;
  beforeEach(async () => {
    db = await openMemoryKV();
    raw = binarySublevel(db, DIRECTORY_SUBLEVEL);
    svc = new LevelDirectoryService(db);
    const putter = svc.putter();
    await putter.put(DIRECTORY_WITH_KEEP);
    await putter.put(DIRECTORY_COMPLICATED);
    await putter.close();
  });
  afterEach(async () => {
    await db.close();
  });

  it('stores canonical bytes under their BLAKE3 digest', async () => {
    const stored = await raw.get(DIRECTORY_COMPLICATED.digest());
    expect(Buffer.from(stored!).toString('hex')).toBe(
      Buffer.from(DIRECTORY_COMPLICATED.encode()).toString('hex'),
    );
  });

  it('another valid directory under a digest is ERR_INTEGRITY with expected and actual digests', async () => {
    await raw.put(DIRECTORY_WITH_KEEP.digest(), DIRECTORY_A.encode());
    const error = await svc.get(DIRECTORY_WITH_KEEP.digest()).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'ERR_INTEGRITY',
      expected: b3ToHex(DIRECTORY_WITH_KEEP.digest()),
      actual: b3ToHex(DIRECTORY_A.digest()),
    });
  });

  it('garbage under a digest is ERR_INTEGRITY', async () => {
    await raw.put(DIRECTORY_COMPLICATED.digest(), new Uint8Array([0xff, 0x01, 0x02]));
    await expect(svc.get(DIRECTORY_COMPLICATED.digest())).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await expect(collect(svc.getRecursive(DIRECTORY_COMPLICATED.digest()))).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
    });
  });

  it('a damaged child fails getRecursive with ERR_INTEGRITY', async () => {
    await raw.put(DIRECTORY_WITH_KEEP.digest(), new Uint8Array(0));
    await expect(collect(svc.getRecursive(DIRECTORY_COMPLICATED.digest()))).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
    });
  });

  it('a missing child fails getRecursive with ERR_INTEGRITY (inconsistent store)', async () => {
    await raw.del(DIRECTORY_WITH_KEEP.digest());
    await expect(collect(svc.getRecursive(DIRECTORY_COMPLICATED.digest()))).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
    });
  });

  it('an edge whose size disagrees with the stored child fails getRecursive with ERR_INTEGRITY', async () => {
    const wrong = Directory.fromEntries([['keep', directoryNode(DIRECTORY_WITH_KEEP.digest(), 7)]]);
    await raw.put(wrong.digest(), wrong.encode());
    expect((await svc.get(wrong.digest()))?.equals(wrong)).toBe(true);
    await expect(collect(svc.getRecursive(wrong.digest()))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
  });

  it('re-uploading a closure repairs a damaged entry', async () => {
    await raw.put(DIRECTORY_WITH_KEEP.digest(), new Uint8Array([1, 2, 3]));
    const putter = svc.putter();
    await putter.put(DIRECTORY_WITH_KEEP);
    await putter.close();
    expect((await svc.get(DIRECTORY_WITH_KEEP.digest()))?.equals(DIRECTORY_WITH_KEEP)).toBe(true);
  });

  it('a digest that is not 32 bytes is a TypeError', async () => {
    await expect(svc.get(new Uint8Array(20))).rejects.toBeInstanceOf(TypeError);
  });
});

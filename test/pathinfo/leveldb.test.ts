// LevelPathInfoService (the conformance suite runs on every backend built on it:
// test/backends/conformance.test.ts): the stored value format (snix's redb value: PathInfo protobuf keyed
// by the 20-byte digest), and damaged stores: a value under the wrong key or garbage surfaces as
// ERR_INTEGRITY.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openMemoryKV } from '../../src/backends/memory.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { LevelPathInfoService, PATHINFO_SUBLEVEL } from '../../src/pathinfo/leveldb.js';
import { encodePathInfo } from '../../src/pathinfo/proto.js';
import { binarySublevel, type KV } from '../../src/storage/kv.js';
import { openClassic, tempLocations } from '../helpers/level.js';
import {
  collect,
  hex,
  PATH_INFO_DIRECTORY,
  PATH_INFO_FILE,
  PATH_INFO_SYMLINK,
  vectors,
} from './conformance.js';

const newLocation = tempLocations('fetch-cache-pathinfo-');

describe('LevelPathInfoService on classic-level', () => {
  it('keeps path infos and the NAR-hash index across close and re-open', async () => {
    const location = newLocation();
    const first = await openClassic(location);
    await new LevelPathInfoService(first).put(PATH_INFO_DIRECTORY);
    await first.close();
    const second = await openClassic(location);
    try {
      const svc = new LevelPathInfoService(second);
      expect(await svc.get(PATH_INFO_DIRECTORY.storePath.digest)).toEqual(PATH_INFO_DIRECTORY);
      expect(hex((await svc.byNarHash(PATH_INFO_DIRECTORY.narSha256))!)).toBe(
        hex(PATH_INFO_DIRECTORY.storePath.digest),
      );
    } finally {
      await second.close();
    }
  });
});

describe('LevelPathInfoService storage and integrity', () => {
  let db: KV;
  let raw: KV;
  let svc: LevelPathInfoService;
  beforeEach(async () => {
    db = await openMemoryKV();
    raw = binarySublevel(db, PATHINFO_SUBLEVEL);
    svc = new LevelPathInfoService(db);
  });
  afterEach(async () => {
    await db.close();
  });

  it("stores snix's PathInfo protobuf under the 20-byte store path digest (§10.7 vector)", async () => {
    await svc.put(PATH_INFO_SYMLINK);
    const stored = await raw.get(PATH_INFO_SYMLINK.storePath.digest);
    expect(hex(stored!)).toBe(vectors[0]!.protoHex);
  });

  it('a path info stored under another store path digest is ERR_INTEGRITY', async () => {
    await svc.put(PATH_INFO_FILE);
    await raw.put(PATH_INFO_FILE.storePath.digest, encodePathInfo(PATH_INFO_DIRECTORY));
    const error = await svc.get(PATH_INFO_FILE.storePath.digest).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'ERR_INTEGRITY',
      expected: encodeNix32(PATH_INFO_FILE.storePath.digest),
      actual: encodeNix32(PATH_INFO_DIRECTORY.storePath.digest),
    });
    await expect(collect(svc.list())).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
  });

  it('garbage or an invalid PathInfo under a key is ERR_INTEGRITY', async () => {
    await raw.put(PATH_INFO_FILE.storePath.digest, new Uint8Array([0x0a, 0xff]));
    await expect(svc.get(PATH_INFO_FILE.storePath.digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await raw.put(PATH_INFO_FILE.storePath.digest, new Uint8Array(0));
    await expect(svc.get(PATH_INFO_FILE.storePath.digest)).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
  });

  it('a damaged value can be replaced or deleted', async () => {
    await raw.put(PATH_INFO_FILE.storePath.digest, new Uint8Array([1, 2, 3]));
    expect(await svc.put(PATH_INFO_FILE)).toEqual(PATH_INFO_FILE);
    expect(await svc.get(PATH_INFO_FILE.storePath.digest)).toEqual(PATH_INFO_FILE);
    await raw.put(PATH_INFO_FILE.storePath.digest, new Uint8Array([1, 2, 3]));
    await svc.delete(PATH_INFO_FILE.storePath.digest);
    expect(await svc.get(PATH_INFO_FILE.storePath.digest)).toBeUndefined();
  });

  it('digests of the wrong length are TypeErrors', async () => {
    await expect(svc.get(new Uint8Array(32))).rejects.toBeInstanceOf(TypeError);
    await expect(svc.byNarHash(new Uint8Array(20))).rejects.toBeInstanceOf(TypeError);
    await expect(svc.delete(new Uint8Array(19))).rejects.toBeInstanceOf(TypeError);
  });
});

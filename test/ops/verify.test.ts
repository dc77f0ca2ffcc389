/**
 * verify: a clean store verifies; a flipped byte in a chunk, a missing
 * directory, a damaged chunk list or path info, or a wrong recorded NAR hash
 * is reported against the store path it breaks (and only that one), naming
 * the damaged value; --repair fetches the path again from the source the
 * fetch index recorded, pinned to its content address, and a path with no
 * usable source loses its path info so the next fetch starts afresh.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { b3ToHex } from '../../src/castore/digest.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { rawStore } from '../../src/ops/raw-store.js';
import { verify } from '../../src/ops/verify.js';
import { encodePathInfo } from '../../src/pathinfo/proto.js';
import { startServer } from '../helpers/http-server.js';
import { addTree, bytes, cleanTempDirs, corruptChunk } from '../helpers/ops-store.js';

afterEach(cleanTempDirs);

describe('verify', () => {
  it('reports nothing on an intact store and counts the NAR bytes it hashed', async () => {
    const cache = await openCache({ memory: true });
    const a = await addTree(cache, 'a', { 'x.bin': bytes(1, 200_000), 'd/y': 'y' });
    const b = await addTree(cache, 'b', { z: 'z' });
    const r = await verify(cache);
    expect(r).toMatchObject({ checked: 2, damaged: [] });
    expect(r.bytes).toBe(a.narSize + b.narSize);
    expect((await verify(cache, { paths: [a.storePath] })).checked).toBe(1);
  });

  it('names the path and the chunk when a chunk is damaged; other paths stay clean', async () => {
    const cache = await openCache({ memory: true });
    const a = await addTree(cache, 'a', { 'x.bin': bytes(2, 300_000) });
    await addTree(cache, 'b', { 'y.bin': bytes(3, 300_000) });
    const dir = await cache.directories.get((a.node as { digest: Uint8Array }).digest);
    const file = [...dir!][0]!.node as { digest: Uint8Array };
    const stat = await cache.blobs.stat(file.digest);
    const victim = stat!.chunks[1]!.digest;
    await corruptChunk(cache, victim);
    const r = await verify(cache);
    expect(r.checked).toBe(2);
    expect(r.damaged).toHaveLength(1);
    expect(r.damaged[0]!.path).toMatch(/-a$/);
    expect(r.damaged[0]!.problems.join('\n')).toContain(
      `chunk ${b3ToHex(victim)} of blob ${b3ToHex(file.digest)} is damaged`,
    );
    expect(r.damaged[0]!.repaired).toBeUndefined();
    // Without --repair nothing changes.
    expect(await cache.pathInfos.get(a.storePath.digest)).toBeDefined();
  });

  it('reports a missing directory, a damaged chunk list and an undecodable path info', async () => {
    const cache = await openCache({ memory: true });
    const a = await addTree(cache, 'a', { 'sub/f': 'f', g: 'g' });
    const b = await addTree(cache, 'b', { 'big.bin': bytes(4, 300_000) });
    const c = await addTree(cache, 'c', { h: 'h' });
    const raw = rawStore(cache);
    const rootA = await cache.directories.get((a.node as { digest: Uint8Array }).digest);
    const sub = [...rootA!].find((e) => e.node.type === 'directory')!.node as { digest: Uint8Array };
    await raw.directories.del(sub.digest);
    const bigDir = await cache.directories.get((b.node as { digest: Uint8Array }).digest);
    const big = [...bigDir!][0]!.node as { digest: Uint8Array };
    const list = new Uint8Array((await raw.lists.get(big.digest))!);
    list[3] = list[3]! ^ 1;
    await raw.lists.put(big.digest, list);
    await raw.pathinfo.put(c.storePath.digest, new Uint8Array([1, 2, 3]));
    const r = await verify(cache);
    expect(r.checked).toBe(3);
    const byName = Object.fromEntries(
      r.damaged.map((d) => [d.path.replace(/^.*-/, ''), d.problems.join('\n')]),
    );
    expect(byName.a).toContain(`directory ${b3ToHex(sub.digest)} is missing`);
    expect(byName.b).toContain(`chunk list of blob ${b3ToHex(big.digest)} is damaged`);
    expect(r.damaged.some((d) => d.problems.join().includes('cannot be decoded'))).toBe(true);
  });

  it('reports a recorded NAR hash that does not match the data', async () => {
    const cache = await openCache({ memory: true });
    const a = await addTree(cache, 'a', { f: 'content' });
    const raw = rawStore(cache);
    const wrong = { ...a, narSize: a.narSize + 8 };
    await raw.pathinfo.put(a.storePath.digest, encodePathInfo(wrong));
    const r = await verify(cache);
    expect(r.damaged[0]!.problems.join()).toContain(`NAR size is ${a.narSize}, recorded ${a.narSize + 8}`);
  });

  it('--repair fetches a damaged URL path again from its recorded source', async () => {
    const body = bytes(5, 400_000);
    const server = await startServer({ '/file.bin': { body } });
    try {
      const cache = await openCache({ memory: true });
      const fetcher = new Fetcher(cache);
      const got = await fetcher.fetch({ type: 'url', url: server.url('/file.bin') });
      const stat = await cache.blobs.stat((got.node as { digest: Uint8Array }).digest);
      await corruptChunk(cache, stat!.chunks[0]!.digest);
      expect((await verify(cache)).damaged).toHaveLength(1);
      const r = await verify(cache, { repair: true, fetcher });
      expect(r.damaged).toHaveLength(1);
      expect(r.damaged[0]!.repaired).toBe(true);
      expect(server.requests('/file.bin')).toBe(2);
      expect(await verify(cache)).toMatchObject({ checked: 1, damaged: [] });
      const back: Uint8Array[] = [];
      for await (const c of (await cache.blobs.read((got.node as { digest: Uint8Array }).digest))!)
        back.push(c);
      expect(Buffer.concat(back).equals(body)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('--repair removes a path whose source now serves other bytes, and one without a source', async () => {
    const server = await startServer({ '/f': { body: 'first version' } });
    try {
      const cache = await openCache({ memory: true });
      const fetcher = new Fetcher(cache);
      const got = await fetcher.fetch({ type: 'url', url: server.url('/f') });
      const local = await addTree(cache, 'local', { f: bytes(6, 1000) });
      await corruptChunk(cache, (got.node as { digest: Uint8Array }).digest);
      const localDir = await cache.directories.get((local.node as { digest: Uint8Array }).digest);
      await corruptChunk(cache, ([...localDir!][0]!.node as { digest: Uint8Array }).digest);
      server.route('/f', { body: 'changed upstream' });
      const r = await verify(cache, { repair: true, fetcher });
      expect(r.damaged).toHaveLength(2);
      for (const d of r.damaged) expect(d).toMatchObject({ removed: true });
      expect(r.damaged.find((d) => d.path.endsWith('-f'))!.problems.join()).toContain(
        'failed: hash mismatch',
      );
      expect(await cache.pathInfos.get(got.storePath.digest)).toBeUndefined();
      expect(await verify(cache)).toMatchObject({ checked: 0, damaged: [] });
      // Fetching again works: the path is re-created from fresh data.
      const again = await addTree(cache, 'local', { f: bytes(6, 1000) });
      expect(again.storePath).toEqual(local.storePath);
      expect((await verify(cache)).damaged).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

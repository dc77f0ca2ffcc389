/**
 * verify: a clean store verifies; a flipped byte in a chunk, a missing
 * directory, a damaged chunk list or path info, or a wrong recorded NAR hash
 * is reported against the store path it breaks (and only that one), naming
 * the damaged value; --repair fetches the path again from the source the
 * fetch index recorded, pinned to its content address, and a path with no
 * usable source loses its path info so the next fetch starts afresh. Every
 * content-addressed path is recomputed from its CA: a CA that makes another
 * store path, that is not the NAR hash, or that another NAR hash algorithm
 * does not give, and a fetched path recorded without a CA, are damage.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { b3ToHex } from '../../src/castore/digest.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { toSRI } from '../../src/nix/hash.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { formatStorePath } from '../../src/nix/store-path.js';
import { verify } from '../../src/ops/verify.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
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
    const m = cache.maintenance;
    const rootA = await cache.directories.get((a.node as { digest: Uint8Array }).digest);
    const sub = [...rootA!].find((e) => e.node.type === 'directory')!.node as { digest: Uint8Array };
    await m.delete('directories', [sub.digest]);
    const bigDir = await cache.directories.get((b.node as { digest: Uint8Array }).digest);
    const big = [...bigDir!][0]!.node as { digest: Uint8Array };
    const list = new Uint8Array((await m.getMany('chunkLists', [big.digest]))[0]!);
    list[3] = list[3]! ^ 1;
    await m.put('chunkLists', [[big.digest, list]]);
    await m.put('pathInfos', [[c.storePath.digest, new Uint8Array([1, 2, 3])]]);
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
    const wrong = { ...a, narSize: a.narSize + 8 };
    await cache.maintenance.put('pathInfos', [[a.storePath.digest, encodePathInfo(wrong)]]);
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

  describe('content addresses', () => {
    /** `genuine`'s store path over `evil`'s content, with `ca`: what a poisoned root holds. */
    async function forge(
      cache: Awaited<ReturnType<typeof openCache>>,
      genuine: PathInfo,
      evil: PathInfo,
      ca?: PathInfo['ca'],
    ) {
      const { ca: _ca, ...rest } = evil;
      const forged: PathInfo = { ...rest, storePath: genuine.storePath, ...(ca === undefined ? {} : { ca }) };
      await cache.maintenance.put('pathInfos', [[genuine.storePath.digest, encodePathInfo(forged)]]);
    }

    it('reports a CA that makes another store path, even with data that matches it', async () => {
      const cache = await openCache({ memory: true });
      const a = await addTree(cache, 'a', { f: 'genuine' });
      const b = await addTree(cache, 'a', { f: 'evil, with a consistent CA of its own' });
      await addTree(cache, 'c', { g: 'g' });
      // At a's path: b's data, b's NAR hash and b's CA (which makes b's path, not a's).
      await forge(cache, a, b, b.ca);
      const r = await verify(cache);
      expect(r.checked).toBe(3);
      expect(r.damaged.map((d) => d.path)).toEqual([formatStorePath(a.storePath)]);
      expect(r.damaged[0]!.problems).toEqual([
        `content address fixed:r:sha256:${encodeNix32(b.narSha256)} makes ${formatStorePath(b.storePath)}, not this path`,
      ]);
    });

    it('reports a NAR content address of another algorithm that the NAR does not have', async () => {
      const server = await startServer({ '/a': { body: 'genuine' }, '/b': { body: 'evil' } });
      try {
        const cache = await openCache({ memory: true });
        const fetcher = new Fetcher(cache);
        const sha512 = async (p: string) => {
          const unpinned = await fetcher.fetch({ type: 'url', url: server.url(p), executable: true });
          const { createHasher } = await import('../../src/nix/hashing.js');
          const { renderNar } = await import('../../src/nar-render/render.js');
          const h = createHasher('sha512');
          for await (const c of renderNar(unpinned.node, cache)) h.update(c);
          const hash = toSRI({ algo: 'sha512', digest: h.digest() });
          return (await fetcher.fetch({ type: 'url', url: server.url(p), executable: true, hash, name: 'x' }))
            .pathInfo;
        };
        const a = await sha512('/a');
        const b = await sha512('/b');
        expect(a.ca?.hash.algo).toBe('sha512');
        expect((await verify(cache)).damaged).toEqual([]);
        await forge(cache, a, b, a.ca);
        const r = await verify(cache);
        expect(r.damaged).toHaveLength(1);
        expect(r.damaged[0]!.path).toBe(formatStorePath(a.storePath));
        expect(r.damaged[0]!.problems.join()).toMatch(
          /^NAR sha512 is sha512-.*, content address says sha512-/,
        );
      } finally {
        await server.close();
      }
    });

    it('reports a fetched path recorded without a CA; --repair removes it and a pinned fetch restores it', async () => {
      const server = await startServer({ '/good': { body: 'genuine' }, '/evil': { body: 'evil' } });
      try {
        const cache = await openCache({ memory: true });
        const fetcher = new Fetcher(cache);
        const good = (await fetcher.fetch({ type: 'url', url: server.url('/good') })).pathInfo;
        const evil = (await fetcher.fetch({ type: 'url', url: server.url('/evil'), name: 'good' })).pathInfo;
        await forge(cache, good, evil);
        const r = await verify(cache);
        expect(r.damaged.map((d) => d.path)).toEqual([formatStorePath(good.storePath)]);
        expect(r.damaged[0]!.problems).toContain(
          `fetched from ${server.url('/good')}, but its path info has no content address`,
        );
        const repaired = await verify(cache, { repair: true, fetcher });
        expect(repaired.damaged[0]).toMatchObject({ removed: true });
        expect(await cache.pathInfos.get(good.storePath.digest)).toBeUndefined();
        const again = await fetcher.fetch({
          type: 'url',
          url: server.url('/good'),
          hash: toSRI(good.ca!.hash),
        });
        expect(again.pathInfo).toEqual(good);
        expect(await verify(cache)).toMatchObject({ checked: 2, damaged: [] });
      } finally {
        await server.close();
      }
    });

    it('--repair puts the genuine content back under a CA whose recorded NAR hash is not its own', async () => {
      const server = await startServer({ '/t': { body: 'genuine tree file' } });
      try {
        const cache = await openCache({ memory: true });
        const fetcher = new Fetcher(cache);
        const good = (await fetcher.fetch({ type: 'url', url: server.url('/t'), executable: true })).pathInfo;
        const evil = await addTree(cache, 'x', { y: 'evil' });
        await forge(cache, good, evil, good.ca);
        const r = await verify(cache, { repair: true, fetcher });
        const entry = r.damaged.find((d) => d.path === formatStorePath(good.storePath))!;
        expect(entry.problems.join()).toContain('is not the recorded NAR hash');
        expect(entry.repaired).toBe(true);
        expect(await cache.pathInfos.get(good.storePath.digest)).toEqual(good);
        expect((await verify(cache)).damaged).toEqual([]);
      } finally {
        await server.close();
      }
    });
  });
});

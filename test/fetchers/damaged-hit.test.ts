/**
 * A stored path info that does not hold its own address is never a cache hit (src/fetchers/base.ts):
 * a root poisoned before uploads were checked holds, at a fetched store path, a path info with other
 * NAR bytes (no `CA:`, or a CA that does not make the path, or a NAR SHA-256 CA that is not the NAR
 * hash). `fetch --hash H`, an unpinned fetch answered from the fetch index and `resolvePin` of a locked
 * pin then fetch again with a warning and replace it, and a source that now serves other bytes is
 * ERR_HASH_MISMATCH; the poisoned path info is never returned. Forged path infos are written with
 * `put(…, { replace: true })`, the one way left to write them.
 */

import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { parseManifest } from '../../src/lock/manifest.js';
import { resolvePin } from '../../src/lock/resolve.js';
import { hashOf, toSRI } from '../../src/nix/hash.js';
import { formatStorePath } from '../../src/nix/store-path.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

const GOOD = 'the genuine file\n';
const EVIL = 'something else entirely\n';
const TARBALL = readFileSync(new URL('../../fixtures/archives/pkg.tar.gz', import.meta.url));
const OTHER_TARBALL = readFileSync(new URL('../../fixtures/archives/onefile.tar.gz', import.meta.url));

let server: TestServer;
let cache: Cache;
let warnings: string[];
let fetcher: Fetcher;

beforeAll(async () => {
  server = await startServer({
    '/good.txt': { body: GOOD },
    '/evil.txt': { body: EVIL },
    '/pkg.tar.gz': { body: TARBALL },
    '/other.tar.gz': { body: OTHER_TARBALL },
  });
});
afterAll(() => server.close());
beforeEach(async () => {
  cache = await openCache({ memory: true });
  warnings = [];
  fetcher = new Fetcher(cache, { onWarning: (m) => warnings.push(m) });
});
afterEach(() => cache.close());

/** `genuine`'s store path with `evil`'s content (and `ca` as given): what a poisoned upload left. */
async function poison(genuine: PathInfo, evil: PathInfo, ca: PathInfo['ca'] | 'none'): Promise<void> {
  const { ca: _ca, ...rest } = evil;
  const forged: PathInfo = ca === 'none' || ca === undefined ? rest : { ...rest, ca };
  await cache.pathInfos.put({ ...forged, storePath: genuine.storePath }, { replace: true });
}

describe('a damaged path info is never a hit', () => {
  it.each(['no CA', 'a CA that makes another path', 'a NAR CA that is not the NAR hash'] as const)(
    'fetch tarball --hash refetches a path whose path info has other NAR bytes and %s',
    async (kind) => {
      const genuine = (await fetcher.fetch({ type: 'tarball', url: server.url('/pkg.tar.gz') })).pathInfo;
      const evil = (await fetcher.fetch({ type: 'tarball', url: server.url('/other.tar.gz') })).pathInfo;
      await poison(
        genuine,
        evil,
        kind === 'no CA' ? 'none' : kind === 'a CA that makes another path' ? evil.ca : genuine.ca,
      );
      const before = server.requests('/pkg.tar.gz');
      const hash = toSRI({ algo: 'sha256', digest: genuine.narSha256 });
      const r = await fetcher.fetch({ type: 'tarball', url: server.url('/pkg.tar.gz'), hash });
      expect(r.cached).toBe(false);
      expect(toSRI(r.narHash)).toBe(hash);
      expect(r.pathInfo).toEqual(genuine);
      expect(server.requests('/pkg.tar.gz')).toBe(before + 1);
      expect(await cache.pathInfos.get(genuine.storePath.digest)).toEqual(genuine);
      const path = formatStorePath(genuine.storePath);
      expect(warnings[0]).toContain(`the path info of ${path} is damaged`);
      expect(warnings[1]).toMatch(/is stored with .*; replaced by what was fetched for it/);
      // Now intact: the next pinned fetch is a hit again, with no request.
      expect((await fetcher.fetch({ type: 'tarball', url: server.url('/pkg.tar.gz'), hash })).cached).toBe(
        true,
      );
      expect(server.requests('/pkg.tar.gz')).toBe(before + 1);
    },
  );

  it('fetch url --hash (flat) refetches a path whose path info has no CA', async () => {
    const genuine = (await fetcher.fetch({ type: 'url', url: server.url('/good.txt') })).pathInfo;
    const evil = (await fetcher.fetch({ type: 'url', url: server.url('/evil.txt'), name: 'good.txt' }))
      .pathInfo;
    await poison(genuine, evil, 'none');
    const hash = toSRI(hashOf('sha256', GOOD));
    const r = await fetcher.fetch({ type: 'url', url: server.url('/good.txt'), hash });
    expect(r.cached).toBe(false);
    expect(toSRI(r.hash!)).toBe(hash);
    expect(r.pathInfo).toEqual(genuine);
  });

  it('a source that now serves other bytes is ERR_HASH_MISMATCH; the poisoned path info is not returned', async () => {
    server.route('/moving.txt', { body: GOOD });
    const genuine = (await fetcher.fetch({ type: 'url', url: server.url('/moving.txt') })).pathInfo;
    const evil = (await fetcher.fetch({ type: 'url', url: server.url('/evil.txt'), name: 'moving.txt' }))
      .pathInfo;
    await poison(genuine, evil, 'none');
    server.route('/moving.txt', { body: EVIL });
    const hash = toSRI(hashOf('sha256', GOOD));
    await expect(fetcher.fetch({ type: 'url', url: server.url('/moving.txt'), hash })).rejects.toMatchObject({
      code: 'ERR_HASH_MISMATCH',
    });
  });

  it('an unpinned fetch answered by the fetch index refetches a poisoned path', async () => {
    const genuine = (await fetcher.fetch({ type: 'url', url: server.url('/good.txt') })).pathInfo;
    const evil = (await fetcher.fetch({ type: 'url', url: server.url('/evil.txt'), name: 'good.txt' }))
      .pathInfo;
    await poison(genuine, evil, 'none');
    const before = server.requests('/good.txt');
    const r = await fetcher.fetch({ type: 'url', url: server.url('/good.txt') });
    expect(server.requests('/good.txt')).toBe(before + 1);
    expect(r.pathInfo).toEqual(genuine);
  });

  it('resolvePin of a locked pin whose path is poisoned fetches it again and keeps the entry', async () => {
    const manifest = parseManifest(`[pins.pkg]\ntype = "tarball"\nurl = "${server.url('/pkg.tar.gz')}"\n`);
    const pin = manifest.pins.get('pkg')!;
    const locked = await resolvePin(pin, { cache, fetcher });
    const genuine = (await cache.pathInfos.get(
      (
        await fetcher.fetch({ type: 'tarball', url: server.url('/pkg.tar.gz'), hash: locked.narHash! })
      ).storePath.digest,
    ))!;
    const evil = (await fetcher.fetch({ type: 'tarball', url: server.url('/other.tar.gz') })).pathInfo;
    await poison(genuine, evil, 'none');
    const before = server.requests('/pkg.tar.gz');
    expect(await resolvePin(pin, { cache, fetcher, locked })).toEqual(locked);
    expect(server.requests('/pkg.tar.gz')).toBe(before + 1);
    expect(await cache.pathInfos.get(genuine.storePath.digest)).toEqual(genuine);
  });
});

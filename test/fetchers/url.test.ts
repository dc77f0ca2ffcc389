/**
 * The fetcher base with the `url` source against a real server on 127.0.0.1: results equal real Nix
 * (`nix-prefetch-url --print-path`, live when installed, else the goldens in
 * fixtures/nix-goldens/fetch-url.json), and the policy: a pinned hit makes no request, a mismatch stores
 * nothing under the expected path, the TTL and 304 revalidation of unpinned fetches, one request for
 * concurrent identical fetches, offline mode, mirrors, progress, and answers from the cache with the
 * server gone.
 */

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { FetchCacheError } from '../../src/errors.js';
import { Fetcher, type FetcherOptions, urlBaseName } from '../../src/fetchers/base.js';
import type { ProgressEvent } from '../../src/fetchers/types.js';
import { formatContentAddress } from '../../src/nix/content-address.js';
import { formatHash, hashOf, toSRI } from '../../src/nix/hash.js';
import { formatStorePath, makeFixedOutputPath } from '../../src/nix/store-path.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { type NixBin, nixAvailable, runNixOk } from '../helpers/nix.js';

interface UrlGolden {
  path: string;
  body: { text?: string; pattern?: number };
  executable?: boolean;
  type?: 'sha512';
  hash: string;
  storePath: string;
  narHash: string;
  narSize: number;
  ca: string;
}

const goldens = JSON.parse(
  readFileSync(new URL('../../fixtures/nix-goldens/fetch-url.json', import.meta.url), 'utf8'),
) as { source: string; cases: Record<string, UrlGolden> };

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}
const bodyOf = (b: UrlGolden['body']) =>
  b.pattern !== undefined ? pattern(b.pattern) : Buffer.from(b.text ?? '');

const HELLO = 'hello from fetch-cache\n';
const HELLO_SHA256 = hashOf('sha256', HELLO);
const FAST = { http: { retryBaseMs: 1, retryMaxMs: 5, attempts: 2 } } satisfies FetcherOptions;

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    ...Object.fromEntries(Object.values(goldens.cases).map((c) => [c.path, { body: bodyOf(c.body) }])),
    '/pinned/hello.txt': { body: HELLO },
    '/mismatch/hello.txt': { body: HELLO },
    '/ttl/hello.txt': { body: HELLO, etag: '"one"' },
    '/concurrent/hello.txt': { body: HELLO, slowMs: 20, chunkSize: 4 },
    '/gone/hello.txt': { body: HELLO },
    '/mirror/hello.txt': { body: HELLO },
    '/progress.bin': { body: pattern(100_000) },
  });
});
afterAll(() => server.close());

async function memoryCache(): Promise<Cache> {
  return openCache({ memory: true });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof FetchCacheError) return e.code;
    throw e;
  }
}

describe('url fetch equals nix-prefetch-url', () => {
  for (const [id, g] of Object.entries(goldens.cases)) {
    it(`${id}: store path, hash, narHash, narSize and ca as Nix recorded`, async () => {
      const cache = await memoryCache();
      const r = await new Fetcher(cache, FAST).fetch({
        type: 'url',
        url: server.url(g.path),
        executable: g.executable,
        ...(g.type ? { hash: `${g.type}:${g.hash}` } : {}),
      });
      expect(formatStorePath(r.storePath)).toBe(g.storePath);
      expect(r.path).toBe(g.storePath);
      const printed = g.executable ? r.narHash : r.hash!;
      expect(formatHash(printed, 'nix32')).toBe(g.hash);
      expect(toSRI(r.narHash)).toBe(g.narHash);
      expect(r.pathInfo.narSize).toBe(g.narSize);
      expect(formatContentAddress(r.pathInfo.ca!)).toBe(g.ca);
      expect(r.cached).toBe(false);
      expect(r.metadata.url).toBe(server.url(g.path));
      await cache.close();
    });
  }

  it.runIf(nixAvailable())('live: nix-prefetch-url --print-path agrees on the same server', async () => {
    for (const g of Object.values(goldens.cases)) {
      const args = ['--print-path'];
      if (g.executable) args.push('--executable');
      if (g.type) args.push('--type', g.type);
      const [hash, path] = (
        await runNixOk([...args, server.url(g.path)], { bin: 'nix-prefetch-url' as NixBin })
      ).split('\n');
      expect([hash, path]).toEqual([g.hash, g.storePath]);
    }
  });

  it("FetchResult.path is the printed store path, in the cache's store dir, also on a cached answer", async () => {
    const cache = await openCache({ memory: true, storeDir: '/gnu/store' });
    try {
      const spec = { type: 'url', url: server.url('/pinned/hello.txt'), hash: toSRI(HELLO_SHA256) } as const;
      const expected = formatStorePath(
        makeFixedOutputPath({ name: 'hello.txt', method: 'flat', hash: HELLO_SHA256 }, '/gnu/store'),
        '/gnu/store',
      );
      const first = await new Fetcher(cache, FAST).fetch(spec);
      const again = await new Fetcher(cache, FAST).fetch(spec);
      expect([first.path, again.path, again.cached]).toEqual([expected, expected, true]);
      expect(first.path.startsWith('/gnu/store/')).toBe(true);
    } finally {
      await cache.close();
    }
  });

  it("names the path after Nix's baseNameOf(url), query included", () => {
    expect(urlBaseName('https://example.org/a/b.tar.gz')).toBe('b.tar.gz');
    expect(urlBaseName('https://example.org/dl?id=42')).toBe('dl?id=42');
    expect(urlBaseName('https://example.org/dir/')).toBe('dir');
  });

  it('an invalid derived name is ERR_BAD_URL', async () => {
    const cache = await memoryCache();
    const e = await new Fetcher(cache)
      .fetch({ type: 'url', url: 'https://example.com/~wiggle~' })
      .catch((x) => x);
    expect(e.code).toBe('ERR_BAD_URL');
    expect(e.message).toMatch(/invalid store path name when fetching URL/);
  });
});

describe('pinned url fetches', () => {
  it('an expected-hash hit answers from the cache with zero requests', async () => {
    const cache = await memoryCache();
    const url = server.url('/pinned/hello.txt');
    const spec = { type: 'url', url, hash: toSRI(HELLO_SHA256) } as const;
    const first = await new Fetcher(cache, FAST).fetch(spec);
    expect(first.cached).toBe(false);
    const before = server.requests('/pinned/hello.txt');
    const second = await new Fetcher(cache, FAST).fetch(spec);
    expect(server.requests('/pinned/hello.txt')).toBe(before);
    expect(second.cached).toBe(true);
    expect(second.storePath).toEqual(first.storePath);
    expect(second.hash).toEqual(HELLO_SHA256);
    // Any accepted hash form names the same path.
    const nix32 = await new Fetcher(cache, FAST).fetch({ ...spec, hash: formatHash(HELLO_SHA256, 'nix32') });
    expect(nix32.cached).toBe(true);
    await cache.close();
  });

  it('a mismatch is ERR_HASH_MISMATCH and stores nothing under the expected path', async () => {
    const cache = await memoryCache();
    const wrong = hashOf('sha256', 'something else');
    const e = await new Fetcher(cache, FAST)
      .fetch({ type: 'url', url: server.url('/mismatch/hello.txt'), hash: toSRI(wrong) })
      .catch((x) => x);
    expect(e).toBeInstanceOf(FetchCacheError);
    expect(e.code).toBe('ERR_HASH_MISMATCH');
    expect(e.message).toMatch(/^hash mismatch .* expected sha256-\S+ got sha256-\S+$/);
    expect(e.expected).toBe(toSRI(wrong));
    expect(e.actual).toBe(toSRI(HELLO_SHA256));
    const expectedPath = makeFixedOutputPath({ name: 'hello.txt', method: 'flat', hash: wrong });
    expect(await cache.pathInfos.get(expectedPath.digest)).toBeUndefined();
    const all = [];
    for await (const i of cache.pathInfos.list()) all.push(i);
    expect(all).toEqual([]);
    await cache.close();
  });

  it('a bad hash is ERR_BAD_HASH before any request', async () => {
    const cache = await memoryCache();
    const before = server.requests();
    expect(
      await codeOf(new Fetcher(cache).fetch({ type: 'url', url: server.url('/x'), hash: 'sha256-nope' })),
    ).toBe('ERR_BAD_HASH');
    expect(server.requests()).toBe(before);
  });
});

describe('unpinned url fetches', () => {
  it('reuse within the TTL, revalidate with If-None-Match after it, 304 keeps the result', async () => {
    const cache = await memoryCache();
    let now = 1_000_000;
    const fetcher = new Fetcher(cache, { ...FAST, ttlSeconds: 60, now: () => now });
    const url = server.url('/ttl/hello.txt');
    const path = '/ttl/hello.txt';
    const first = await fetcher.fetch({ type: 'url', url });
    expect(first.cached).toBe(false);
    expect(first.metadata.etag).toBe('"one"');
    const n = server.requests(path);

    now += 30_000;
    const within = await fetcher.fetch({ type: 'url', url });
    expect(within.cached).toBe(true);
    expect(server.requests(path)).toBe(n);

    now += 60_000;
    const revalidated = await fetcher.fetch({ type: 'url', url });
    expect(server.requests(path)).toBe(n + 1);
    expect(server.log.at(-1)?.headers['if-none-match']).toBe('"one"');
    expect(revalidated.cached).toBe(true);
    expect(revalidated.storePath).toEqual(first.storePath);

    // The 304 renewed the entry: within the TTL again.
    now += 30_000;
    await fetcher.fetch({ type: 'url', url });
    expect(server.requests(path)).toBe(n + 1);

    // Changed upstream: a new body, a new path.
    server.route(path, { body: 'changed\n', etag: '"two"' });
    now += 120_000;
    const changed = await fetcher.fetch({ type: 'url', url });
    expect(changed.cached).toBe(false);
    expect(changed.hash).toEqual(hashOf('sha256', 'changed\n'));
    expect(changed.storePath).not.toEqual(first.storePath);
    await cache.close();
  });

  it('concurrent identical fetches make one request', async () => {
    const cache = await memoryCache();
    const fetcher = new Fetcher(cache, FAST);
    const url = server.url('/concurrent/hello.txt');
    const results = await Promise.all(Array.from({ length: 5 }, () => fetcher.fetch({ type: 'url', url })));
    expect(server.requests('/concurrent/hello.txt')).toBe(1);
    for (const r of results) expect(r.storePath).toEqual(results[0]!.storePath);
    await cache.close();
  });

  it('offline: a miss is ERR_OFFLINE with zero connections; a stale entry is still used', async () => {
    const cache = await memoryCache();
    const before = server.connections();
    const url = server.url('/gone/hello.txt');
    expect(await codeOf(new Fetcher(cache, { offline: true }).fetch({ type: 'url', url }))).toBe(
      'ERR_OFFLINE',
    );
    expect(
      await codeOf(
        new Fetcher(cache, { offline: true }).fetch({ type: 'url', url, hash: toSRI(HELLO_SHA256) }),
      ),
    ).toBe('ERR_OFFLINE');
    expect(server.connections()).toBe(before);
    await new Fetcher(cache, { ...FAST, now: () => 0 }).fetch({ type: 'url', url });
    const stale = await new Fetcher(cache, { offline: true, now: () => 10 ** 12 }).fetch({
      type: 'url',
      url,
    });
    expect(stale.cached).toBe(true);
    await cache.close();
  });

  it('tries mirrors in order', async () => {
    const cache = await memoryCache();
    const r = await new Fetcher(cache, FAST).fetch({
      type: 'url',
      url: server.url('/mirror/missing.txt'),
      name: 'hello.txt',
      mirrors: [server.url('/nowhere'), server.url('/mirror/hello.txt')],
    });
    expect(r.hash).toEqual(HELLO_SHA256);
    expect(r.metadata.url).toBe(server.url('/mirror/hello.txt'));
    await cache.close();
  });

  it('reports progress events with the URL as label', async () => {
    const cache = await memoryCache();
    const events: ProgressEvent[] = [];
    await new Fetcher(cache, { ...FAST, onProgress: (e) => events.push(e) }).fetch({
      type: 'url',
      url: server.url('/progress.bin'),
    });
    expect(events.length).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({
      label: server.url('/progress.bin'),
      bytes: 100_000,
      total: 100_000,
      done: true,
    });
    await cache.close();
  });
});

describe('with the server stopped', () => {
  it('a pinned fetch and an unpinned one within the TTL succeed from the cache', async () => {
    const own = await startServer({ '/a.txt': { body: 'a\n' }, '/b.txt': { body: 'b\n' } });
    const cache = await openCache({ memory: true });
    const pinned = { type: 'url', url: own.url('/a.txt'), hash: toSRI(hashOf('sha256', 'a\n')) } as const;
    const unpinned = { type: 'url', url: own.url('/b.txt') } as const;
    await new Fetcher(cache, FAST).fetch(pinned);
    await new Fetcher(cache, FAST).fetch(unpinned);
    await own.close();
    expect((await new Fetcher(cache, FAST).fetch(pinned)).cached).toBe(true);
    expect((await new Fetcher(cache, FAST).fetch(unpinned)).cached).toBe(true);
    // After the TTL the server is asked again; it is gone, so the expired result is used with a warning.
    const warnings: string[] = [];
    const expired = await new Fetcher(cache, {
      ...FAST,
      ttlSeconds: 0,
      onWarning: (w) => warnings.push(w),
    }).fetch(unpinned);
    expect(expired.cached).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/using cached version$/);
    // Never fetched: nothing to fall back to.
    expect(await codeOf(new Fetcher(cache, FAST).fetch({ type: 'url', url: own.url('/c.txt') }))).toBe(
      'ERR_HTTP',
    );
    await cache.close();
  });
});

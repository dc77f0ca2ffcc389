/**
 * The `nar` source and decompress(): a tree's NAR recorded from `nix-store --dump` (fixtures/nar-fetch/,
 * by scripts/record-nix-fetch-goldens.mjs), served plain and as xz/zstd/bzip2/gzip, must land at the store
 * path `nix-store --add` gave it and render back to the same bytes; sha512 NAR hashes give Nix's
 * `--add-fixed --recursive sha512` path. A bad NAR is ERR_BAD_NAR and corrupt compression ERR_BAD_ARCHIVE,
 * both with nothing stored.
 */

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { FetchCacheError } from '../../src/errors.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { decompress, sniffCompression } from '../../src/fetchers/decompress.js';
import { renderNar } from '../../src/nar-render/render.js';
import { formatContentAddress } from '../../src/nix/content-address.js';
import { toSRI } from '../../src/nix/hash.js';
import { formatStorePath } from '../../src/nix/store-path.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

const fixture = (name: string) => readFileSync(new URL(`../../fixtures/nar-fetch/${name}`, import.meta.url));
const golden = JSON.parse(fixture('tree.json').toString('utf8')) as {
  files: string[];
  sha256: { storePath: string; narHash: string; narSize: number; ca: string };
  sha512: { storePath: string; hash: string };
};
const NAR = fixture('tree.nar');
const FAST = { http: { retryBaseMs: 1, attempts: 1 } };

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    ...Object.fromEntries(golden.files.map((f) => [`/${f}`, { body: fixture(f) }])),
    '/bad.nar': { body: Buffer.concat([NAR.subarray(0, 200), Buffer.from('garbage!')]) },
    '/truncated.nar.xz': { body: fixture('tree.nar.xz').subarray(0, 300) },
  });
});
afterAll(() => server.close());

async function all(cache: Cache): Promise<unknown[]> {
  const out = [];
  for await (const i of cache.pathInfos.list()) out.push(i);
  return out;
}

async function bytes(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of source) chunks.push(c);
  return Buffer.concat(chunks);
}

async function* chunked(data: Uint8Array, size = 97): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

describe('nar fetch', () => {
  for (const file of golden.files) {
    it(`${file}: lands at Nix's path and renders back to the same NAR`, async () => {
      const cache = await openCache({ memory: true });
      const r = await new Fetcher(cache, FAST).fetch({
        type: 'nar',
        url: server.url(`/${file}`),
        hash: golden.sha256.narHash,
      });
      expect(formatStorePath(r.storePath)).toBe(golden.sha256.storePath);
      expect(toSRI(r.narHash)).toBe(golden.sha256.narHash);
      expect(r.pathInfo.narSize).toBe(golden.sha256.narSize);
      expect(formatContentAddress(r.pathInfo.ca!)).toBe(golden.sha256.ca);
      expect((await bytes(renderNar(r.node, cache))).equals(NAR)).toBe(true);
      await cache.close();
    });
  }

  it('a sha512 NAR hash gives the `--add-fixed --recursive sha512` path', async () => {
    const cache = await openCache({ memory: true });
    const r = await new Fetcher(cache, FAST).fetch({
      type: 'nar',
      url: server.url('/tree.nar.zst'),
      hash: golden.sha512.hash,
    });
    expect(formatStorePath(r.storePath)).toBe(golden.sha512.storePath);
    expect(toSRI(r.narHash)).toBe(golden.sha256.narHash);
    await cache.close();
  });

  it('needs an expected hash', async () => {
    const cache = await openCache({ memory: true });
    const e = await new Fetcher(cache).fetch({ type: 'nar', url: server.url('/tree.nar') }).catch((x) => x);
    expect(e.code).toBe('ERR_BAD_HASH');
  });

  it('a wrong hash is ERR_HASH_MISMATCH with nothing stored', async () => {
    const cache = await openCache({ memory: true });
    const wrong = 'sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
    const e = await new Fetcher(cache, FAST)
      .fetch({ type: 'nar', url: server.url('/tree.nar.gz'), hash: wrong })
      .catch((x) => x);
    expect(e.code).toBe('ERR_HASH_MISMATCH');
    expect(e.message).toContain(`expected ${wrong} got ${golden.sha256.narHash}`);
    expect(await all(cache)).toEqual([]);
    await cache.close();
  });

  it('a bad NAR is ERR_BAD_NAR and corrupt compression ERR_BAD_ARCHIVE, with nothing stored', async () => {
    const cache = await openCache({ memory: true });
    const fetcher = new Fetcher(cache, FAST);
    const bad = await fetcher
      .fetch({ type: 'nar', url: server.url('/bad.nar'), hash: golden.sha256.narHash })
      .catch((x) => x);
    expect(bad).toBeInstanceOf(FetchCacheError);
    expect(bad.code).toBe('ERR_BAD_NAR');
    const truncated = await fetcher
      .fetch({ type: 'nar', url: server.url('/truncated.nar.xz'), hash: golden.sha256.narHash })
      .catch((x) => x);
    expect(truncated.code).toBe('ERR_BAD_ARCHIVE');
    expect(await all(cache)).toEqual([]);
    await cache.close();
  });
});

describe('decompress', () => {
  it('sniffs the magic bytes', () => {
    expect(sniffCompression(fixture('tree.nar.gz'))).toBe('gzip');
    expect(sniffCompression(fixture('tree.nar.bz2'))).toBe('bzip2');
    expect(sniffCompression(fixture('tree.nar.xz'))).toBe('xz');
    expect(sniffCompression(fixture('tree.nar.zst'))).toBe('zstd');
    expect(sniffCompression(NAR)).toBe('none');
    expect(sniffCompression(new Uint8Array([0x1f]))).toBe('none');
  });

  for (const file of golden.files) {
    it(`${file} decompresses to the NAR in small chunks`, async () => {
      expect((await bytes(decompress(chunked(fixture(file))))).equals(NAR)).toBe(true);
    });
  }

  it('passes short and empty streams through', async () => {
    expect(await bytes(decompress(chunked(new Uint8Array(0))))).toEqual(Buffer.alloc(0));
    expect(await bytes(decompress(chunked(Buffer.from('abc'), 1)))).toEqual(Buffer.from('abc'));
  });

  for (const file of ['tree.nar.gz', 'tree.nar.bz2', 'tree.nar.xz', 'tree.nar.zst']) {
    it(`${file}: truncated or corrupt data is ERR_BAD_ARCHIVE`, async () => {
      const data = fixture(file);
      const truncated = await bytes(decompress(chunked(data.subarray(0, data.length - 20)))).catch((x) => x);
      expect(truncated.code).toBe('ERR_BAD_ARCHIVE');
      const corrupt = Buffer.from(data);
      for (let i = 12; i < corrupt.length - 12; i++) corrupt[i] = corrupt[i]! ^ 0x5a;
      const damaged = await bytes(decompress(chunked(corrupt))).catch((x) => x);
      expect(damaged.code).toBe('ERR_BAD_ARCHIVE');
    });
  }

  it("passes the source's own error through unchanged", async () => {
    const boom = new FetchCacheError('ERR_HTTP', 'connection lost');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield fixture('tree.nar.xz').subarray(0, 100);
      throw boom;
    }
    expect(await bytes(decompress(failing())).catch((x) => x)).toBe(boom);
  });
});

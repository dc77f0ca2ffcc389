/**
 * HTTP Content-Encoding, decoded as curl and Nix decode it: a server on 127.0.0.1 sends a file with each
 * coding applied; `fetch url` must give the flat hash of the decoded bytes, the hash `nix-prefetch-url`
 * gives (checked live for the codings Nix 2.8 decodes; it aborts on `deflate`, which curl decodes, zlib
 * or raw). A `.tar.gz` sent with `Content-Encoding: gzip` unpacks to the same tree as with
 * `nix-prefetch-url --unpack`. A coding we cannot decode, or a body its coding does not fit, is ERR_HTTP.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../../src/cache.js';
import { Fetcher } from '../../src/fetchers/base.js';
import { toSRI } from '../../src/nix/hash.js';
import { sha256 } from '../../src/nix/hashing.js';
import { tarArchive, tarMember } from '../helpers/archives.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { nixAvailable, runNixOk } from '../helpers/nix.js';

const FILE = Buffer.from('the bytes of a file, sent with a content coding\n'.repeat(200));
const tool = (cmd: string, data: Uint8Array) =>
  execFileSync(cmd, ['-c', ...(cmd === 'zstd' ? ['-q'] : [])], { input: data });

/** name → [Content-Encoding, body, whether Nix 2.8 decodes it]. */
const CODED: Record<string, [string, Buffer, boolean]> = {
  gzip: ['gzip', gzipSync(FILE), true],
  'x-gzip': ['x-gzip', gzipSync(FILE), true],
  br: ['br', brotliCompressSync(FILE), true],
  zstd: ['zstd', tool('zstd', FILE), true],
  xz: ['xz', tool('xz', FILE), true],
  bzip2: ['bzip2', tool('bzip2', FILE), true],
  deflate: ['deflate', deflateSync(FILE), false],
  'raw-deflate': ['deflate', deflateRawSync(FILE), false],
  'gzip-then-br': ['gzip, br', brotliCompressSync(gzipSync(FILE)), false],
  'upper-case': ['GZIP', gzipSync(FILE), true],
};

const TREE = tarArchive([
  tarMember({ name: 'src/a.txt', content: 'a\n' }),
  tarMember({ name: 'src/b', content: 'b' }),
]);
const TAR_GZ = gzipSync(TREE);

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    ...Object.fromEntries(
      Object.entries(CODED).map(([name, [coding, body]]) => [
        `/${name}.txt`,
        { body, headers: { 'content-encoding': coding } },
      ]),
    ),
    '/src.tar.gz': {
      body: TAR_GZ,
      headers: { 'content-encoding': 'gzip', 'content-type': 'application/x-tar' },
    },
    '/plain.tar.gz': { body: TAR_GZ },
    '/compress.txt': { body: FILE, headers: { 'content-encoding': 'compress' } },
    '/mislabelled.txt': { body: FILE, headers: { 'content-encoding': 'gzip' } },
    '/corrupt.txt': { body: gzipSync(FILE).subarray(0, 100), headers: { 'content-encoding': 'gzip' } },
  });
});
afterAll(() => server.close());

async function fetchUrl(path: string) {
  const cache = await openCache({ memory: true });
  try {
    return await new Fetcher(cache, { http: { attempts: 1 } }).fetch({ type: 'url', url: server.url(path) });
  } finally {
    await cache.close();
  }
}

/** `nix-prefetch-url [--unpack] URL` in a throw-away store, as SRI. */
async function nixPrefetch(url: string, ...flags: string[]): Promise<string> {
  const store = mkdtempSync(join(tmpdir(), 'fc-ce-nix-'));
  try {
    const nix32 = await runNixOk(['--store', store, ...flags, url], { bin: 'nix-prefetch-url' as 'nix' });
    return await runNixOk(['hash', 'to-sri', '--type', 'sha256', nix32]);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

const FILE_SRI = toSRI({ algo: 'sha256', digest: sha256(FILE) });

describe('Content-Encoding is decoded as curl and Nix decode it', () => {
  for (const [name, [coding, , nixDecodes]] of Object.entries(CODED)) {
    it(`fetch url, Content-Encoding: ${coding} (${name}): the hash of the decoded bytes`, async () => {
      const r = await fetchUrl(`/${name}.txt`);
      expect(toSRI(r.hash!)).toBe(FILE_SRI);
      expect(r.pathInfo.narSize).toBeGreaterThan(FILE.length);
      if (nixAvailable() && nixDecodes) {
        expect(await nixPrefetch(server.url(`/${name}.txt`))).toBe(FILE_SRI);
      }
    });
  }

  it('fetch tarball of a .tar.gz sent with Content-Encoding: gzip: the same tree as without it, and as Nix', async () => {
    const cache = await openCache({ memory: true });
    const fetcher = new Fetcher(cache, { http: { attempts: 1 } });
    const coded = await fetcher.fetch({ type: 'tarball', url: server.url('/src.tar.gz') });
    const plain = await fetcher.fetch({ type: 'tarball', url: server.url('/plain.tar.gz') });
    expect(toSRI(coded.narHash)).toBe(toSRI(plain.narHash));
    await cache.close();
    if (nixAvailable()) {
      expect(await nixPrefetch(server.url('/src.tar.gz'), '--unpack')).toBe(toSRI(coded.narHash));
    }
  });

  it('an unknown coding, a body that is not what its coding says, or a cut one, is ERR_HTTP', async () => {
    for (const [path, message] of [
      ['/compress.txt', /unsupported Content-Encoding 'compress'/],
      ['/mislabelled.txt', /cannot decode .*Content-Encoding: gzip/],
      ['/corrupt.txt', /cannot decode .*Content-Encoding: gzip.*truncated/],
    ] as const) {
      const e = await fetchUrl(path).catch((x) => x);
      expect(e.code, path).toBe('ERR_HTTP');
      expect(e.message, path).toMatch(message);
    }
  });

  it('asks for no encoding, as Nix does', async () => {
    await fetchUrl('/gzip.txt');
    const sent = server.log.filter((l) => l.path === '/gzip.txt');
    expect(sent.length).toBeGreaterThan(0);
    for (const l of sent) expect(l.headers['accept-encoding']).toBeUndefined();
  });
});

/**
 * The hostile inputs of fixtures/bad/ (beyond archives; see its README), in
 * one table: each is fed where it would arrive — a NAR fetch, an upload to
 * the binary cache, the narinfo / manifest / lockfile readers, a URL fetch,
 * a response from a misbehaving server — and must fail with its error code
 * and leave the store as it was: same stats (paths, logical and stored
 * bytes, chunks) and a clean verify. Leftover unreachable chunks of an
 * aborted ingest are allowed (gc's job) and do not count as a change.
 */

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { isFetchCacheError } from '../../src/errors.js';
import { Fetcher } from '../../src/fetchers/base.js';
import type { FetchSpec } from '../../src/fetchers/types.js';
import { parseLockfile } from '../../src/lock/lockfile.js';
import { parseManifest } from '../../src/lock/manifest.js';
import { sha256 } from '../../src/nix/hashing.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { type StoreStats, storeStats } from '../../src/ops/stats.js';
import { verify } from '../../src/ops/verify.js';
import { BAD_NARS, BAD_TEXTS, BAD_UPLOADS, type BadHttp, type BadUrl } from '../helpers/bad-inputs.js';
import { addTree, bytes, cleanTempDirs, tempDir } from '../helpers/ops-store.js';
import { type Harness, rawRequest, startHarness, TOKEN } from '../server/harness.js';

const BAD = new URL('../../fixtures/bad/', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, BAD));
const urls = (JSON.parse(read('urls.json').toString()) as { urls: BadUrl[] }).urls;
const responses = (JSON.parse(read('http.json').toString()) as { responses: BadHttp[] }).responses;
const sri = (b: Uint8Array) => `sha256-${Buffer.from(sha256(b)).toString('base64')}`;

let cache: Cache;
let fetcher: Fetcher;
let server: Server;
let base: string;
let harness: Harness;
let before: Omit<StoreStats, 'unreachable' | 'packBytes'>;

const GOOD = Buffer.from('the honest file\n');

/** The misbehaving server: `/nar/<file>` serves a bad NAR, `/http/<name>` acts out an http.json row. */
function handle(
  path: string,
  req: import('node:http').IncomingMessage,
  res: import('node:http').ServerResponse,
) {
  if (path.startsWith('/nar/')) {
    res.end(read(path.slice(1)));
    return;
  }
  const row = responses.find((r) => path === `/http/${r.name}`);
  const sock = res.socket!;
  switch (row?.mode) {
    case 'huge-headers':
      sock.end(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(1 << 20)}\r\ncontent-length: 2\r\n\r\nok`);
      return;
    case 'endless': {
      res.writeHead(200);
      const junk = Buffer.from(bytes(99, 64 * 1024));
      const pump = () => {
        while (!res.destroyed && res.write(junk));
        if (!res.destroyed) res.once('drain', pump);
      };
      req.socket.on('close', () => res.destroy());
      pump();
      return;
    }
    case 'status':
      res.writeHead(row.status ?? 500).end('no');
      return;
    case 'redirect-loop':
      res.writeHead(302, { location: path }).end();
      return;
    case 'redirect-file':
      res.writeHead(302, { location: 'file:///etc/passwd' }).end();
      return;
    case 'cl-long':
      sock.end(`HTTP/1.1 200 OK\r\ncontent-length: 100000\r\nconnection: close\r\n\r\n${'x'.repeat(100)}`);
      return;
    case 'cl-short':
      sock.end(`HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n${GOOD.toString()}EXTRA SMUGGLED BYTES`);
      return;
    case 'stall-headers':
      return; // never answers
    case 'stall-body':
      res.writeHead(200, { 'content-length': '1000' });
      res.write('x'.repeat(100));
      return;
    case 'html':
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>500 Internal Error</body></html>');
      return;
    case 'wrong-bytes':
      res.end('not the honest file\n');
      return;
    default:
      res.writeHead(404).end();
  }
}

beforeAll(async () => {
  cache = await openCache({ root: tempDir() });
  fetcher = new Fetcher(cache, {
    http: { attempts: 2, retryBaseMs: 1, retryMaxMs: 2, headersTimeoutMs: 500, bodyTimeoutMs: 500 },
  });
  await addTree(cache, 'one', { 'a.bin': bytes(1, 200_000), 'b/c.txt': 'c' });
  await addTree(cache, 'two', { 'd.bin': bytes(2, 100_000) });
  const { unreachable: _, packBytes: __, ...s } = await storeStats(cache);
  before = s;
  server = createServer((req, res) => handle(req.url ?? '/', req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  harness = await startHarness({ cache });
}, 60_000);

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await harness.server.stop();
  await cache.close();
  cleanTempDirs();
});

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  let error: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error, 'expected a failure').toBeDefined();
  expect(isFetchCacheError(error), String(error)).toBe(true);
  expect((error as { code: string }).code, String(error)).toBe(code);
}

/** Stats without what gc is for: unreachable values, and pack bytes that include them. */
async function expectStoreUnchanged(): Promise<void> {
  const { unreachable: _, packBytes: __, ...now } = await storeStats(cache);
  expect(now).toEqual(before);
  expect(await verify(cache)).toMatchObject({ checked: 2, damaged: [] });
}

function httpSpec(row: BadHttp): FetchSpec {
  const url = `${base}/http/${row.name}`;
  if (row.fetch === 'url')
    return { type: 'url', url, name: 'f', ...(row.mode === 'wrong-bytes' ? { hash: sri(GOOD) } : {}) };
  if (row.fetch === 'nar') return { type: 'nar', url, hash: sri(GOOD) };
  return { type: 'tarball', url };
}

describe('hostile inputs are refused with their error code and leave the store unchanged', () => {
  it('has at least 40 inputs beyond archives, each in the README', () => {
    const readme = read('README.md').toString();
    const files = [...BAD_NARS, ...BAD_TEXTS].map((c) => c.file);
    for (const f of files) expect(readme).toContain(`\`${f}\``);
    for (const h of responses) expect(readme).toContain(`\`http.json\` ${h.name}`);
    expect(files.length + urls.length + responses.length).toBeGreaterThanOrEqual(40);
  });

  for (const c of BAD_NARS) {
    it(`NAR ${c.file}: ${c.attack}`, async () => {
      await expectCode(
        fetcher.fetch({ type: 'nar', url: `${base}/${c.file}`, hash: sri(read(c.file)) }),
        c.code,
      );
      await expectStoreUnchanged();
    });
  }

  for (const c of BAD_UPLOADS) {
    it(`upload ${c.file}: ${c.attack}`, async () => {
      const body = read(c.file);
      const r = await rawRequest(
        harness.port,
        'PUT',
        `/nar/${encodeNix32(sha256(body))}.nar`,
        { authorization: `Bearer ${TOKEN}` },
        body,
      );
      expect(`HTTP_${r.status}`).toBe(c.code);
      await expectStoreUnchanged();
    });
  }

  for (const c of BAD_TEXTS) {
    it(`${c.kind} ${c.file}: ${c.attack}`, async () => {
      const text = read(c.file).toString('utf8');
      const parse = { narinfo: parseNarInfo, manifest: parseManifest, lockfile: parseLockfile }[
        c.kind as 'narinfo' | 'manifest' | 'lockfile'
      ];
      await expectCode(() => parse(text), c.code);
      await expectStoreUnchanged();
    });
  }

  urls.forEach((c, i) => {
    it(`URL #${i} ${c.url.slice(0, 40)}: ${c.attack}`, async () => {
      await expectCode(fetcher.fetch({ type: 'url', url: c.url }), c.code);
      await expectStoreUnchanged();
    });
  });

  for (const row of responses) {
    it(`HTTP ${row.name}: ${row.attack}`, async () => {
      await expectCode(fetcher.fetch(httpSpec(row)), row.code);
      await expectStoreUnchanged();
    }, 20_000);
  }
});

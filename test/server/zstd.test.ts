/**
 * zstd Content-Encoding of NARs (src/server/zstd.ts): encoded only for a client that accepts it, for
 * a whole NAR that is large enough and compresses, through the `zstd` command (installed in CI);
 * the body decodes (with the real `zstd -d`) to exactly the NAR. Everything else gets the identity
 * bytes with a Content-Length: q=0, other codings only, a Range, a small or an incompressible NAR,
 * no free encoder slot, an encoder that does not start. A client that leaves mid-body leaves no
 * encoder running.
 */

import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPath } from '../../src/fs/add.js';
import { renderNar } from '../../src/nar-render/render.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { createServices } from '../../src/server/services.js';
import { acceptsZstd, compresses, findZstd } from '../../src/server/zstd.js';
import { randomBytes } from '../blob/conformance.js';
import { type Harness, rawRequest, startHarness } from './harness.js';

let h: Harness;
let text: PathInfo;
let noise: PathInfo;
let tiny: PathInfo;
const nars = new Map<PathInfo, Buffer>();

async function narOf(info: PathInfo): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of renderNar(info.node, h.cache)) parts.push(c);
  return Buffer.concat(parts);
}

async function addDir(name: string, files: Record<string, Uint8Array | string>): Promise<PathInfo> {
  const dir = join(h.tmp, name);
  await mkdir(dir, { recursive: true });
  for (const [f, data] of Object.entries(files)) await writeFile(join(dir, f), data);
  const info = await addPath(h.cache, dir);
  nars.set(info, await narOf(info));
  return info;
}

const narPath = (info: PathInfo) => `/nar/${encodeNix32(info.narSha256)}.nar`;

function unzstd(body: Buffer): Buffer {
  const r = spawnSync('zstd', ['-d', '-c', '-q'], { input: body, maxBuffer: 1 << 28 });
  expect(r.status, r.stderr?.toString()).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  // A small NAR cache item size: the 3 MiB text NAR streams, the others come from memory.
  h = await startHarness({ narCache: { maxItemBytes: 1 << 20 } });
  const lines: string[] = [];
  for (let i = 0; i < 60_000; i++)
    lines.push(`line ${i}: the quick brown fox jumps over the lazy dog ${i % 97}`);
  text = await addDir('text', { 'a.txt': lines.join('\n'), 'b.txt': lines.slice(0, 5000).join('\n') });
  noise = await addDir('noise', { 'r.bin': randomBytes(600_000, 11) });
  tiny = await addDir('tiny', { 'x.txt': 'tiny\n' });
});

afterAll(() => h.close());

describe('zstd Content-Encoding', () => {
  it('is available here (zstd is installed in CI)', () => {
    expect(findZstd()).toBeDefined();
    expect(h.services.zstd).toBeDefined();
  });

  it('encodes a compressible NAR for a client that accepts zstd; the body decodes to the NAR', async () => {
    const nar = nars.get(text)!;
    for (const accept of ['zstd', 'gzip, deflate, br, zstd', 'zstd;q=0.5', '*']) {
      const r = await rawRequest(h.port, 'GET', narPath(text), { 'Accept-Encoding': accept });
      expect(r.status, accept).toBe(200);
      expect(r.headers['content-encoding'], accept).toBe('zstd');
      expect(r.headers['content-length'], accept).toBeUndefined();
      expect(r.headers.vary).toBe('Accept-Encoding');
      expect(r.headers.etag).toBe(`"${encodeNix32(text.narSha256)}-zstd"`);
      expect(r.body.length).toBeLessThan(nar.length / 5);
      expect(unzstd(r.body).equals(nar), accept).toBe(true);
    }
  });

  it('encodes NARs served from the in-memory NAR cache too', async () => {
    const dir = await addDir('small-text', { 't.txt': 'abcdefgh '.repeat(20_000) });
    const first = await rawRequest(h.port, 'GET', narPath(dir)); // loads it into the NAR cache
    expect(first.body.equals(nars.get(dir)!)).toBe(true);
    const r = await rawRequest(h.port, 'GET', narPath(dir), { 'Accept-Encoding': 'zstd' });
    expect(r.headers['content-encoding']).toBe('zstd');
    expect(unzstd(r.body).equals(nars.get(dir)!)).toBe(true);
  });

  it('sends the identity bytes otherwise: refused, not asked, a Range, small or incompressible', async () => {
    const nar = nars.get(text)!;
    for (const accept of [undefined, 'gzip, br', 'zstd;q=0', '*, zstd;q=0', 'identity']) {
      const r = await rawRequest(
        h.port,
        'GET',
        narPath(text),
        accept === undefined ? {} : { 'Accept-Encoding': accept },
      );
      expect(r.headers['content-encoding'], String(accept)).toBeUndefined();
      expect(r.headers['content-length']).toBe(String(nar.length));
      expect(r.headers.vary).toBe('Accept-Encoding');
      expect(r.body.equals(nar)).toBe(true);
    }
    const range = await rawRequest(h.port, 'GET', narPath(text), {
      'Accept-Encoding': 'zstd',
      Range: 'bytes=100-199',
    });
    expect(range.status).toBe(206);
    expect(range.headers['content-encoding']).toBeUndefined();
    expect(range.body.equals(nar.subarray(100, 200))).toBe(true);
    for (const info of [noise, tiny]) {
      const r = await rawRequest(h.port, 'GET', narPath(info), { 'Accept-Encoding': 'zstd' });
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(r.body.equals(nars.get(info)!)).toBe(true);
    }
    const head = await rawRequest(h.port, 'HEAD', narPath(text), { 'Accept-Encoding': 'zstd' });
    expect(head.headers['content-length']).toBe(String(nar.length));
  });

  it('learns from the first encoded response: a NAR that only starts compressible goes out unencoded next', async () => {
    // a.txt (text) comes first in the NAR, so the 64 KiB sample compresses; the rest is random.
    const mixed = await addDir('mixed', {
      'a.txt': 'compressible text '.repeat(8000),
      'z.bin': randomBytes(2 << 20, 12),
    });
    const first = await rawRequest(h.port, 'GET', narPath(mixed), { 'Accept-Encoding': 'zstd' });
    expect(first.headers['content-encoding']).toBe('zstd');
    expect(unzstd(first.body).equals(nars.get(mixed)!)).toBe(true);
    expect(first.body.length).toBeGreaterThan(nars.get(mixed)!.length * 0.9);
    const second = await rawRequest(h.port, 'GET', narPath(mixed), { 'Accept-Encoding': 'zstd' });
    expect(second.headers['content-encoding']).toBeUndefined();
    expect(second.body.equals(nars.get(mixed)!)).toBe(true);
    // The text NAR compressed well, and stays encoded.
    const text2 = await rawRequest(h.port, 'GET', narPath(text), { 'Accept-Encoding': 'zstd' });
    expect(text2.headers['content-encoding']).toBe('zstd');
  });

  it('falls back to the identity bytes when no encoder slot is free or the encoder does not start', async () => {
    const { startServer, parseBind } = await import('../../src/server/server.js');
    for (const zstd of [{ command: join(h.tmp, 'no-such-zstd') }, { maxEncoders: 1 }]) {
      const services = createServices(h.cache, { zstd, narCache: { maxItemBytes: 0 } });
      const running = await startServer(services, parseBind('127.0.0.1:0'));
      const port = Number(new URL(running.url).port);
      try {
        const held = zstd.maxEncoders === 1 ? services.zstd!.acquire() : undefined;
        const r = await rawRequest(port, 'GET', narPath(text), { 'Accept-Encoding': 'zstd' });
        held?.();
        expect(r.status).toBe(200);
        expect(r.headers['content-encoding']).toBeUndefined();
        expect(r.body.equals(nars.get(text)!)).toBe(true);
      } finally {
        await running.stop(100);
      }
    }
  });

  it('stops the encoder when the client leaves mid-body', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: h.port, path: narPath(text), headers: { 'Accept-Encoding': 'zstd' } },
        (res) => {
          expect(res.headers['content-encoding']).toBe('zstd');
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => {});
      req.end();
      setTimeout(() => reject(new Error('no body')), 10_000).unref();
    });
    const until = Date.now() + 5000;
    while (h.services.zstd!.active > 0 || h.services.renders.active > 0) {
      if (Date.now() > until) throw new Error('the encoder is still running');
      await new Promise((r) => setTimeout(r, 20));
    }
    const again = await rawRequest(h.port, 'GET', narPath(text), { 'Accept-Encoding': 'zstd' });
    expect(unzstd(again.body).equals(nars.get(text)!)).toBe(true);
  });
});

describe('acceptsZstd and compresses', () => {
  it('follows Accept-Encoding q-values (RFC 9110)', () => {
    expect(acceptsZstd('zstd')).toBe(true);
    expect(acceptsZstd('ZSTD;Q=1')).toBe(true);
    expect(acceptsZstd('gzip;q=1.0, zstd;q=0.001')).toBe(true);
    expect(acceptsZstd(['gzip', 'zstd'])).toBe(true);
    expect(acceptsZstd('*')).toBe(true);
    expect(acceptsZstd(undefined)).toBe(false);
    expect(acceptsZstd('')).toBe(false);
    expect(acceptsZstd('gzip, br')).toBe(false);
    expect(acceptsZstd('zstd;q=0')).toBe(false);
    expect(acceptsZstd('zstd;q=0.000')).toBe(false);
    expect(acceptsZstd('*;q=0')).toBe(false);
    expect(acceptsZstd('*, zstd;q=0')).toBe(false);
    expect(acceptsZstd('zstd;q=nonsense')).toBe(false);
  });

  it('calls text compressible and random bytes not', () => {
    expect(compresses(Buffer.from('hello world '.repeat(5000)))).toBe(true);
    expect(compresses(randomBytes(65536, 5))).toBe(false);
    expect(compresses(new Uint8Array(0))).toBe(false);
  });
});

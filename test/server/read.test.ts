import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobService } from '../../src/blob/service.js';
import { renderNar } from '../../src/nar-render/render.js';
import { sha256 } from '../../src/nix/hashing.js';
import { narListing, renderNarListing } from '../../src/nix/nar/listing.js';
import { NarParser } from '../../src/nix/nar/parser.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { generateKeyPair, validNarInfoSigners } from '../../src/nix/signing.js';
import { formatStorePath, storePathHashPart } from '../../src/nix/store-path.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { castoreListing } from '../../src/server/listing.js';
import { parseRange } from '../../src/server/range.js';
import { addSampleTree, type Harness, rawRequest, startHarness } from './harness.js';

let h: Harness;
let info: PathInfo;
let nar: Buffer;
const second = generateKeyPair('second-key-1');
const reads: { offset: number }[] = [];

beforeAll(async () => {
  h = await startHarness({ signingKeys: [] });
  // Re-create with two keys and a blob spy: the services are built around the same cache.
  await h.server.stop(10);
  const { createServices } = await import('../../src/server/services.js');
  const { startServer, parseBind } = await import('../../src/server/server.js');
  const blobs = h.cache.blobs;
  const spy: BlobService = {
    has: (d) => blobs.has(d),
    stat: (d) => blobs.stat(d),
    writer: () => blobs.writer(),
    read: (d, offset) => {
      reads.push({ offset: offset ?? 0 });
      return blobs.read(d, offset);
    },
  };
  const store = { ...h.cache, blobs: spy, storeDir: h.cache.storeDir };
  h.services = createServices(store, { signingKeys: [h.key.secret, second.secret], priority: 17 });
  h.server = await startServer(h.services, parseBind('127.0.0.1:0'));
  h.port = Number(new URL(h.server.url).port);
  info = await addSampleTree(h);
  const parts: Uint8Array[] = [];
  for await (const c of renderNar(info.node, h.cache)) parts.push(c);
  nar = Buffer.concat(parts);
});
afterAll(() => h.close());

const hashPart = () => storePathHashPart(info.storePath);
const narPath = () => `/nar/${encodeNix32(info.narSha256)}.nar`;

describe('nix-cache-info', () => {
  it('serves StoreDir, WantMassQuery and the configured Priority', async () => {
    const r = await rawRequest(h.port, 'GET', '/nix-cache-info');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/x-nix-cache-info');
    expect(r.body.toString()).toBe('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 17\n');
  });
});

describe('narinfo', () => {
  it('describes the path with Compression none, FileHash = NarHash, and one valid Sig per key', async () => {
    const r = await rawRequest(h.port, 'GET', `/${hashPart()}.narinfo`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/x-nix-narinfo');
    const text = r.body.toString();
    const ni = parseNarInfo(text);
    expect(ni.storePath).toBe(formatStorePath(info.storePath));
    expect(ni.url).toBe(`nar/${encodeNix32(info.narSha256)}.nar`);
    expect(ni.compression).toBe('none');
    expect(ni.fileHash?.digest).toEqual(sha256(nar));
    expect(ni.narHash.digest).toEqual(sha256(nar));
    expect(ni.narSize).toBe(nar.length);
    expect(ni.fileSize).toBe(nar.length);
    expect(ni.ca).toBe(`fixed:r:sha256:${encodeNix32(info.narSha256)}`);
    expect(text).toContain('References: \n');
    expect(ni.sigs).toHaveLength(2);
    expect(validNarInfoSigners(ni, [h.key.public, second.public]).sort()).toEqual(
      ['fetch-cache-test-1', 'second-key-1'].sort(),
    );
    // Nix's writer order.
    expect(ni.lines.map((l) => l.key)).toEqual([
      'StorePath',
      'URL',
      'Compression',
      'FileHash',
      'FileSize',
      'NarHash',
      'NarSize',
      'References',
      'Sig',
      'Sig',
      'CA',
    ]);
  });

  it('answers HEAD with the GET status and headers but no body', async () => {
    const get = await rawRequest(h.port, 'GET', `/${hashPart()}.narinfo`);
    const head = await rawRequest(h.port, 'HEAD', `/${hashPart()}.narinfo`);
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers['content-length']).toBe(String(get.body.length));
    expect((await rawRequest(h.port, 'HEAD', `/${'0'.repeat(32)}.narinfo`)).status).toBe(404);
  });

  it('is 404 for an unknown hash and 400 for a malformed one', async () => {
    const missing = await rawRequest(h.port, 'GET', `/${'1'.repeat(32)}.narinfo`);
    expect(missing.status).toBe(404);
    expect(missing.headers['cache-control']).toBe('no-store');
    for (const bad of ['abc', 'e'.repeat(32), 'A'.repeat(32), '0'.repeat(33), `${hashPart()}-name`]) {
      expect((await rawRequest(h.port, 'GET', `/${bad}.narinfo`)).status, bad).toBe(400);
    }
  });

  it('signs once: the second request serves the cached text', async () => {
    const a = await rawRequest(h.port, 'GET', `/${hashPart()}.narinfo`);
    const b = await rawRequest(h.port, 'GET', `/${hashPart()}.narinfo`);
    expect(b.body.equals(a.body)).toBe(true);
  });
});

describe('nar', () => {
  it('streams the whole NAR with Content-Length, ETag and Accept-Ranges', async () => {
    const r = await rawRequest(h.port, 'GET', narPath());
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-nix-nar');
    expect(r.headers['content-length']).toBe(String(nar.length));
    expect(r.headers['accept-ranges']).toBe('bytes');
    expect(r.body.equals(nar)).toBe(true);
    const head = await rawRequest(h.port, 'HEAD', narPath());
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(nar.length));
    expect(head.body.length).toBe(0);
  });

  it('serves a Range as 206 with Content-Range and no Content-Encoding', async () => {
    for (const [hdr, start, end] of [
      ['bytes=0-0', 0, 0],
      ['bytes=100-199', 100, 199],
      [`bytes=${nar.length - 10}-`, nar.length - 10, nar.length - 1],
      ['bytes=-25', nar.length - 25, nar.length - 1],
      [`bytes=5-${nar.length + 1000}`, 5, nar.length - 1],
    ] as const) {
      const r = await rawRequest(h.port, 'GET', narPath(), { Range: hdr });
      expect(r.status, hdr).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${nar.length}`);
      expect(r.headers['content-encoding']).toBeUndefined();
      expect(r.headers['content-length']).toBe(String(end - start + 1));
      expect(r.body.equals(nar.subarray(start, end + 1)), hdr).toBe(true);
    }
  });

  it('answers an unsatisfiable range with 416 and bytes */size', async () => {
    const r = await rawRequest(h.port, 'GET', narPath(), { Range: `bytes=${nar.length}-` });
    expect(r.status).toBe(416);
    expect(r.headers['content-range']).toBe(`bytes */${nar.length}`);
  });

  it('ignores multiple ranges, other units and a stale If-Range (full 200)', async () => {
    for (const headers of [
      { Range: 'bytes=0-1,5-6' },
      { Range: 'items=0-1' },
      { Range: 'bytes=0-5', 'If-Range': '"other"' },
    ]) {
      const r = await rawRequest(h.port, 'GET', narPath(), headers);
      expect(r.status).toBe(200);
      expect(r.body.equals(nar)).toBe(true);
    }
  });

  it('renders a range from its offset: the big file is read from inside, not from zero', async () => {
    const listing = await castoreListing(info.node, h.cache);
    const sub = (
      listing.root as { entries: Record<string, { entries: Record<string, { narOffset: number }> }> }
    ).entries.sub!;
    const bigOffset = sub.entries['big.bin']!.narOffset;
    // Not from the NAR cache (earlier tests downloaded the whole NAR): a real ranged render.
    h.services.narCache.clear();
    reads.length = 0;
    const start = bigOffset + 200_000;
    const r = await rawRequest(h.port, 'GET', narPath(), { Range: `bytes=${start}-${start + 99}` });
    expect(r.status).toBe(206);
    expect(r.body.equals(nar.subarray(start, start + 100))).toBe(true);
    expect(reads).toEqual([{ offset: 200_000 }]);
  });

  it('is 404 for an unknown NAR, 400 for a malformed name, 404 for compressed names', async () => {
    expect((await rawRequest(h.port, 'GET', `/nar/${'0'.repeat(52)}.nar`)).status).toBe(404);
    expect((await rawRequest(h.port, 'GET', '/nar/abc.nar')).status).toBe(400);
    expect((await rawRequest(h.port, 'GET', `/nar/${'z'.repeat(52)}.nar`)).status).toBe(400);
    expect((await rawRequest(h.port, 'GET', `${narPath()}.xz`)).status).toBe(404);
  });
});

describe('listing', () => {
  it('equals the listing parsed from the NAR bytes, narOffset included', async () => {
    const r = await rawRequest(h.port, 'GET', `/${hashPart()}.ls`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/json');
    const parser = new NarParser();
    const events = [...parser.push(nar), ...parser.end()];
    expect(r.body.toString()).toBe(renderNarListing(narListing(events)));
    const json = JSON.parse(r.body.toString());
    const off = json.root.entries.sub.entries['big.bin'].narOffset as number;
    expect(nar.subarray(off, off + 16)).toEqual(
      Buffer.from([0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98, 105]),
    );
  });
});

describe('health and metrics', () => {
  it('reports health', async () => {
    const r = await rawRequest(h.port, 'GET', '/health');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString()).status).toBe('ok');
  });

  it('counts requests by route and status, bytes sent, latency, store size and paths', async () => {
    await rawRequest(h.port, 'GET', `/${'1'.repeat(32)}.narinfo`);
    const r = await rawRequest(h.port, 'GET', '/metrics');
    const text = r.body.toString();
    expect(r.headers['content-type']).toContain('text/plain; version=0.0.4');
    expect(text).toMatch(
      /fetch_cache_http_requests_total\{route="narinfo",method="GET",status="404"\} [1-9]/,
    );
    expect(text).toMatch(/fetch_cache_http_requests_total\{route="nar",method="GET",status="206"\} [1-9]/);
    const bytes = /fetch_cache_http_response_bytes_total\{route="nar"\} (\d+)/.exec(text);
    expect(Number(bytes?.[1])).toBeGreaterThan(nar.length);
    expect(text).toMatch(
      /fetch_cache_http_request_duration_seconds_bucket\{route="narinfo",le="\+Inf"\} [1-9]/,
    );
    expect(text).toContain('fetch_cache_store_paths 1\n');
    expect(text).toContain(`fetch_cache_store_nar_bytes ${nar.length}\n`);
  });
});

describe('parseRange', () => {
  it('follows RFC 9110 for single ranges', () => {
    expect(parseRange(undefined, 10)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=2-4', 10)).toEqual({ kind: 'partial', start: 2, end: 4 });
    expect(parseRange('bytes=-3', 10)).toEqual({ kind: 'partial', start: 7, end: 9 });
    expect(parseRange('bytes=-30', 10)).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(parseRange('bytes=10-', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-0', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=5-2', 10)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=x-2', 10)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=99999999999999999999-', 10)).toEqual({ kind: 'unsatisfiable' });
  });
});

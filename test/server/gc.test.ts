/**
 * The server beside gc (src/ops): an upload whose data a gc deleted between
 * its NAR PUT and its narinfo PUT is refused with 409 and stores nothing,
 * and the retried upload succeeds; data the pending upload shares with a
 * stored path survives gc and commits; a NAR being downloaded is never
 * evicted by `gc --max-size`; narinfo GETs record a path's last use.
 */

import { request } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar, type NarTree } from '../../src/nix/nar/encoder.js';
import { formatNarInfoNixOrder } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { formatStorePath, type StorePath, storePathHashPart } from '../../src/nix/store-path.js';
import { gc } from '../../src/ops/gc.js';
import { storeStats } from '../../src/ops/stats.js';
import { verify } from '../../src/ops/verify.js';
import { addSampleTree, basicAuth, type Harness, rawRequest, startHarness, TOKEN } from './harness.js';

const AUTH = { Authorization: basicAuth('nix', TOKEN) };

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(() => h.close());

/** Deterministic incompressible bytes, so the file spans several chunks. */
function noise(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const TREE: NarTree = {
  type: 'directory',
  entries: {
    'big.bin': { type: 'regular', contents: noise(7, 600_000) },
    sub: {
      type: 'directory',
      entries: { 'a.txt': { type: 'regular', contents: new TextEncoder().encode('a\n') } },
    },
  },
};

function iaPath(name: string, seed: number): StorePath {
  return { digest: sha256(`gc-ia-${seed}`).slice(0, 20), name };
}

function narInfoText(sp: StorePath, nar: Uint8Array): string {
  return formatNarInfoNixOrder({
    storePath: formatStorePath(sp),
    url: `nar/${encodeNix32(sha256(nar))}.nar`,
    compression: 'none',
    fileHash: { algo: 'sha256', digest: sha256(nar) },
    fileSize: nar.length,
    narHash: { algo: 'sha256', digest: sha256(nar) },
    narSize: nar.length,
    references: [],
    sigs: [],
  });
}

const narUrl = (nar: Uint8Array) => `/nar/${encodeNix32(sha256(nar))}.nar`;
const putNar = (nar: Uint8Array) => rawRequest(h.port, 'PUT', narUrl(nar), AUTH, nar);
const putNarInfo = (sp: StorePath, nar: Uint8Array) =>
  rawRequest(h.port, 'PUT', `/${storePathHashPart(sp)}.narinfo`, AUTH, Buffer.from(narInfoText(sp, nar)));

/** The last uses the store records, once every use noted so far is written. */
async function lastUses(cache: Harness['cache']): Promise<Map<string, number>> {
  await cache.coordination.flushUses();
  return cache.coordination.lastUses();
}

async function countPaths(): Promise<number> {
  let n = 0;
  for await (const _ of h.cache.pathInfos.list()) n++;
  return n;
}

describe('uploads and gc', () => {
  it('refuses (409) a narinfo whose NAR a gc deleted in between, stores nothing, and a retried upload succeeds', async () => {
    const nar = encodeNar(TREE);
    const sp = iaPath('uploaded', 1);
    expect((await putNar(nar)).status).toBe(200);
    expect((await rawRequest(h.port, 'HEAD', narUrl(nar))).status).toBe(200);

    const report = await gc(h.cache);
    expect(report.deleted.chunks).toBeGreaterThan(0);
    expect(report.deleted.directories).toBe(2);

    const refused = await putNarInfo(sp, nar);
    expect(refused.status).toBe(409);
    expect(refused.body.toString()).toMatch(/garbage collection.*upload the NAR again/);
    expect(await countPaths()).toBe(0);
    expect((await rawRequest(h.port, 'GET', `/${storePathHashPart(sp)}.narinfo`)).status).toBe(404);
    // The pending entry is gone: Nix's next `copy` sees no NAR file and sends it again.
    expect(await h.services.uploads.count()).toBe(0);
    expect((await rawRequest(h.port, 'HEAD', narUrl(nar))).status).toBe(404);
    // Retrying the narinfo alone cannot succeed.
    expect((await putNarInfo(sp, nar)).status).toBe(400);

    expect((await putNar(nar)).status).toBe(200);
    const ok = await putNarInfo(sp, nar);
    expect(ok.status, ok.body.toString()).toBe(200);
    const back = await rawRequest(h.port, 'GET', narUrl(nar));
    expect(back.status).toBe(200);
    expect(Buffer.compare(back.body, nar)).toBe(0);
    // An upload counts as a use, so `gc --max-size` does not evict a fresh upload first.
    expect((await lastUses(h.cache)).has(Buffer.from(sp.digest).toString('hex'))).toBe(true);
    expect((await verify(h.cache)).damaged).toEqual([]);
    expect((await storeStats(h.cache)).unreachable.chunks).toBe(0);
  });

  it('commits after a gc when everything the pending NAR needs is reachable from a stored path', async () => {
    const info = await addSampleTree(h, 'sample', 300_000);
    const nar = (await rawRequest(h.port, 'GET', `/nar/${encodeNix32(info.narSha256)}.nar`)).body;
    expect(nar.length).toBe(info.narSize);
    const sp = iaPath('same-content', 2);
    expect((await putNar(nar)).status).toBe(200);
    const report = await gc(h.cache);
    expect(report.deleted.chunks).toBe(0);
    const ok = await putNarInfo(sp, nar);
    expect(ok.status, ok.body.toString()).toBe(200);
    expect(await countPaths()).toBe(2);
  });
});

describe('serving and gc --max-size', () => {
  it('never evicts a path while its NAR is being downloaded', async () => {
    const served = await addSampleTree(h, 'served', 24 * 1024 * 1024);
    const other = await addSampleTree(h, 'other', 1000);
    const hex = Buffer.from(served.storePath.digest).toString('hex');

    const parts: Buffer[] = [];
    let resume!: () => void;
    const done = new Promise<Buffer>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: h.port, path: `/nar/${encodeNix32(served.narSha256)}.nar`, agent: false },
        (res) => {
          expect(res.statusCode).toBe(200);
          res.once('data', () => res.pause());
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve(Buffer.concat(parts)));
          res.on('error', reject);
          resume = () => res.resume();
        },
      );
      req.on('error', reject);
      req.end();
    });
    // Wait until the download holds its path (the response is paused, so the render is mid-stream).
    for (let i = 0; i < 200; i++) {
      if ((await h.cache.coordination.held()).has(hex) && parts.length > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await h.cache.coordination.held()).has(hex)).toBe(true);

    const report = await gc(h.cache, { maxSize: 1 });
    expect(report.evicted).toEqual([`${storePathHashPart(other.storePath)}-other`]);
    expect(await h.cache.pathInfos.get(served.storePath.digest)).toBeDefined();

    resume();
    const body = await done;
    expect(body.length).toBe(served.narSize);
    expect(Buffer.from(sha256(body)).equals(Buffer.from(served.narSha256))).toBe(true);

    // Once the download is over, the hold ends and the path can go.
    for (let i = 0; i < 100 && (await h.cache.coordination.held()).size > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await h.cache.coordination.held()).toEqual(new Set());
    const after = await gc(h.cache, { maxSize: 1 });
    expect(after.evicted).toEqual([`${storePathHashPart(served.storePath)}-served`]);
  });

  it('records a narinfo GET as a use of the path, but not a HEAD', async () => {
    // A path info written directly: nothing has recorded a use of it yet.
    const added = await addSampleTree(h, 'touched', 1000);
    const info = await h.cache.pathInfos.put({ ...added, storePath: iaPath('touched', 3) });
    const hex = Buffer.from(info.storePath.digest).toString('hex');
    const url = `/${storePathHashPart(info.storePath)}.narinfo`;
    expect((await rawRequest(h.port, 'HEAD', url)).status).toBe(200);
    expect((await lastUses(h.cache)).has(hex)).toBe(false);
    const before = Date.now();
    expect((await rawRequest(h.port, 'GET', url)).status).toBe(200);
    expect((await lastUses(h.cache)).get(hex)).toBeGreaterThanOrEqual(before);
  });
});

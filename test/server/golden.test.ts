/**
 * Known answers from Nix 2.8 (fixtures/serve/nix-file-cache.json): the NAR,
 * narinfo and listing Nix itself wrote for a path it built, with
 * `compression=none`. Uploading Nix's NAR and narinfo to our server must give
 * back Nix's narinfo byte for byte (no signing key configured), the same
 * listing and the same NAR. Runs without Nix installed.
 */

import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatNixCacheInfo, parseNixCacheInfo } from '../../src/nix/cache-info.js';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { basicAuth, type Harness, rawRequest, startHarness, TOKEN } from './harness.js';

interface Golden {
  storePath: string;
  narBase64: string;
  narinfo: string;
  listing: string;
  nixCacheInfo: string;
}

let h: Harness;
let g: Golden;
let nar: Buffer;
const hashPart = () => g.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);

beforeAll(async () => {
  g = JSON.parse(
    await readFile(new URL('../../fixtures/serve/nix-file-cache.json', import.meta.url), 'utf8'),
  );
  nar = Buffer.from(g.narBase64, 'base64');
  h = await startHarness({ signingKeys: [] });
  const auth = { Authorization: basicAuth('nix', TOKEN) };
  expect((await rawRequest(h.port, 'PUT', `/nar/${encodeNix32(sha256(nar))}.nar`, auth, nar)).status).toBe(
    200,
  );
  const r = await rawRequest(h.port, 'PUT', `/${hashPart()}.narinfo`, auth, Buffer.from(g.narinfo));
  expect(r.status, r.body.toString()).toBe(200);
});
afterAll(() => h.close());

describe('against what Nix 2.8 writes for a file:// cache', () => {
  it('serves the narinfo Nix wrote, byte for byte', async () => {
    const r = await rawRequest(h.port, 'GET', `/${hashPart()}.narinfo`);
    expect(r.body.toString()).toBe(g.narinfo);
  });

  it('serves the NAR at the URL the narinfo names', async () => {
    const url = /^URL: (.*)$/m.exec(g.narinfo)![1]!;
    const r = await rawRequest(h.port, 'GET', `/${url}`);
    expect(r.body.equals(nar)).toBe(true);
  });

  it('serves the listing Nix wrote (same tree and narOffsets; our keys are sorted)', async () => {
    const r = await rawRequest(h.port, 'GET', `/${hashPart()}.ls`);
    expect(JSON.parse(r.body.toString())).toEqual(JSON.parse(g.listing));
  });

  it("serves a nix-cache-info Nix reads as its own store's", async () => {
    const r = await rawRequest(h.port, 'GET', '/nix-cache-info');
    expect(parseNixCacheInfo(r.body.toString()).storeDir).toBe(parseNixCacheInfo(g.nixCacheInfo).storeDir);
    expect(r.body.toString()).toBe(formatNixCacheInfo({ wantMassQuery: true, priority: 30 }));
  });
});

/**
 * Fast paths are probed capabilities (blob/capabilities.ts): a cache root
 * offers single-chunk reads and file segments, `memory:` single-chunk reads
 * only, and a store that offers none (as a network backend may) renders
 * and serves exactly the same NAR bytes through the general path.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { addPath } from '../../src/fs/add.js';
import { renderNar } from '../../src/nar-render/render.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';
import { rawRequest, startHarness } from '../server/harness.js';

let tmp: string;
let src: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-caps-'));
  src = join(tmp, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  const big = Buffer.alloc(3 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 11)) & 0xff;
  writeFileSync(join(src, 'sub', 'big.bin'), big);
  for (let i = 0; i < 20; i++) writeFileSync(join(src, `small-${i}.txt`), `file ${i}\n`);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The same cache with no fast path at all. */
function withoutCapabilities(cache: Cache): Cache {
  return { ...cache, capabilities: {} };
}

async function nar(cache: Cache, info: PathInfo, offset = 0): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of renderNar(info.node, cache, offset)) parts.push(c);
  return Buffer.concat(parts);
}

describe('capabilities', () => {
  it('a cache root offers both fast paths, memory: single-chunk reads only', async () => {
    const level = await openCache({ root: join(tmp, 'probe') });
    const memory = await openCache({ store: 'memory:' });
    expect(level.capabilities.readSmall).toBeTypeOf('function');
    expect(level.capabilities.fileSegments).toBeTypeOf('function');
    expect(memory.capabilities.readSmall).toBeTypeOf('function');
    expect(memory.capabilities.fileSegments).toBeUndefined();
    await level.close();
    await memory.close();
  });

  it('without them, a NAR renders to the same bytes, whole and from an offset', async () => {
    const cache = await openCache({ root: join(tmp, 'render') });
    try {
      const info = await addPath(cache, src);
      const fast = await nar(cache, info);
      expect(fast.length).toBe(info.narSize);
      const plain = withoutCapabilities(cache);
      expect((await nar(plain, info)).equals(fast)).toBe(true);
      expect((await nar(plain, info, 1000)).equals(fast.subarray(1000))).toBe(true);
    } finally {
      await cache.close();
    }
  });

  it('without them, serve sends the same NAR (no sendfile)', async () => {
    const cache = await openCache({ root: join(tmp, 'serve') });
    const info = await addPath(cache, src);
    const expected = await nar(cache, info);
    const h = await startHarness({ cache: withoutCapabilities(cache), narCache: { maxItemBytes: 0 } });
    try {
      const r = await rawRequest(h.port, 'GET', `/nar/${encodeNix32(info.narSha256)}.nar`);
      expect(r.status).toBe(200);
      expect(r.body.equals(expected)).toBe(true);
    } finally {
      await h.close();
    }
  });
});

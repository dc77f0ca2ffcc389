/**
 * NAR rendering from castore and NAR ingestion into castore, against the NAR
 * vectors (Nix, snix, go-nix bytes in fixtures/nar.json): ingest → render is
 * byte-identical, sizes and sums from metadata agree, and a render starting at
 * any offset equals the slice of the full NAR without reading earlier blobs.
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobService } from '../../src/blob/service.js';
import { type Cache, openCache } from '../../src/cache.js';
import { b3ToHex } from '../../src/castore/digest.js';
import { isFetchCacheError } from '../../src/errors.js';
import { ingestNar } from '../../src/nar-render/ingest-nar.js';
import { computeNarSum } from '../../src/nar-render/nar-calc.js';
import { narSizeOf, renderNar } from '../../src/nar-render/render.js';
import { sha256 } from '../../src/nix/hashing.js';
import { encodeNar } from '../../src/nix/nar/encoder.js';
import { narTreeArb } from '../helpers/arbitraries.js';

interface NarVector {
  name: string;
  narBase64?: string;
  narSize?: number;
}
const vectors = (
  JSON.parse(readFileSync(new URL('../../fixtures/nar.json', import.meta.url), 'utf8')) as {
    nar: NarVector[];
  }
).nar.filter((v) => v.narBase64 !== undefined);

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

let cache: Cache;
beforeAll(async () => {
  cache = await openCache({ memory: true });
});
afterAll(async () => {
  await cache.close();
});

describe('ingestNar → renderNar', () => {
  it('has vectors to check', () => {
    expect(vectors.length).toBeGreaterThan(10);
  });

  for (const v of vectors) {
    it(`round-trips ${v.name} byte for byte`, async () => {
      const nar = Buffer.from(v.narBase64!, 'base64');
      const ingested = await ingestNar(chunked(nar, 7), cache);
      expect(Buffer.from(ingested.narSha256)).toEqual(Buffer.from(sha256(nar)));
      expect(ingested.narSize).toBe(nar.length);
      expect(await collect(renderNar(ingested.node, cache))).toEqual(nar);
      expect(await narSizeOf(ingested.node, cache)).toBe(nar.length);
      const sum = await computeNarSum(ingested.node, cache);
      expect(Buffer.from(sum.narSha256)).toEqual(Buffer.from(sha256(nar)));
      expect(await cache.narCalc.calculate(ingested.node)).toEqual(sum);
    });
  }

  it('rejects a truncated NAR with ERR_BAD_NAR', async () => {
    const nar = Buffer.from(vectors[0]!.narBase64!, 'base64');
    await expect(ingestNar(chunked(nar.subarray(0, nar.length - 8), 16), cache)).rejects.toSatisfy(
      (e: unknown) => isFetchCacheError(e, 'ERR_BAD_NAR'),
    );
  });
});

describe('range rendering', () => {
  it('equals the slice of the full NAR at random offsets (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        narTreeArb,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
        async (tree, fracs) => {
          const nar = encodeNar(tree);
          const { node } = await ingestNar(chunked(nar, 4096), cache);
          const offsets = [0, nar.length, ...fracs.map((f) => Math.floor(f * nar.length))];
          for (const off of offsets) {
            expect(await collect(renderNar(node, cache, off))).toEqual(Buffer.from(nar.subarray(off)));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('does not read blobs that lie before the offset', async () => {
    const big = (seed: number) => Uint8Array.from({ length: 50_000 }, (_, i) => (i * seed) & 0xff);
    const nar = encodeNar({
      type: 'directory',
      entries: { a: { type: 'regular', contents: big(3) }, b: { type: 'regular', contents: big(5) } },
    });
    const { node } = await ingestNar(chunked(nar, 65536), cache);
    const reads: string[] = [];
    const spy: BlobService = {
      has: (d) => cache.blobs.has(d),
      stat: (d) => cache.blobs.stat(d),
      writer: () => cache.blobs.writer(),
      read: (d, off) => {
        reads.push(`${b3ToHex(d)}@${off ?? 0}`);
        return cache.blobs.read(d, off);
      },
    };
    const offset = nar.length - 1000;
    const tail = await collect(renderNar(node, { blobs: spy, directories: cache.directories }, offset));
    expect(tail).toEqual(Buffer.from(nar.subarray(offset)));
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatch(/@49\d{3}$/);
  });

  it('reports a missing blob as ERR_INTEGRITY', async () => {
    const nar = encodeNar({ type: 'regular', contents: new Uint8Array(100_000).fill(9) });
    const { node } = await ingestNar(chunked(nar, 65536), cache);
    const empty = await openCache({ memory: true });
    try {
      await expect(collect(renderNar(node, empty))).rejects.toSatisfy((e: unknown) =>
        isFetchCacheError(e, 'ERR_INTEGRITY'),
      );
    } finally {
      await empty.close();
    }
  });
});

/**
 * The one test suite every BlobService implementation must pass (snix and
 * abstract-level style: backends differ, the contract does not). Digests are
 * checked against snix's known answers and against BLAKE3 of the whole
 * content computed independently of the service. Where chunks fall is the
 * backend's business: chunk boundaries are checked only for a backend that
 * declares it cuts with our FastCDC (`chunker`).
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Chunker, type ChunkerParams, DEFAULT_CHUNKER_PARAMS } from '../../src/blob/fastcdc.js';
import type { BlobService } from '../../src/blob/service.js';
import { type B3Digest, b3ToHex, EMPTY_B3 } from '../../src/castore/digest.js';
import { isFetchCacheError } from '../../src/errors.js';
import { blake3 } from '../../src/nix/hashing.js';

export interface BlobServiceUnderTest {
  service: BlobService;
  /** Flip one byte of the stored bytes of a chunk (or single-chunk blob), if the backend can. */
  corrupt?: (chunk: B3Digest) => Promise<void>;
  close(): Promise<void>;
}

export interface ConformanceOptions {
  /**
   * The FastCDC parameters the backend declares it cuts blobs with: sizes are chosen around them and
   * chunk lists compared with them. Without, sizes are chosen around ours and boundaries are not checked.
   */
  chunker?: ChunkerParams | undefined;
}

interface BlobVector {
  name: string;
  contentHex?: string;
  contentUtf8?: string;
  length?: number;
  blake3: string;
}
const fixture = JSON.parse(readFileSync(new URL('../../fixtures/castore.json', import.meta.url), 'utf8')) as {
  blobs: BlobVector[];
};

function vectorContent(v: BlobVector): Uint8Array {
  if (v.contentHex !== undefined) return new Uint8Array(Buffer.from(v.contentHex, 'hex'));
  if (v.contentUtf8 !== undefined) return new Uint8Array(Buffer.from(v.contentUtf8, 'utf8'));
  // BLOB_B: byte i % 255 for i in 0..length
  return Uint8Array.from({ length: v.length! }, (_, i) => i % 255);
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Write `data` in pieces of the given sizes (cycled), returning close()'s result. */
export async function writeBlob(service: BlobService, data: Uint8Array, pieces: number[] = [data.length]) {
  const w = service.writer();
  let pos = 0;
  for (let k = 0; pos < data.length; k++) {
    const n = Math.max(1, Math.min(pieces[k % pieces.length]!, data.length - pos));
    // A reused buffer: the service must not keep a view of it after write() resolves.
    const piece = new Uint8Array(data.subarray(pos, pos + n));
    await w.write(piece);
    piece.fill(0xaa);
    pos += n;
  }
  return w.close();
}

export async function readAll(service: BlobService, digest: B3Digest, offset?: number) {
  const it = await service.read(digest, offset);
  if (it === undefined) return undefined;
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return new Uint8Array(Buffer.concat(parts));
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export function blobServiceConformance(
  name: string,
  make: () => Promise<BlobServiceUnderTest>,
  options: ConformanceOptions,
): void {
  const declared = options.chunker;
  const { minSize, maxSize } = declared ?? DEFAULT_CHUNKER_PARAMS;
  const withService = async (fn: (t: BlobServiceUnderTest) => Promise<void>) => {
    const t = await make();
    try {
      await fn(t);
    } finally {
      await t.close();
    }
  };

  /** Writes, then checks digest, has, stat (sizes, chunk digests, boundaries) and a full read. */
  const roundTrip = async (service: BlobService, data: Uint8Array, pieces?: number[]) => {
    const { digest, size } = await writeBlob(service, data, pieces);
    expect(hex(digest)).toBe(hex(blake3(data)));
    expect(size).toBe(data.length);
    expect(await service.has(digest)).toBe(true);
    const stat = (await service.stat(digest))!;
    expect(stat.size).toBe(data.length);
    let at = 0;
    for (const c of stat.chunks) {
      expect(hex(c.digest)).toBe(hex(blake3(data.subarray(at, at + c.size))));
      at += c.size;
    }
    expect(at).toBe(data.length);
    if (declared !== undefined) expect(stat.chunks.map((c) => c.size)).toEqual(cutSizes(data, declared));
    expect(hex((await readAll(service, digest))!)).toBe(hex(data));
    return { digest, stat };
  };

  describe(`BlobService conformance: ${name}`, () => {
    it('a miss is false / undefined, never a throw', async () => {
      await withService(async ({ service }) => {
        for (const d of [new Uint8Array(32), blake3(new Uint8Array([1, 2, 3]))]) {
          expect(await service.has(d)).toBe(false);
          expect(await service.stat(d)).toBeUndefined();
          expect(await service.read(d)).toBeUndefined();
          expect(await service.read(d, 5)).toBeUndefined();
        }
      });
    });

    it('the empty blob is always present', async () => {
      await withService(async ({ service }) => {
        expect(await service.has(EMPTY_B3)).toBe(true);
        expect(await service.stat(EMPTY_B3)).toEqual({ size: 0, chunks: [] });
        expect((await readAll(service, EMPTY_B3))!.length).toBe(0);
        await expect(service.read(EMPTY_B3, 1)).rejects.toThrow(RangeError);
      });
    });

    it("digests match snix's known answers", async () => {
      await withService(async ({ service }) => {
        for (const v of fixture.blobs) {
          const data = vectorContent(v);
          const { digest } = await roundTrip(service, data, [4093]);
          expect(hex(digest)).toBe(v.blake3);
        }
      });
    });

    it('round-trips blobs of 0, 1, minSize-1, minSize (one chunk) bytes and of many chunks', async () => {
      await withService(async ({ service }) => {
        for (const n of [0, 1, minSize - 1, minSize]) {
          const { stat } = await roundTrip(service, randomBytes(n, n + 1), [1000]);
          if (declared !== undefined || n === 0) expect(stat.chunks.length).toBe(n === 0 ? 0 : 1);
        }
        const big = randomBytes(5 << 20, 77);
        const { stat } = await roundTrip(service, big, [1, 100_000, 7, 1 << 20, 65_536]);
        if (declared !== undefined) expect(stat.chunks.length).toBeGreaterThan(4);
      });
    });

    it('round-trips random sizes written in random pieces', async () => {
      await withService(async ({ service }) => {
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: 0, max: 3 * maxSize }),
            fc.integer({ min: 1, max: 1 << 30 }),
            fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 6 }),
            async (n, seed, pieces) => {
              await roundTrip(service, randomBytes(n, seed), pieces);
            },
          ),
          { numRuns: 15 },
        );
      });
    });

    it('writing the same content twice, or concurrently, is harmless', async () => {
      await withService(async ({ service }) => {
        const data = randomBytes(2 << 20, 5);
        const a = await writeBlob(service, data, [300_000]);
        const b = await writeBlob(service, data, [12_345]);
        expect(hex(b.digest)).toBe(hex(a.digest));
        const other = randomBytes(3 << 20, 6);
        const [c, d] = await Promise.all([
          writeBlob(service, other, [65_536]),
          writeBlob(service, other, [99_999]),
        ]);
        expect(hex(c.digest)).toBe(hex(d.digest));
        expect(hex((await readAll(service, a.digest))!)).toBe(hex(data));
        expect(hex((await readAll(service, c.digest))!)).toBe(hex(other));
      });
    });

    it('reads from any offset without the bytes before it', async () => {
      await withService(async ({ service }) => {
        const data = randomBytes(3 << 20, 11);
        const { digest } = await writeBlob(service, data, [1 << 20]);
        const stat = (await service.stat(digest))!;
        const starts: number[] = [];
        let at = 0;
        for (const c of stat.chunks) {
          starts.push(at);
          at += c.size;
        }
        const interesting = starts.flatMap((s) => [s - 1, s, s + 1]).filter((o) => o >= 0);
        await fc.assert(
          fc.asyncProperty(
            fc.oneof(fc.integer({ min: 0, max: data.length }), fc.constantFrom(...interesting)),
            async (offset) => {
              expect(hex((await readAll(service, digest, offset))!)).toBe(hex(data.subarray(offset)));
            },
          ),
          { numRuns: 50 },
        );
        expect((await readAll(service, digest, data.length))!.length).toBe(0);
        await expect(service.read(digest, data.length + 1)).rejects.toThrow(RangeError);
        await expect(service.read(digest, -1)).rejects.toThrow(RangeError);
        const small = randomBytes(100, 3);
        const s = await writeBlob(service, small);
        expect(hex((await readAll(service, s.digest, 40))!)).toBe(hex(small.subarray(40)));
        expect((await readAll(service, s.digest, 100))!.length).toBe(0);
        await expect(service.read(s.digest, 101)).rejects.toThrow(RangeError);
      });
    });

    it('close twice returns the same; write after close is a TypeError', async () => {
      await withService(async ({ service }) => {
        const w = service.writer();
        await w.write(new Uint8Array([1, 2, 3]));
        const first = await w.close();
        const second = await w.close();
        expect(hex(second.digest)).toBe(hex(first.digest));
        expect(second.size).toBe(3);
        await expect(w.write(new Uint8Array([4]))).rejects.toThrow(TypeError);
      });
    });

    it('a blob is invisible until closed; abort leaves no blob', async () => {
      await withService(async ({ service }) => {
        const data = randomBytes(12 << 20, 21);
        const digest = blake3(data);
        const w = service.writer();
        for (let pos = 0; pos < data.length; pos += 1 << 20)
          await w.write(data.subarray(pos, pos + (1 << 20)));
        expect(await service.has(digest)).toBe(false);
        await w.abort();
        expect(await service.has(digest)).toBe(false);
        expect(await service.stat(digest)).toBeUndefined();
        expect(await service.read(digest)).toBeUndefined();
        await expect(w.write(new Uint8Array(1))).rejects.toThrow(TypeError);
        const small = randomBytes(1000, 22);
        const w2 = service.writer();
        await w2.write(small);
        await w2.abort();
        expect(await service.has(blake3(small))).toBe(false);
      });
    });

    it('never returns damaged bytes as good (when the backend can be damaged)', async () => {
      await withService(async ({ service, corrupt }) => {
        if (corrupt === undefined) return;
        const data = randomBytes(2 << 20, 31);
        const { digest } = await writeBlob(service, data);
        const stat = (await service.stat(digest))!;
        if (declared !== undefined) expect(stat.chunks.length).toBeGreaterThan(2);
        const k = Math.floor(stat.chunks.length / 2);
        const start = stat.chunks.slice(0, k).reduce((a, c) => a + c.size, 0);
        await corrupt(stat.chunks[k]!.digest);
        for (const offset of [0, start + 1]) {
          const got: Uint8Array[] = [];
          const error = await (async () => {
            try {
              for await (const p of (await service.read(digest, offset))!) got.push(p);
            } catch (e) {
              return e;
            }
          })();
          expect(isFetchCacheError(error, 'ERR_INTEGRITY')).toBe(true);
          const prefix = Buffer.concat(got);
          expect(offset + prefix.length).toBeLessThanOrEqual(Math.max(start, offset));
          expect(prefix.equals(data.subarray(offset, offset + prefix.length))).toBe(true);
        }
        const one = randomBytes(500, 32);
        const single = await writeBlob(service, one);
        await corrupt(single.digest);
        await expect(readAll(service, single.digest)).rejects.toMatchObject({
          code: 'ERR_INTEGRITY',
          expected: b3ToHex(single.digest),
        });
      });
    });
  });
}

/** Chunk sizes FastCDC gives for the whole of `data`. */
function cutSizes(data: Uint8Array, p: ChunkerParams): number[] {
  const chunker = new Chunker(p);
  const sizes: number[] = [];
  chunker.push(data, (c) => sizes.push(c.length));
  chunker.finish((c) => sizes.push(c.length));
  return sizes;
}

/**
 * FastCDC: the optimised streaming chunker must cut exactly where the plain
 * reference loop below (the textbook algorithm, kept here on purpose) cuts,
 * for any way the input is split into pushes; and boundaries are pinned for a
 * fixed input, since moving them would lose dedup against existing stores.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Chunker, type ChunkerParams, DEFAULT_CHUNKER_PARAMS, findBoundary } from '../../src/blob/fastcdc.js';
import { blake3 } from '../../src/nix/hashing.js';

/** The gear table, written out independently of the implementation (splitmix32, fixed seed). */
function referenceGear(): Uint32Array {
  const t = new Uint32Array(256);
  let s = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    t[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return t;
}
const GEAR = referenceGear();

/** The textbook FastCDC loop (normalised chunking, level 2) over a whole buffer. */
function referenceCuts(data: Uint8Array, p: ChunkerParams): number[] {
  const bits = Math.log2(p.avgSize);
  const mask = (b: number) => (0xffffffff << (32 - b)) >>> 0;
  const maskS = mask(bits + 2);
  const maskL = mask(bits - 2);
  const cuts: number[] = [];
  let start = 0;
  while (start < data.length) {
    const len = data.length - start;
    let end = data.length;
    if (len > p.minSize) {
      const normal = start + Math.min(p.avgSize, len);
      const stop = start + Math.min(p.maxSize, len);
      let fp = 0;
      let i = start + p.minSize;
      end = stop;
      for (; i < stop; i++) {
        fp = ((fp << 1) + GEAR[data[i]!]!) >>> 0;
        if ((fp & (i < normal ? maskS : maskL)) === 0) {
          end = i + 1;
          break;
        }
      }
    }
    cuts.push(end);
    start = end;
  }
  return cuts;
}

function xorshiftBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function streamCuts(data: Uint8Array, p: ChunkerParams, pieces: number[]): number[] {
  const chunker = new Chunker(p);
  const cuts: number[] = [];
  let at = 0;
  let pos = 0;
  let k = 0;
  const collect = (chunks: Uint8Array[]) => {
    for (const c of chunks) {
      if (!Buffer.from(c).equals(data.subarray(at, at + c.length)))
        throw new Error(`chunk bytes differ at ${at}`);
      at += c.length;
      cuts.push(at);
    }
  };
  while (pos < data.length) {
    const n = Math.min(pieces.length > 0 ? pieces[k++ % pieces.length]! : data.length, data.length - pos);
    collect(chunker.push(data.subarray(pos, pos + n)));
    pos += n;
  }
  collect(chunker.finish());
  return cuts;
}

const SMALL: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };

describe('FastCDC', () => {
  it('cuts where the reference loop cuts, for any split into pushes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 40_000 }),
        fc.integer({ min: 1, max: 0xffffffff }),
        fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 8 }),
        fc.constantFrom(
          SMALL,
          { minSize: 256, avgSize: 256, maxSize: 256 },
          { minSize: 1, avgSize: 64, maxSize: 100 },
        ),
        (n, seed, pieces, p) => {
          const data = xorshiftBytes(n, seed);
          expect(streamCuts(data, p, pieces)).toEqual(referenceCuts(data, p));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('matches the reference with the default parameters on 8 MiB, pushed in odd pieces', () => {
    const data = xorshiftBytes(8 << 20, 7);
    const ref = referenceCuts(data, DEFAULT_CHUNKER_PARAMS);
    expect(ref.length).toBeGreaterThan(8);
    expect(streamCuts(data, DEFAULT_CHUNKER_PARAMS, [1, 65_537, 1 << 20, 333])).toEqual(ref);
    expect(streamCuts(data, DEFAULT_CHUNKER_PARAMS, [])).toEqual(ref);
  });

  it('respects min and max sizes; low-entropy input is cut at maxSize', () => {
    const p = DEFAULT_CHUNKER_PARAMS;
    const data = xorshiftBytes(4 << 20, 99);
    const cuts = streamCuts(data, p, [100_000]);
    cuts.forEach((c, i) => {
      const size = c - (i === 0 ? 0 : cuts[i - 1]!);
      expect(size).toBeLessThanOrEqual(p.maxSize);
      if (i < cuts.length - 1) expect(size).toBeGreaterThan(p.minSize);
    });
    const zeros = new Uint8Array(p.maxSize * 3 + 5);
    expect(streamCuts(zeros, p, [])).toEqual([p.maxSize, 2 * p.maxSize, 3 * p.maxSize, zeros.length]);
  });

  it('findBoundary treats the range as the whole input', () => {
    const data = xorshiftBytes(100_000, 3);
    const ref = referenceCuts(data.subarray(1000), SMALL);
    expect(findBoundary(data, 1000, data.length, SMALL)).toBe(1000 + ref[0]!);
    expect(findBoundary(data, 10, 10 + SMALL.minSize, SMALL)).toBe(10 + SMALL.minSize);
  });

  it('returns fresh copies, not views of the pushed bytes', () => {
    const data = xorshiftBytes(5000, 5);
    const chunker = new Chunker(SMALL);
    const first = chunker.push(data)[0]!;
    const copy = Buffer.from(first);
    data.fill(0);
    expect(copy.equals(first)).toBe(true);
  });

  it('pins the boundaries of a fixed input (changing the gear table loses dedup)', () => {
    const data = xorshiftBytes(1 << 20, 42);
    const cuts = streamCuts(data, SMALL, [4096]);
    expect(cuts.length).toBe(referenceCuts(data, SMALL).length);
    expect(Buffer.from(blake3(new Uint8Array(new Uint32Array(cuts).buffer))).toString('hex')).toBe(
      'e075eb7fc992e4138023627f7f095e12e94ffdb4b573bb38180c9d21daa026e1',
    );
    expect(cuts.slice(0, 8)).toEqual([115, 543, 920, 1191, 1489, 1627, 1930, 2346]);
  });

  it('rejects bad parameters', () => {
    expect(() => new Chunker({ minSize: 0, avgSize: 64, maxSize: 128 })).toThrow(TypeError);
    expect(() => new Chunker({ minSize: 16, avgSize: 48, maxSize: 128 })).toThrow(TypeError);
    expect(() => new Chunker({ minSize: 16, avgSize: 64, maxSize: 32 })).toThrow(TypeError);
  });
});

/**
 * FastCDC: the optimised streaming chunker must cut exactly where the plain
 * reference loop below (the textbook algorithm, kept here on purpose) cuts,
 * for any way the input is split into pushes, on both scan engines (the
 * WebAssembly loop and the JS fallback), including inputs built to hit the
 * masks often or never; and boundaries are pinned for a fixed input, since
 * moving them would lose dedup against existing stores. The checked-in wasm
 * module must be what its generator script produces.
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Chunker,
  type ChunkerParams,
  createChunker,
  DEFAULT_CHUNKER_PARAMS,
  findBoundary,
  SCAN_ENGINES,
  type ScanEngineName,
} from '../../src/blob/fastcdc.js';
import { FASTCDC_WASM_BASE64 } from '../../src/blob/fastcdc-wasm.js';
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

function streamCuts(
  data: Uint8Array,
  p: ChunkerParams,
  pieces: number[],
  engine?: ScanEngineName,
  emptyPushes = false,
): number[] {
  const chunker = engine === undefined ? new Chunker(p) : createChunker(engine, p);
  const cuts: number[] = [];
  let at = 0;
  let pos = 0;
  let k = 0;
  const collect = (c: Uint8Array) => {
    if (!Buffer.from(c).equals(data.subarray(at, at + c.length)))
      throw new Error(`chunk bytes differ at ${at}`);
    at += c.length;
    cuts.push(at);
  };
  while (pos < data.length) {
    const n = Math.min(pieces.length > 0 ? pieces[k++ % pieces.length]! : data.length, data.length - pos);
    chunker.push(data.subarray(pos, pos + n), collect);
    if (emptyPushes) chunker.push(new Uint8Array(0), collect);
    pos += n;
  }
  chunker.finish(collect);
  return cuts;
}

/** Copies of the chunks `push` (and `finish`, when `end`) hands out for `data`. */
function chunksOf(chunker: Chunker, data: Uint8Array, end = false): Uint8Array[] {
  const out: Uint8Array[] = [];
  chunker.push(data, (c) => out.push(c.slice()));
  if (end) chunker.finish((c) => out.push(c.slice()));
  return out;
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

  it('hands out views of its own buffer, never of the pushed bytes, which may be reused at once', () => {
    const data = xorshiftBytes(5000, 5);
    const original = Buffer.from(data);
    const chunker = new Chunker(SMALL);
    const seen: Buffer[] = [];
    chunker.push(data, (c) => {
      expect(c.buffer).not.toBe(data.buffer);
      seen.push(Buffer.from(c));
    });
    expect(seen.length).toBeGreaterThan(1);
    data.fill(0); // the tail not yet cut is the chunker's copy
    chunker.finish((c) => seen.push(Buffer.from(c)));
    expect(Buffer.concat(seen).equals(original)).toBe(true);
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

/** The reference fingerprint of 32 bytes hashed in a row: what the chunker has after them, whatever came before. */
function windowFingerprint(bytes: Uint8Array): number {
  let fp = 0;
  for (const b of bytes) fp = ((fp << 1) + GEAR[b]!) >>> 0;
  return fp;
}

/** 32 bytes whose fingerprint has the top `bits` bits zero: planted anywhere past minSize + 32, a cut right after. */
function cutString(bits: number, seed: number): Uint8Array {
  const s = xorshiftBytes(32, seed);
  for (let tries = 0; ; tries++) {
    s.set(xorshiftBytes(31, seed + tries + 1));
    for (let last = 0; last < 256; last++) {
      s[31] = last;
      if (windowFingerprint(s) >>> (32 - bits) === 0) return s;
    }
  }
}

/** Random bytes with `cut` planted at random gaps of 0..maxGap bytes; gap 0 repeats it, hitting every 32 bytes. */
function plantedBytes(n: number, seed: number, cut: Uint8Array, maxGap: number): Uint8Array {
  const out = xorshiftBytes(n, seed);
  const gaps = xorshiftBytes(4 * Math.ceil(n / 32), seed + 1);
  const view = new DataView(gaps.buffer);
  for (let at = 0, g = 0; at + cut.length <= n; g++) {
    out.set(cut, at);
    at += cut.length + (view.getUint32(4 * g) % (maxGap + 1));
  }
  return out;
}

type Kind = 'random' | 'zeros' | 'ones' | 'planted' | 'repeated' | 'small alphabet';

function adversarial(kind: Kind, n: number, seed: number, p: ChunkerParams): Uint8Array {
  const bits = Math.log2(p.avgSize) + 2; // the stricter mask; hitting it hits the looser one too
  switch (kind) {
    case 'random':
      return xorshiftBytes(n, seed);
    case 'zeros':
      return new Uint8Array(n);
    case 'ones':
      return new Uint8Array(n).fill(0xff);
    case 'planted':
      return plantedBytes(n, seed, cutString(bits, seed), p.avgSize / 2);
    case 'repeated':
      return plantedBytes(n, seed, cutString(bits, seed), 0);
    case 'small alphabet':
      return xorshiftBytes(n, seed).map((b) => b & 3);
  }
}

const KINDS: Kind[] = ['random', 'zeros', 'ones', 'planted', 'repeated', 'small alphabet'];

describe('FastCDC scan engines (WebAssembly and the JS fallback)', () => {
  it('has WebAssembly under Node, as the default engine', () => {
    expect(SCAN_ENGINES).toEqual(['wasm', 'js']);
    expect(() => createChunker('asm.js' as ScanEngineName, SMALL)).toThrow(TypeError);
  });

  it('the adversarial inputs do what they say', () => {
    const p = DEFAULT_CHUNKER_PARAMS;
    const cuts = referenceCuts(adversarial('repeated', 1 << 20, 5, p), p);
    // a cut at the first whole planted string past minSize: minSize + 32 + at most 32 bytes
    expect(cuts[0]).toBeGreaterThan(p.minSize);
    expect(cuts[0]).toBeLessThanOrEqual(p.minSize + 64);
    // planted strings cut far more often than chance
    const n = 4 << 20;
    const planted = referenceCuts(adversarial('planted', n, 5, p), p).length;
    expect(planted).toBeGreaterThan(2 * referenceCuts(adversarial('random', n, 5, p), p).length);
    expect(referenceCuts(adversarial('zeros', 1 << 20, 0, p), p)[0]).toBe(p.maxSize);
    expect(referenceCuts(adversarial('ones', 1 << 20, 0, p), p)[0]).toBe(p.maxSize);
  });

  it('both engines cut where the reference does, for any input kind, params and split into pushes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...KINDS),
        fc.integer({ min: 0, max: 30_000 }),
        fc.integer({ min: 1, max: 0xffffff }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 8 }),
        fc.boolean(),
        fc.constantFrom(
          SMALL,
          { minSize: 256, avgSize: 256, maxSize: 256 },
          { minSize: 1, avgSize: 64, maxSize: 100 },
          { minSize: 64, avgSize: 64, maxSize: 4096 },
          { minSize: 1, avgSize: 1, maxSize: 1 },
        ),
        (kind, n, seed, pieces, empties, p) => {
          const data = adversarial(kind, n, seed, p);
          const ref = referenceCuts(data, p);
          for (const engine of SCAN_ENGINES)
            expect(streamCuts(data, p, pieces, engine, empties)).toEqual(ref);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('both engines match the reference with the default params, in pieces from 1 byte to 3 MiB', () => {
    const p = DEFAULT_CHUNKER_PARAMS;
    for (const kind of KINDS) {
      const data = adversarial(kind, (5 << 20) + 12345, 11, p);
      const ref = referenceCuts(data, p);
      for (const engine of SCAN_ENGINES) {
        expect(
          streamCuts(data, p, [3 << 20, 1, 65_536, 7, 1 << 20, 333], engine),
          `${kind} ${engine}`,
        ).toEqual(ref);
        expect(streamCuts(data, p, [], engine), `${kind} ${engine}, one push`).toEqual(ref);
      }
    }
  });

  it('both engines handle chunks longer than the scan buffer (it grows)', () => {
    const p = { minSize: 256 << 10, avgSize: 1 << 20, maxSize: 3 << 20 };
    for (const kind of ['zeros', 'random', 'planted'] as const) {
      const data = adversarial(kind, 10 << 20, 3, p);
      const ref = referenceCuts(data, p);
      if (kind === 'zeros') expect(ref.slice(0, 2)).toEqual([3 << 20, 6 << 20]);
      for (const engine of SCAN_ENGINES) {
        expect(streamCuts(data, p, [65_536, 1 << 20, 4 << 20], engine), `${kind} ${engine}`).toEqual(ref);
      }
    }
  });

  it('chunkers interleaved or reused after finish do not disturb each other', () => {
    const a = xorshiftBytes(300_000, 21);
    const b = adversarial('planted', 200_000, 22, SMALL);
    for (const engine of SCAN_ENGINES) {
      const ca = createChunker(engine, SMALL);
      const cb = createChunker(engine, SMALL);
      const outA: Uint8Array[] = [];
      const outB: Uint8Array[] = [];
      for (let pos = 0; pos < a.length; pos += 7000) {
        outA.push(...chunksOf(ca, a.subarray(pos, pos + 7000)));
        outB.push(...chunksOf(cb, b.subarray(pos, pos + 7000)));
      }
      ca.finish((c) => outA.push(c.slice()));
      cb.finish((c) => outB.push(c.slice()));
      expect(Buffer.concat(outA).equals(a)).toBe(true);
      expect(Buffer.concat(outB).equals(b)).toBe(true);
      const sizes = (cs: Uint8Array[]) => cs.map((c) => c.length);
      expect(sizes(outA)).toEqual(deltas(referenceCuts(a, SMALL)));
      expect(sizes(outB)).toEqual(deltas(referenceCuts(b, SMALL)));
      // reused: same chunks again, from a pooled buffer still holding old bytes
      expect(sizes(chunksOf(ca, b, true))).toEqual(sizes(outB));
      let more = 0;
      ca.finish(() => more++);
      expect(more).toBe(0);
    }
  });

  it('both engines hit the pinned boundaries', () => {
    const data = xorshiftBytes(1 << 20, 42);
    for (const engine of SCAN_ENGINES) {
      expect(streamCuts(data, SMALL, [4096], engine).slice(0, 8)).toEqual([
        115, 543, 920, 1191, 1489, 1627, 1930, 2346,
      ]);
      const cuts = streamCuts(data, DEFAULT_CHUNKER_PARAMS, [100_000], engine);
      expect(cuts).toEqual(referenceCuts(data, DEFAULT_CHUNKER_PARAMS));
    }
  });

  it('the checked-in wasm module is what scripts/make-fastcdc-wasm.mjs generates', async () => {
    const script = new URL('../../scripts/make-fastcdc-wasm.mjs', import.meta.url).href;
    const generator = (await import(script)) as {
      fastcdcWasmBytes(): Uint8Array;
      fastcdcWasmSource(): string;
    };
    const checkedIn = readFileSync(new URL('../../src/blob/fastcdc-wasm.ts', import.meta.url), 'utf8');
    expect(checkedIn).toBe(generator.fastcdcWasmSource());
    const bytes = generator.fastcdcWasmBytes();
    expect(Buffer.from(FASTCDC_WASM_BASE64, 'base64').equals(bytes)).toBe(true);
    expect(generator.fastcdcWasmBytes()).toEqual(bytes);
  });
});

function deltas(cuts: number[]): number[] {
  return cuts.map((c, i) => c - (i === 0 ? 0 : cuts[i - 1]!));
}

/**
 * Mutation fuzzing for fast-check: start from a valid input and apply a few
 * random edits (flip, overwrite with an interesting value, insert, delete,
 * duplicate a slice, truncate), so most cases get past the first check and
 * reach deep into a parser. `splitArb` cuts bytes into stream chunks.
 * `noHang` fails a case that takes longer than a bound instead of letting
 * the suite stall.
 */

import fc from 'fast-check';
import { FetchCacheError } from '../../src/errors.js';

type Edit =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; len: number }
  | { op: 'dup'; at: number; len: number }
  | { op: 'truncate'; at: number };

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x2e, 0x2f, 0x30];

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(...INTERESTING) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ op: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

export function applyEdits(input: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let b = Buffer.from(input);
  for (const e of edits) {
    const at = b.length === 0 ? 0 : e.at % (b.length + 1);
    switch (e.op) {
      case 'flip':
        if (at < b.length) b[at] = b[at]! ^ (1 << e.bit);
        break;
      case 'set':
        if (at < b.length) b[at] = e.value;
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.len)]);
        break;
      case 'dup':
        b = Buffer.concat([b.subarray(0, at + e.len), b.subarray(at, at + e.len), b.subarray(at + e.len)]);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
    }
  }
  return new Uint8Array(b);
}

/** Inputs from `base`, each with 1–4 edits (and, now and then, untouched). */
export function mutated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(base, fc.array(editArb, { minLength: 0, maxLength: 4 }))
    .map(([input, edits]) => applyEdits(input, edits));
}

/** Chunk boundaries for streaming a byte string. */
export function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort(
    (a, b) => a - b,
  );
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    if (p > last) out.push(bytes.subarray(last, p));
    last = Math.max(last, p);
  }
  out.push(bytes.subarray(last));
  return out;
}

/** The only failure a parser may raise on bad input. */
export function expectOnlyFetchCacheError(e: unknown): void {
  if (!(e instanceof FetchCacheError))
    throw new Error(`threw something other than FetchCacheError: ${String(e)}`, { cause: e });
}

/** Rejects if `p` takes longer than `ms`. */
export async function noHang<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no result after ${ms} ms: a hang`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

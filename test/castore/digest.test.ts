// Known-answer tests for castore BLAKE3 digests and their text forms (snix digests.rs), and bytewise name order.

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesEqual, compareBytes, utf8 } from '../../src/castore/bytes.js';
import {
  B3_LEN,
  b3Equals,
  b3FromHex,
  b3ToHex,
  b3ToString,
  blobDigest,
  EMPTY_B3,
  parseB3Digest,
} from '../../src/castore/digest.js';
import { isFetchCacheError } from '../../src/errors.js';

interface BlobVector {
  name: string;
  contentHex?: string;
  contentUtf8?: string;
  generator?: string;
  length?: number;
  blake3: string;
  b3String?: string;
}

const fixtures = JSON.parse(
  readFileSync(new URL('../../fixtures/castore.json', import.meta.url), 'utf8'),
) as {
  blobs: BlobVector[];
  dummyDigests: Record<string, string>;
};

function blobContent(v: BlobVector): Uint8Array {
  if (v.contentUtf8 !== undefined) return utf8(v.contentUtf8);
  if (v.contentHex !== undefined) return new Uint8Array(Buffer.from(v.contentHex, 'hex'));
  // BLOB_B: byte i % 255 for i in 0..length
  const out = new Uint8Array(v.length!);
  for (let i = 0; i < out.length; i++) out[i] = i % 255;
  return out;
}

function expectBadHash(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(isFetchCacheError(e, 'ERR_BAD_HASH')).toBe(true);
    return;
  }
  expect.fail('expected ERR_BAD_HASH');
}

describe('blob digests (snix fixtures)', () => {
  for (const v of fixtures.blobs) {
    it(`${v.name} → ${v.blake3.slice(0, 8)}…`, () => {
      const d = blobDigest(blobContent(v));
      expect(d.length).toBe(B3_LEN);
      expect(b3ToHex(d)).toBe(v.blake3);
      if (v.b3String !== undefined) {
        expect(b3ToString(d)).toBe(v.b3String);
        expect(b3ToHex(parseB3Digest(v.b3String))).toBe(v.blake3);
      }
    });
  }

  it('EMPTY_B3 is the empty blob digest', () => {
    expect(b3ToHex(EMPTY_B3)).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    // The constant is what BLAKE3 computes, and a plain Uint8Array like every digest.
    expect(b3Equals(EMPTY_B3, blobDigest(new Uint8Array(0)))).toBe(true);
    expect(Object.getPrototypeOf(EMPTY_B3)).toBe(Uint8Array.prototype);
  });
});

describe('hex and blake3- text forms', () => {
  it('hex round-trips and accepts upper case', () => {
    const hex = fixtures.dummyDigests.DUMMY_DIGEST_2!;
    const d = b3FromHex(hex);
    expect(d[0]).toBe(0x10);
    expect(d.subarray(1).every((b) => b === 0)).toBe(true);
    expect(b3ToHex(b3FromHex(hex.toUpperCase()))).toBe(hex);
  });

  it('rejects hex of the wrong length or alphabet', () => {
    expectBadHash(() => b3FromHex('00'.repeat(31)));
    expectBadHash(() => b3FromHex('00'.repeat(33)));
    expectBadHash(() => b3FromHex(`${'00'.repeat(31)}zz`));
  });

  it('parseB3Digest requires the prefix, padding, the std alphabet and 32 bytes', () => {
    const good = 'blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI=';
    expect(b3Equals(parseB3Digest(good), EMPTY_B3)).toBe(true);
    expectBadHash(() => parseB3Digest(good.slice('blake3-'.length)));
    expectBadHash(() => parseB3Digest('sha256-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI='));
    expectBadHash(() => parseB3Digest(good.slice(0, -1))); // unpadded
    expectBadHash(() => parseB3Digest(`blake3-${Buffer.alloc(31).toString('base64')}`));
    expectBadHash(() => parseB3Digest(`blake3-${Buffer.alloc(33).toString('base64')}`));
    // '/' → '_' is the URL-safe alphabet, not accepted by snix's STANDARD engine.
    expectBadHash(() => parseB3Digest('blake3-XKeBWty0hOmhNsEe_mnB1TAXbVSbXRjQOOtSgLSzRww='));
    // Non-zero trailing bits ('I' → 'J' in the last data char) decode to the same bytes in Node.
    expectBadHash(() => parseB3Digest('blake3-rxNJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmJ='));
  });

  it('misuse with a non-32-byte digest is a TypeError', () => {
    expect(() => b3ToHex(new Uint8Array(31))).toThrow(TypeError);
    expect(() => b3ToString(new Uint8Array(33))).toThrow(TypeError);
  });

  it('text forms round-trip for any digest', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (d) => {
        expect(bytesEqual(b3FromHex(b3ToHex(d)), d)).toBe(true);
        expect(bytesEqual(parseB3Digest(b3ToString(d)), d)).toBe(true);
      }),
    );
  });
});

describe('bytewise comparison', () => {
  it('orders by unsigned bytes, not UTF-16 code units', () => {
    // U+FFFD is EF BF BD, U+1F600 is F0 9F 98 80; in UTF-16 the emoji (D83D…) sorts first.
    const a = '\uFFFD';
    const b = '\u{1F600}';
    expect(a > b).toBe(true);
    expect(compareBytes(utf8(a), utf8(b))).toBe(-1);
    expect(compareBytes(utf8('a'), utf8('ab'))).toBe(-1);
    expect(compareBytes(utf8('B'), utf8('a'))).toBe(-1);
    expect(compareBytes(new Uint8Array([0x80]), new Uint8Array([0x7f]))).toBe(1);
    expect(compareBytes(utf8('x'), utf8('x'))).toBe(0);
  });

  it('agrees with Buffer.compare', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 6 }), fc.uint8Array({ maxLength: 6 }), (a, b) => {
        expect(compareBytes(a, b)).toBe(Buffer.compare(a, b));
        expect(bytesEqual(a, b)).toBe(Buffer.compare(a, b) === 0);
      }),
    );
  });
});

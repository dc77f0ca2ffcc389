/**
 * nix32 against the known answers of Nix, snix and go-nix (fixtures/nixbase32.json),
 * the invalid strings those projects reject, and round-trip properties.
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFetchCacheError } from '../../src/errors.js';
import { decodeNix32, encodeNix32, isNix32, isNix32Length, nix32Length } from '../../src/nix/nixbase32.js';

interface Fixture {
  nixbase32: { hex: string; nixbase32: string; source: string }[];
  nixbase32Invalid: { input: string; reason: string }[];
}

const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/nixbase32.json', import.meta.url), 'utf8'),
) as Fixture;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fromHex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

/** Independent reference: the little-endian number printed in base 32, most significant digit first. */
function referenceEncode(bytes: Uint8Array): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  let s = '';
  for (let k = 0; k < nix32Length(bytes.length); k++) {
    s = alphabet[Number(n & 31n)]! + s;
    n >>= 5n;
  }
  return s;
}

describe('nix32 known answers', () => {
  for (const v of fixture.nixbase32) {
    it(`encodes ${v.hex || '(empty)'}`, () => {
      expect(encodeNix32(fromHex(v.hex))).toBe(v.nixbase32);
    });
    it(`decodes ${v.nixbase32 || '(empty)'}`, () => {
      expect(hex(decodeNix32(v.nixbase32))).toBe(v.hex);
    });
  }

  for (const v of fixture.nixbase32Invalid) {
    it(`rejects ${JSON.stringify(v.input)} (${v.reason})`, () => {
      expect(() => decodeNix32(v.input)).toThrow(expect.objectContaining({ code: 'ERR_BAD_NIX32' }));
      expect(isNix32(v.input)).toBe(false);
    });
  }

  it('rejects upper case and non-ASCII digits', () => {
    expect(isNix32('0Z')).toBe(false);
    expect(isNix32('0\u00e9')).toBe(false);
  });

  it('reports the error as a one-line FetchCacheError', () => {
    try {
      decodeNix32('0t');
      expect.unreachable();
    } catch (e) {
      expect(isFetchCacheError(e, 'ERR_BAD_NIX32')).toBe(true);
      expect((e as Error).message).not.toContain('\n');
    }
  });
});

describe('nix32 lengths', () => {
  it('is ⌊(8n−1)/5⌋+1 characters for n bytes (docs/formats.md §2)', () => {
    expect([0, 1, 16, 20, 32, 64].map(nix32Length)).toEqual([0, 2, 26, 32, 52, 103]);
  });
  it('knows which lengths are encodings', () => {
    expect([0, 2, 26, 32, 52, 103].every(isNix32Length)).toBe(true);
    expect([1, 3, 33, 51, 102].some(isNix32Length)).toBe(false);
  });
});

describe('nix32 properties', () => {
  it('agrees with an independent BigInt reference', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 100 }), (bytes) => {
        expect(encodeNix32(bytes)).toBe(referenceEncode(bytes));
      }),
    );
  });

  it('decode(encode(x)) == x', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 100 }), (bytes) => {
        const s = encodeNix32(bytes);
        expect(s.length).toBe(nix32Length(bytes.length));
        expect(hex(decodeNix32(s))).toBe(hex(bytes));
      }),
    );
  });

  it('encode(decode(s)) == s for every valid string', () => {
    const digit = fc.constantFrom(...'0123456789abcdfghijklmnpqrsvwxyz');
    const validString = fc.integer({ min: 1, max: 100 }).chain((n) =>
      fc
        .tuple(
          fc.integer({ min: 0, max: 31 }),
          fc.array(digit, { minLength: nix32Length(n) - 1, maxLength: nix32Length(n) - 1 }),
        )
        .map(([top, rest]) => {
          // The top digit may only use the bits that fit in n bytes.
          const spare = nix32Length(n) * 5 - 8 * n;
          return '0123456789abcdfghijklmnpqrsvwxyz'[top & (31 >> spare)]! + rest.join('');
        }),
    );
    fc.assert(
      fc.property(validString, (s) => {
        expect(encodeNix32(decodeNix32(s))).toBe(s);
      }),
    );
  });

  it('rejects every top digit that sets bits beyond the byte count', () => {
    for (const n of [1, 16, 20, 32, 64]) {
      const len = nix32Length(n);
      const spare = len * 5 - 8 * n;
      for (let top = 0; top < 32; top++) {
        const s = '0123456789abcdfghijklmnpqrsvwxyz'[top]! + '0'.repeat(len - 1);
        expect(isNix32(s)).toBe(top >> (5 - spare) === 0);
      }
    }
  });
});

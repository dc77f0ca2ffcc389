/**
 * Hash parsing and printing against Nix's own known answers (fixtures/hashes.json:
 * hash-path.sh, convertHash, nix-compat from_str, base-n.cc leniency), the
 * rejections Nix makes, cross-checks with node:crypto, and round-trips in all
 * four formats for every algorithm.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compressHash,
  formatHash,
  fromBase16,
  fromBase64Lenient,
  type Hash,
  type HashFormat,
  hashEquals,
  hashOf,
  makeHash,
  parseAnyPrefixedHash,
  parseHash,
  parseHashAlgo,
  parseHashFormat,
  parseSRI,
  toBase16,
  toBase64,
  toNix32Prefixed,
  toSRI,
} from '../../src/nix/hash.js';
import {
  blake3,
  createBlake3Hasher,
  createHasher,
  HASH_ALGOS,
  HASH_SIZE,
  type HashAlgo,
} from '../../src/nix/hashing.js';

interface Encoded {
  input: string;
  algo: HashAlgo;
  base16?: string;
  nix32?: string;
  base64?: string;
  sri?: string;
}
interface Fixture {
  hashEncodings: Encoded[];
  hashStringTable: { entries: Required<Encoded>[] };
  hashParse: { text: string; algo: HashAlgo; hex: string }[];
  base64Lenient: { sri: string; algo: HashAlgo; hex: string; canonical?: string }[];
  hashParseInvalid: { text: string; reason: string }[];
}

const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/hashes.json', import.meta.url), 'utf8'),
) as Fixture;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const FORMATS: HashFormat[] = ['base16', 'nix32', 'base64', 'sri'];

function badHash(fn: () => unknown): void {
  expect(fn).toThrow(expect.objectContaining({ code: 'ERR_BAD_HASH' }));
}

describe('hashes of strings in every encoding (Nix known answers)', () => {
  const all: Encoded[] = [...fixture.hashEncodings, ...fixture.hashStringTable.entries];
  for (const v of all) {
    const h = hashOf(v.algo, v.input);
    const label = `${v.algo}(${JSON.stringify(v.input)})`;
    for (const format of FORMATS) {
      const expected = v[format];
      if (expected === undefined) continue;
      it(`${label} prints as ${format}`, () => {
        expect(formatHash(h, format)).toBe(expected);
      });
      it(`${label} parses from ${format}`, () => {
        const parsed = format === 'sri' ? parseHash(expected) : parseHash(expected, v.algo);
        expect(hashEquals(parsed, h)).toBe(true);
        if (format !== 'sri') {
          expect(hashEquals(parseHash(`${v.algo}:${expected}`), h)).toBe(true);
          expect(formatHash(h, format, { prefix: true })).toBe(`${v.algo}:${expected}`);
        }
      });
    }
  }

  it('cross-checks digests with node:crypto directly', () => {
    for (const algo of HASH_ALGOS) {
      for (const input of ['', 'abc', 'text 1', '\u00e9\u{1f600}']) {
        const ref = createHash(algo).update(input, 'utf8').digest();
        const h = hashOf(algo, new TextEncoder().encode(input));
        expect(formatHash(h, 'base16')).toBe(ref.toString('hex'));
        expect(formatHash(h, 'base64')).toBe(ref.toString('base64'));
        expect(toSRI(h)).toBe(`${algo}-${ref.toString('base64')}`);
      }
    }
  });
});

describe('parseHash (nix-compat from_str)', () => {
  for (const v of fixture.hashParse) {
    it(`parses ${v.text}`, () => {
      const h = parseHash(v.text);
      expect(h.algo).toBe(v.algo);
      expect(hex(h.digest)).toBe(v.hex);
      expect(hashEquals(parseAnyPrefixedHash(v.text), h)).toBe(true);
      expect(hashEquals(parseHash(v.text, v.algo), h)).toBe(true);
    });
  }

  it('accepts upper-case base16', () => {
    const v = fixture.hashParse.find((x) => x.text.startsWith('sha256:a5ce'))!;
    expect(hex(parseHash(v.text.toUpperCase().replace('SHA256', 'sha256')).digest)).toBe(v.hex);
  });

  it('requires prefix and context algorithm to agree', () => {
    badHash(() => parseHash('sha1:6016777997c30ab02413cf5095622cd7924283ac', 'sha256'));
    badHash(() => parseHash('sha1-YBZ3eZfDCrAkE89QlWIs15JCg6w=', 'sha256'));
  });

  it('parseAnyPrefixedHash refuses bare hashes even of a recognisable length', () => {
    badHash(() => parseAnyPrefixedHash('0fcxdvyzxr09shcbcxkv7l1b356dqxzp3ja68rhrg4yhbqarrkm5'));
    expect(hex(parseHash('0fcxdvyzxr09shcbcxkv7l1b356dqxzp3ja68rhrg4yhbqarrkm5', 'sha256').digest)).toBe(
      'a5ce9c155ed09397614646c9717fc7cd94b1023d7b76b618d409e4fefd6e9d39',
    );
  });

  it('parseSRI accepts only the SRI form', () => {
    expect(parseSRI('sha256-pc6cFV7Qk5dhRkbJcX/HzZSxAj17drYY1Ank/v1unTk=').algo).toBe('sha256');
    badHash(() => parseSRI('sha256:a5ce9c155ed09397614646c9717fc7cd94b1023d7b76b618d409e4fefd6e9d39'));
  });

  for (const v of fixture.hashParseInvalid) {
    it(`rejects ${v.text} (${v.reason})`, () => {
      badHash(() => parseHash(v.text));
      try {
        parseHash(v.text);
      } catch (e) {
        expect((e as Error).message).not.toContain('\n');
      }
    });
  }

  it('rejects bare hashes of a wrong length even with an algorithm', () => {
    badHash(() => parseHash('abcd', 'sha256'));
    badHash(() => parseHash('', 'md5'));
  });
});

describe("Nix's lenient base64 on input", () => {
  for (const v of fixture.base64Lenient) {
    it(`accepts ${JSON.stringify(v.sri)}`, () => {
      const h = parseHash(v.sri);
      expect(h.algo).toBe(v.algo);
      expect(hex(h.digest)).toBe(v.hex);
      if (v.canonical !== undefined) expect(toSRI(h)).toBe(v.canonical);
    });
  }

  it('skips newlines and stops at the first "="', () => {
    expect(hex(fromBase64Lenient('cXVv\nZCBl=garbage!!'))).toBe(hex(new TextEncoder().encode('quod e')));
    expect(hex(fromBase64Lenient(''))).toBe('');
  });

  it('throws on characters outside the standard alphabet', () => {
    badHash(() => fromBase64Lenient('cXVvZCBlcm_0IGRlbW9uc3RyYW5kdW0='));
    badHash(() => fromBase64Lenient('cXVv ZCBl'));
  });

  it('agrees with Buffer on canonical base64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(hex(fromBase64Lenient(Buffer.from(bytes).toString('base64')))).toBe(hex(bytes));
      }),
    );
  });
});

describe('helpers', () => {
  it('base16 round-trips and rejects junk', () => {
    expect(toBase16(fromBase16('00FFaa'))).toBe('00ffaa');
    badHash(() => fromBase16('abc'));
    badHash(() => fromBase16('zz'));
  });

  it('toBase64 pads', () => {
    expect(toBase64(new Uint8Array([1]))).toBe('AQ==');
  });

  it('toNix32Prefixed prints sha256:<nix32>', () => {
    expect(toNix32Prefixed(hashOf('sha256', 'abc'))).toBe(
      'sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s',
    );
  });

  it('compressHash XOR-folds', () => {
    const d = new Uint8Array(32).map((_, i) => i + 1);
    const c = compressHash(d, 20);
    expect(c.length).toBe(20);
    expect(c[0]).toBe(1 ^ 21);
    expect(c[11]).toBe(12 ^ 32);
    expect(c[12]).toBe(13);
    expect(hex(compressHash(new Uint8Array(0), 20))).toBe('00'.repeat(20));
  });

  it('parseHashAlgo and parseHashFormat', () => {
    expect(HASH_ALGOS.map(parseHashAlgo)).toEqual(HASH_ALGOS);
    badHash(() => parseHashAlgo('sha384'));
    badHash(() => parseHashAlgo('blake3'));
    expect(parseHashFormat('base32')).toBe('nix32');
    expect(parseHashFormat('sri')).toBe('sri');
    badHash(() => parseHashFormat('hex'));
  });

  it('hashEquals compares algorithm and bytes', () => {
    const a = hashOf('sha256', 'a');
    expect(hashEquals(a, { algo: 'sha256', digest: new Uint8Array(a.digest) })).toBe(true);
    expect(hashEquals(a, hashOf('sha256', 'b'))).toBe(false);
    expect(hashEquals(hashOf('md5', ''), { algo: 'sha256', digest: hashOf('md5', '').digest })).toBe(false);
  });

  it('makeHash checks the digest size', () => {
    expect(() => makeHash('sha256', new Uint8Array(20))).toThrow(TypeError);
    expect(makeHash('sha1', new Uint8Array(20)).algo).toBe('sha1');
  });
});

describe('round-trips in all four formats for every algorithm', () => {
  const anyHash: fc.Arbitrary<Hash> = fc
    .constantFrom(...HASH_ALGOS)
    .chain((algo) =>
      fc
        .uint8Array({ minLength: HASH_SIZE[algo], maxLength: HASH_SIZE[algo] })
        .map((digest) => ({ algo, digest })),
    );

  it('parseHash(formatHash(h, f)) == h', () => {
    fc.assert(
      fc.property(anyHash, fc.constantFrom(...FORMATS), (h, format) => {
        const text = formatHash(h, format);
        const back = format === 'sri' ? parseHash(text) : parseHash(text, h.algo);
        expect(hashEquals(back, h)).toBe(true);
        expect(hashEquals(parseHash(formatHash(h, format, { prefix: true })), h)).toBe(true);
        expect(hashEquals(parseAnyPrefixedHash(formatHash(h, format, { prefix: true })), h)).toBe(true);
      }),
    );
  });

  it('base16 output matches node Buffer hex', () => {
    fc.assert(
      fc.property(anyHash, (h) => {
        expect(formatHash(h, 'base16')).toBe(Buffer.from(h.digest).toString('hex'));
      }),
    );
  });
});

it('hashers take strings as their UTF-8 bytes, in any mix with byte updates', () => {
  const text = 'blob 12\0héllo';
  const bytes = new TextEncoder().encode(`${text}!`);
  for (const algo of HASH_ALGOS) {
    const h = createHasher(algo);
    h.update(text);
    h.update(new TextEncoder().encode('!'));
    expect(Buffer.from(h.digest()).toString('hex')).toBe(createHash(algo).update(bytes).digest('hex'));
  }
  const b = createBlake3Hasher();
  b.update(text);
  b.update(new TextEncoder().encode('!'));
  expect(Buffer.from(b.digest())).toEqual(Buffer.from(blake3(bytes)));
});

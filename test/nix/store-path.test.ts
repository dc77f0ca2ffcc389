/**
 * Store paths against known answers (fixtures/store-paths.json): text, flat,
 * NAR sha1/sha256 with references and self, real cache.nixos.org CA paths,
 * Nix 2.8 `nix-store --add(-fixed)` output, narHash → `-source` paths from issue
 * threads, Nix's name rules and parse canonicalisation, and path ordering.
 */

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashOf, parseHash, toBase16 } from '../../src/nix/hash.js';
import { sha256 } from '../../src/nix/hashing.js';
import {
  compareStorePaths,
  DEFAULT_STORE_DIR,
  fixedOutputPathInput,
  formatStorePath,
  isValidStorePathName,
  makeFixedOutputPath,
  makeStorePath,
  makeTextPath,
  parseStorePath,
  parseStorePathBaseName,
  parseStorePathCanonical,
  type StorePath,
  sortReferences,
  storePathBaseName,
  storePathFingerprint,
  storePathHashPart,
  textPathType,
  validateStorePathName,
} from '../../src/nix/store-path.js';

interface TextVector {
  kind: 'text';
  name: string;
  content?: string;
  contentSha256Hex?: string;
  references: string[];
  fingerprint: string;
  expected: string;
}
interface FixedVector {
  kind: 'fixed';
  name: string;
  method: 'flat' | 'nar';
  algo: 'md5' | 'sha1' | 'sha256' | 'sha512';
  hashHex: string;
  hashNix32: string;
  references: string[];
  selfReference: boolean;
  innerFingerprint?: string;
  fingerprint: string;
  expected: string;
}
interface Fixture {
  storePaths: (TextVector | FixedVector)[];
  narHashToSourcePath: { narHash: string; narHashNix32: string; name: string; expected: string }[];
  storePathNames: {
    valid: string[];
    invalid: string[];
    fullPathParse: { acceptedNonCanonical: string[]; rejected: string[] };
  };
  storePathOrdering: { ordered: string[] };
}

const fixture = JSON.parse(
  readFileSync(new URL('../../fixtures/store-paths.json', import.meta.url), 'utf8'),
) as Fixture;

const HASH_PART = 'g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q';

function badPath(fn: () => unknown): void {
  expect(fn).toThrow(expect.objectContaining({ code: 'ERR_BAD_STORE_PATH' }));
}

describe('store path computations (known answers)', () => {
  for (const v of fixture.storePaths) {
    if (v.kind === 'text') {
      it(`text ${v.name} → ${v.expected}`, () => {
        const digest =
          v.content !== undefined
            ? sha256(v.content)
            : new Uint8Array(Buffer.from(v.contentSha256Hex!, 'hex'));
        const type = textPathType(v.references);
        expect(storePathFingerprint(type, digest, v.name)).toBe(v.fingerprint);
        // References are passed unsorted: makeTextPath must sort them.
        const sp = makeTextPath(v.name, digest, [...v.references].reverse());
        expect(formatStorePath(sp)).toBe(v.expected);
      });
    } else {
      it(`fixed ${v.method} ${v.algo} ${v.name} → ${v.expected}`, () => {
        const hash = parseHash(v.hashHex, v.algo);
        expect(toBase16(parseHash(v.hashNix32, v.algo).digest)).toBe(v.hashHex);
        const opts = {
          name: v.name,
          method: v.method,
          hash,
          references: v.references,
          self: v.selfReference,
        };
        const input = fixedOutputPathInput(opts);
        expect(input.innerFingerprint).toBe(v.innerFingerprint);
        expect(storePathFingerprint(input.type, input.innerSha256, v.name)).toBe(v.fingerprint);
        expect(formatStorePath(makeFixedOutputPath(opts))).toBe(v.expected);
      });
    }
  }

  for (const v of fixture.narHashToSourcePath) {
    it(`narHash ${v.narHash} → ${v.expected}`, () => {
      const hash = parseHash(v.narHash);
      expect(toBase16(hash.digest)).toBe(toBase16(parseHash(v.narHashNix32, 'sha256').digest));
      expect(formatStorePath(makeFixedOutputPath({ name: v.name, method: 'nar', hash }))).toBe(v.expected);
    });
  }

  it('makeStorePath is nix32(compressHash(sha256(fingerprint))) computed independently', () => {
    const inner = sha256('x');
    const sp = makeStorePath('source', inner, 'foo', '/gnu/store');
    const fp = `source:sha256:${Buffer.from(inner).toString('hex')}:/gnu/store:foo`;
    const full = sha256(fp);
    const folded = new Uint8Array(20);
    for (let i = 0; i < 32; i++) folded[i % 20] = folded[i % 20]! ^ full[i]!;
    expect(Buffer.from(sp.digest).toString('hex')).toBe(Buffer.from(folded).toString('hex'));
    expect(formatStorePath(sp, '/gnu/store')).toMatch(/^\/gnu\/store\/[0-9a-z]{32}-foo$/);
  });

  it('the store dir changes the path', () => {
    const hash = hashOf('sha256', 'x');
    const a = makeFixedOutputPath({ name: 'source', method: 'nar', hash });
    const b = makeFixedOutputPath({ name: 'source', method: 'nar', hash }, '/tmp/store');
    expect(storePathHashPart(a)).not.toBe(storePathHashPart(b));
  });

  it('refuses references where a fixed-output path cannot have them (ERR_BAD_CA)', () => {
    const ref = `/nix/store/${HASH_PART}-bar`;
    const bad = (fn: () => unknown) => expect(fn).toThrow(expect.objectContaining({ code: 'ERR_BAD_CA' }));
    bad(() =>
      makeFixedOutputPath({ name: 'x', method: 'flat', hash: hashOf('sha256', ''), references: [ref] }),
    );
    bad(() => makeFixedOutputPath({ name: 'x', method: 'nar', hash: hashOf('sha1', ''), references: [ref] }));
    bad(() => makeFixedOutputPath({ name: 'x', method: 'nar', hash: hashOf('sha512', ''), self: true }));
    bad(() => makeFixedOutputPath({ name: 'x', method: 'git', hash: hashOf('md5', '') }));
  });

  it('git method uses the fixed:out:git: inner fingerprint', () => {
    const hash = hashOf('sha1', 'x');
    const input = fixedOutputPathInput({ name: 'x', method: 'git', hash });
    expect(input.innerFingerprint).toBe(`fixed:out:git:sha1:${toBase16(hash.digest)}:`);
    expect(input.type).toBe('output:out');
  });

  it('rejects invalid names and references while computing', () => {
    badPath(() => makeTextPath('a b', sha256(''), []));
    badPath(() => makeTextPath('ok', sha256(''), ['/nix/store/not-a-store-path']));
    badPath(() => makeTextPath('ok', sha256(''), [`/other/store/${HASH_PART}-bar`]));
    expect(() => makeStorePath('text', new Uint8Array(20), 'ok')).toThrow(TypeError);
    expect(() => makeStorePath('text', sha256(''), 'ok', '/nix/store/')).toThrow(TypeError);
  });

  it('sorts references bytewise, canonicalises and dedupes them', () => {
    const a = `/nix/store/${HASH_PART}-B`;
    const b = `/nix/store/${HASH_PART}-a`;
    expect(sortReferences([b, `${a}/`, a])).toEqual([a, b]);
  });
});

describe('store path names (Nix libstore-tests/path.cc)', () => {
  for (const name of fixture.storePathNames.valid) {
    it(`accepts ${JSON.stringify(name)}`, () => {
      expect(isValidStorePathName(name)).toBe(true);
      const sp = parseStorePath(`/nix/store/${HASH_PART}-${name}`);
      expect(sp.name).toBe(name);
    });
  }
  for (const name of fixture.storePathNames.invalid) {
    it(`rejects ${JSON.stringify(name)}`, () => {
      badPath(() => validateStorePathName(name));
      badPath(() => parseStorePath(`/nix/store/${HASH_PART}-${name}`));
    });
  }
  it('limits names to 211 characters', () => {
    expect(isValidStorePathName('a'.repeat(211))).toBe(true);
    expect(isValidStorePathName('a'.repeat(212))).toBe(false);
  });
  it('rejects non-ASCII and "/"', () => {
    expect(isValidStorePathName('caf\u00e9')).toBe(false);
    expect(isValidStorePathName('a/b')).toBe(false);
  });
});

describe('parsing full store paths', () => {
  const canonical = `/nix/store/${HASH_PART}-foo`;

  it('parses and prints the canonical form', () => {
    const sp = parseStorePath(canonical);
    expect(sp.name).toBe('foo');
    expect(storePathHashPart(sp)).toBe(HASH_PART);
    expect(storePathBaseName(sp)).toBe(`${HASH_PART}-foo`);
    expect(formatStorePath(sp)).toBe(canonical);
    expect(formatStorePath(sp, DEFAULT_STORE_DIR)).toBe(canonical);
    expect(parseStorePathCanonical(canonical).name).toBe('foo');
  });

  for (const p of fixture.storePathNames.fullPathParse.acceptedNonCanonical) {
    it(`canonicalises ${p}`, () => {
      expect(formatStorePath(parseStorePath(p))).toBe(canonical);
      badPath(() => parseStorePathCanonical(p));
    });
  }
  for (const p of fixture.storePathNames.fullPathParse.rejected) {
    it(`rejects ${JSON.stringify(p)}`, () => {
      badPath(() => parseStorePath(p));
    });
  }

  it('honours another store dir', () => {
    const sp = parseStorePath(`/gnu/store/${HASH_PART}-foo`, '/gnu/store');
    expect(formatStorePath(sp, '/gnu/store')).toBe(`/gnu/store/${HASH_PART}-foo`);
    badPath(() => parseStorePath(canonical, '/gnu/store'));
  });

  it('rejects bad hash parts and base names', () => {
    badPath(() => parseStorePathBaseName('00bgd045z0d4icpbc2yyz4gx48aku4la-foo'));
    badPath(() => parseStorePathBaseName(`${HASH_PART}_foo`));
    badPath(() => parseStorePathBaseName(`${HASH_PART}-`));
    badPath(() => parseStorePathBaseName(HASH_PART.slice(1)));
    expect(
      Buffer.from(parseStorePathBaseName('00bgd045z0d4icpbc2yyz4gx48ak44la-x').digest).toString('hex'),
    ).toBe('8a12321522fd91efbd60ebb2481af88580f61600');
  });
});

describe('ordering', () => {
  it('matches the nix-compat ordered list', () => {
    const ordered = fixture.storePathOrdering.ordered;
    const parsed = ordered.map(parseStorePathBaseName);
    const shuffled = [...parsed].reverse().sort(compareStorePaths);
    expect(shuffled.map(storePathBaseName)).toEqual(ordered);
  });

  it('equals bytewise order of base names', () => {
    const arb: fc.Arbitrary<StorePath> = fc.record({
      digest: fc.uint8Array({ minLength: 20, maxLength: 20 }),
      name: fc.constantFrom('a', 'b', 'foo', 'foo-1', 'Foo', 'source'),
    });
    fc.assert(
      fc.property(arb, arb, (a, b) => {
        const x = storePathBaseName(a);
        const y = storePathBaseName(b);
        expect(compareStorePaths(a, b)).toBe(x < y ? -1 : x > y ? 1 : 0);
      }),
    );
  });

  it('orders equal hashes by name', () => {
    const d = new Uint8Array(20);
    expect(compareStorePaths({ digest: d, name: 'B' }, { digest: d, name: 'a' })).toBe(-1);
    expect(compareStorePaths({ digest: d, name: 'a' }, { digest: d, name: 'a' })).toBe(0);
  });
});

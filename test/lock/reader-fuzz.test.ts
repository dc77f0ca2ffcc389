/**
 * Fuzzing the lockfile and manifest readers with 10,000 inputs each:
 * mutated valid files and arbitrary JSON / TOML-ish text. They must accept
 * or throw FetchCacheError (ERR_BAD_LOCKFILE / ERR_BAD_MANIFEST), nothing else.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseLockfile } from '../../src/lock/lockfile.js';
import { parseManifest } from '../../src/lock/manifest.js';
import { expectOnlyFetchCacheError, mutated } from '../helpers/mutate.js';

const NAR = 'sha256-TLfMouzKJuggojde0tsn4vKN4DhDydTaYxeKyGUKmTc=';
const manifestDigest = 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';
const LOCK = `${JSON.stringify(
  {
    pins: {
      alpha: {
        type: 'url',
        url: 'https://e.org/a.txt',
        hash: NAR,
        storePath: '/nix/store/1wyiqrdfs69zff8wxg5ncv63njmi2yq8-a.txt',
        manifestDigest,
      },
      zeta: {
        type: 'tarball',
        url: 'https://e.org/z.tar.gz',
        narHash: NAR,
        storePath: '/nix/store/1wyiqrdfs69zff8wxg5ncv63njmi2yq8-source',
        lastModified: 5,
        manifestDigest,
      },
      g: {
        type: 'git',
        url: 'https://e.org/g.git',
        rev: 'a'.repeat(40),
        narHash: NAR,
        storePath: '/nix/store/1wyiqrdfs69zff8wxg5ncv63njmi2yq8-source',
        revCount: 3,
        manifestDigest,
      },
    },
    version: 1,
  },
  null,
  2,
)}\n`;

const MANIFEST = `[pins.file]
type = "url"
url = "https://example.org/a.txt"
hash = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="

[pins.src]
type = "tarball"
url = "https://example.org/src.tar.gz"

[pins.lib]
type = "git"
url = "https://example.org/lib.git"
tag = "^1.2"

[pins.nixpkgs]
type = "github"
owner = "NixOS"
repo = "nixpkgs"
ref = "nixos-unstable"
`;

const text = (s: string) =>
  mutated(fc.constant(new Uint8Array(Buffer.from(s)))).map((b) => Buffer.from(b).toString('utf8'));

function onlyFetchCacheErrors(
  parse: (t: string) => unknown,
  input: fc.Arbitrary<string>,
  seed: number,
): number {
  let accepted = 0;
  fc.assert(
    fc.property(input, (t) => {
      try {
        parse(t);
        accepted++;
      } catch (e) {
        expectOnlyFetchCacheError(e);
      }
    }),
    { numRuns: 10_000, seed },
  );
  return accepted;
}

describe('lockfile and manifest reader fuzzing', () => {
  it('the lockfile reader throws only FetchCacheError on 10,000 inputs', () => {
    const input = fc.oneof(
      { weight: 4, arbitrary: text(LOCK) },
      { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify({ version: 1, pins: { x: v } })) },
      { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    );
    expect(onlyFetchCacheErrors((t) => parseLockfile(t, 'pins.lock'), input, 0x10c)).toBeGreaterThan(0);
  });

  it('the manifest reader throws only FetchCacheError on 10,000 inputs', () => {
    const input = fc.oneof(
      { weight: 4, arbitrary: text(MANIFEST) },
      { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    );
    expect(onlyFetchCacheErrors((t) => parseManifest(t, 'pins.toml'), input, 0x3a1)).toBeGreaterThan(0);
  });
});

/**
 * pins.toml parsing: every pin type and field, the defaults, the manifest
 * digest's stability, and a coded one-line ERR_BAD_MANIFEST for each kind of
 * bad manifest (invalid TOML, duplicate pin tables, unknown type or field,
 * missing field, bad hash, conflicting selectors, a bad semver range).
 */

import { describe, expect, it } from 'vitest';
import { effectivePin, type Pin, parseManifest, pinDigest } from '../../src/lock/manifest.js';
import { planSync } from '../../src/lock/sync.js';

const GOOD = `
[github]
base = "http://127.0.0.1:1/"

[pins.file]
type = "url"
url = "https://example.org/a.txt"
mirrors = ["https://mirror.example.org/a.txt"]
hash = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="

[pins.tool]
type = "url"
url = "https://example.org/tool"
executable = true

[pins.src]
type = "tarball"
url = "https://example.org/src.tar.gz"
name = "my-src"
hash = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"

[pins.lib]
type = "git"
url = "https://example.org/lib.git"
tag = "^1.2"
prefix = "v"
prereleases = true
submodules = true

[pins.nixpkgs]
type = "github"
owner = "NixOS"
repo = "nixpkgs"
ref = "nixos-unstable"
`;

function err(text: string): { code: string; message: string } {
  try {
    parseManifest(text, 'pins.toml');
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('no error');
}

describe('parseManifest', () => {
  it('reads every pin type and normalises hashes to SRI', () => {
    const m = parseManifest(GOOD);
    expect([...m.pins.keys()]).toEqual(['file', 'lib', 'nixpkgs', 'src', 'tool']);
    expect(m.pins.get('file')).toMatchObject({ type: 'url', mirrors: ['https://mirror.example.org/a.txt'] });
    expect(m.pins.get('src')).toMatchObject({
      name: 'my-src',
      hash: expect.stringMatching(/^sha256-[A-Za-z0-9+/]{43}=$/),
    });
    expect(m.pins.get('lib')).toMatchObject({
      tag: '^1.2',
      prefix: 'v',
      prereleases: true,
      submodules: true,
    });
    const gh = effectivePin(m.pins.get('nixpkgs')!);
    expect(gh).toMatchObject({ base: 'http://127.0.0.1:1', gitBase: 'https://github.com' });
    expect(effectivePin(m.pins.get('nixpkgs')!, { base: 'http://x' })).toMatchObject({ base: 'http://x' });
  });

  it('accepts an empty manifest', () => {
    expect(parseManifest('').pins.size).toBe(0);
  });

  it('digests an entry independent of key order and changes with any field', () => {
    const a = parseManifest('[pins.x]\ntype = "tarball"\nurl = "https://e.org/a.tgz"\n').pins.get('x')!;
    const b = parseManifest('[pins.x]\nurl = "https://e.org/a.tgz"\ntype = "tarball"\n').pins.get('x')!;
    const c = parseManifest('[pins.x]\ntype = "tarball"\nurl = "https://e.org/b.tgz"\n').pins.get('x')!;
    const renamed = parseManifest('[pins.y]\ntype = "tarball"\nurl = "https://e.org/a.tgz"\n').pins.get('y')!;
    expect(pinDigest(a)).toBe(pinDigest(b));
    expect(pinDigest(a)).not.toBe(pinDigest(c));
    expect(pinDigest(a)).toBe(pinDigest(renamed));
    expect(pinDigest(a)).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
  });

  it('names each pin unambiguously in pinName (the deprecated `pin` still set), outside its digest', () => {
    const m = parseManifest(
      '[pins.src]\ntype = "tarball"\nurl = "https://example.org/src.tar.gz"\nname = "my-src"\n' +
        '[pins.lib]\ntype = "git"\nurl = "https://example.org/lib.git"\nref = "main"\n',
    );
    const src = m.pins.get('src')!;
    expect(src.pinName).toBe('src');
    expect(src.name).toBe('my-src');
    expect(src.pin).toBe('src');
    // Digests recorded before pinName existed: lockfiles written then stay current.
    expect(pinDigest(src)).toBe(pinDigest({ ...src, name: 'my-src', pinName: 'other', pin: 'other' }));
    expect(pinDigest(m.pins.get('lib')!)).toBe('sha256-Rbu0yzxcTdvzXviINh9eEF3dgB6g7pjOc393GwKpxIU=');
  });

  it('a pin built by a caller written before pinName (only `pin`) is still planned under its name', () => {
    const old = { pin: 'x', type: 'tarball', url: 'https://example.org/x.tgz' } as unknown as Pin;
    const plan = planSync({ pins: new Map([['x', old]]) }, undefined);
    expect(plan.todo.map((p) => p.pinName)).toEqual(['x']);
  });

  const cases: [string, string, RegExp][] = [
    ['invalid TOML', '[pins.x\ntype = "url"', /pins\.toml: Invalid TOML document.* at line 1/],
    [
      'duplicate pin names',
      '[pins.a]\ntype = "url"\nurl = "https://e.org/a"\n[pins.a]\ntype = "url"\nurl = "https://e.org/b"\n',
      /redefine.* at line 4/,
    ],
    ['unknown type', '[pins.a]\ntype = "svn"\nurl = "https://e.org/a"\n', /pins\.a\.type is unknown: 'svn'/],
    ['missing type', '[pins.a]\nurl = "https://e.org/a"\n', /pins\.a: missing field 'type'/],
    ['missing url', '[pins.a]\ntype = "tarball"\n', /pins\.a: missing field 'url'/],
    ['missing owner', '[pins.a]\ntype = "github"\nrepo = "r"\n', /pins\.a: missing field 'owner'/],
    [
      'unknown field',
      '[pins.a]\ntype = "tarball"\nurl = "https://e.org/a"\nbranch = "x"\n',
      /pins\.a\.branch is not a field of tarball pins/,
    ],
    [
      'bad hash',
      '[pins.a]\ntype = "tarball"\nurl = "https://e.org/a"\nhash = "sha256-nope"\n',
      /pins\.a\.hash is not a valid hash/,
    ],
    [
      'md5 NAR hash',
      '[pins.a]\ntype = "tarball"\nurl = "https://e.org/a"\nhash = "md5-1B2M2Y8AsgTpgAmY7PhCfg=="\n',
      /must use SHA-256/,
    ],
    [
      'ref and rev',
      '[pins.a]\ntype = "git"\nurl = "https://e.org/a.git"\nref = "main"\nrev = "0000000000000000000000000000000000000000"\n',
      /give at most one of ref, rev and tag/,
    ],
    ['short rev', '[pins.a]\ntype = "git"\nurl = "https://e.org/a.git"\nrev = "abc123"\n', /40-digit/],
    [
      'bad range',
      '[pins.a]\ntype = "git"\nurl = "https://e.org/a.git"\ntag = "one point two"\n',
      /not a semver range/,
    ],
    [
      'prefix without tag',
      '[pins.a]\ntype = "git"\nurl = "https://e.org/a.git"\nprefix = "v"\n',
      /only applies to tag pins/,
    ],
    [
      'wrong field type',
      '[pins.a]\ntype = "url"\nurl = "https://e.org/a"\nexecutable = "yes"\n',
      /must be true or false/,
    ],
    ['bad scheme', '[pins.a]\ntype = "url"\nurl = "ftp://e.org/a"\n', /unsupported scheme/],
    [
      'bad store name',
      '[pins.a]\ntype = "url"\nurl = "https://e.org/a"\nname = "a b"\n',
      /not a valid store path name/,
    ],
    ['unknown top-level key', '[settings]\nx = 1\n', /unknown top-level key 'settings'/],
    ['pins not tables', 'pins = 3\n', /pins must be a table/],
  ];
  for (const [what, text, message] of cases) {
    it(`${what}: ERR_BAD_MANIFEST, one line`, () => {
      const e = err(text);
      expect(e.code).toBe('ERR_BAD_MANIFEST');
      expect(e.message).toMatch(message);
      expect(e.message.includes('\n')).toBe(false);
    });
  }
});

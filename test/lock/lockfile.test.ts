/**
 * pins.lock: canonical bytes (sorted keys, 2-space indent, trailing newline),
 * round trips, the atomic write (no temp file left, unchanged bytes not
 * rewritten), and a coded one-line ERR_BAD_LOCKFILE for invalid JSON, an
 * unknown version, unknown or missing fields, a hash of the wrong kind and
 * malformed hashes or store paths.
 */

import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  emptyLockfile,
  formatLockfile,
  type Lockfile,
  parseLockfile,
  readLockfile,
  writeLockfile,
} from '../../src/lock/lockfile.js';

const NAR = 'sha256-TLfMouzKJuggojde0tsn4vKN4DhDydTaYxeKyGUKmTc=';
const DIGEST = 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';

const LOCK: Lockfile = {
  version: 1,
  pins: {
    zeta: {
      type: 'tarball',
      url: 'https://e.org/z.tar.gz',
      narHash: NAR,
      storePath: '/nix/store/1wyiqrdfs69zff8wxg5ncv63njmi2yq8-source',
      manifestDigest: DIGEST,
      lastModified: 5,
    },
    alpha: {
      type: 'url',
      url: 'https://e.org/a.txt',
      hash: NAR,
      storePath: '/nix/store/1wyiqrdfs69zff8wxg5ncv63njmi2yq8-a.txt',
      manifestDigest: DIGEST,
    },
  },
};

function err(text: string): { code: string; message: string } {
  try {
    parseLockfile(text, 'pins.lock');
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('no error');
}

describe('lockfile format', () => {
  it('is canonical: sorted keys at every level, 2-space indent, trailing newline', () => {
    const text = formatLockfile(LOCK);
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('"alpha"')).toBeLessThan(text.indexOf('"zeta"'));
    expect(text.indexOf('"pins"')).toBeLessThan(text.indexOf('"version"'));
    const zeta = text.slice(text.indexOf('"zeta"'));
    const keys = [...zeta.matchAll(/^ {6}"(\w+)"/gm)].map((m) => m[1]);
    expect(keys).toEqual(['lastModified', 'manifestDigest', 'narHash', 'storePath', 'type', 'url']);
    expect(formatLockfile(parseLockfile(text))).toBe(text);
    expect(formatLockfile(emptyLockfile())).toBe('{\n  "pins": {},\n  "version": 1\n}\n');
  });

  it('writes atomically and leaves no temp file; identical bytes are not rewritten', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-lockfile-'));
    const file = join(dir, 'pins.lock');
    expect(await readLockfile(file)).toEqual(emptyLockfile());
    expect(await writeLockfile(file, LOCK)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe(formatLockfile(LOCK));
    const mtime = statSync(file).mtimeMs;
    expect(await writeLockfile(file, LOCK)).toBe(false);
    expect(statSync(file).mtimeMs).toBe(mtime);
    expect(readdirSync(dir)).toEqual(['pins.lock']);
    expect(await readLockfile(file)).toEqual(LOCK);
  });

  const pin = (extra: Record<string, unknown>, drop: string[] = []) => {
    const p: Record<string, unknown> = { ...LOCK.pins.zeta, ...extra };
    for (const k of drop) delete p[k];
    return JSON.stringify({ version: 1, pins: { p } });
  };
  const cases: [string, string, RegExp][] = [
    ['invalid JSON', '{"version": 1, "pins": {', /pins\.lock: invalid JSON/],
    [
      'wrong version',
      '{"version": 2, "pins": {}}',
      /unsupported lockfile version 2 \(this fetch-cache reads version 1\)/,
    ],
    ['missing version', '{"pins": {}}', /unsupported lockfile version null/],
    ['unknown top-level field', '{"version": 1, "pins": {}, "extra": 1}', /unknown top-level field 'extra'/],
    ['unknown pin field', pin({ branch: 'main' }), /pins\.p\.branch is not a field of tarball pins/],
    ['unknown type', pin({ type: 'svn' }), /pins\.p\.type is unknown: "svn"/],
    ['missing storePath', pin({}, ['storePath']), /pins\.p: missing field 'storePath'/],
    ['missing narHash', pin({}, ['narHash']), /pins\.p: missing field 'narHash'/],
    [
      'flat hash on a tree',
      pin({ hash: NAR }),
      /pins\.p\.hash does not belong to this pin \(it records a NAR hash\)/,
    ],
    ['bad hash', pin({ narHash: 'sha256-AAAA' }), /pins\.p: bad hash/],
    [
      'non-SRI hash',
      pin({ narHash: 'sha256:0dwr19jwi2hpcgdd9ja373h8vwp24zdx4pipl8hfh9naxjicrdsc' }),
      /pins\.p: bad hash/,
    ],
    ['md5 narHash', pin({ narHash: 'md5-1B2M2Y8AsgTpgAmY7PhCfg==' }), /narHash must use SHA-256/],
    ['bad store path', pin({ storePath: '/nix/store/not-a-store-path' }), /pins\.p\.storePath/],
    ['wrong field type', pin({ lastModified: '5' }), /pins\.p\.lastModified must be a number/],
    [
      'short rev',
      JSON.stringify({ version: 1, pins: { g: { ...LOCK.pins.zeta, type: 'git', rev: 'abc' } } }),
      /rev must be a 40-digit/,
    ],
  ];
  for (const [what, text, message] of cases) {
    it(`${what}: ERR_BAD_LOCKFILE, one line`, () => {
      const e = err(text);
      expect(e.code).toBe('ERR_BAD_LOCKFILE');
      expect(e.message).toMatch(message);
      expect(e.message.includes('\n')).toBe(false);
    });
  }
});

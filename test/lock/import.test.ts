/**
 * Importing other tools' locks: a flake.lock whose tarball, file, git and
 * github inputs point at loopback servers verifies (expected hashes are Nix's,
 * from fixtures/nix-goldens/lock.json or `nix hash path`), a wrong narHash is
 * reported as `differs` with both hashes; an npins sources.json verifies;
 * go-nix's real flake.lock (fixtures/flake-lock.json) parses (its github inputs, offline,
 * are errors, the root is not an input); malformed files are ERR_BAD_LOCKFILE.
 */

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cache, openCache } from '../../src/cache.js';
import { importLock } from '../../src/lock/import.js';
import { git } from '../helpers/git-repos.js';
import { type PinWorld, startPinWorld } from './world.js';

const golden = (
  JSON.parse(readFileSync(new URL('../../fixtures/nix-goldens/lock.json', import.meta.url), 'utf8')) as {
    cases: Record<string, { narHash?: string; rev?: string }>;
  }
).cases;
const vectors = JSON.parse(
  readFileSync(new URL('../../fixtures/flake-lock.json', import.meta.url), 'utf8'),
) as {
  flakeLock: { json: string; source: string }[];
};
/** `nix hash path` of a file holding "hello, pins\n" (Nix 2.8.0). */
const HELLO_NAR = 'sha256-iqV2pVtnaDg8qK8Glq16dXX3/0VZkL2GRzLRnPeQoBo=';

let w: PinWorld;
let cache: Cache;
let v110: string;

beforeAll(async () => {
  w = await startPinWorld();
  cache = await openCache({ memory: true });
  v110 = git(w.widget, ['rev-parse', 'v1.1.0^{commit}']);
});
afterAll(async () => {
  await cache?.close();
  await w?.close();
});

function flakeLock(version: number, pkgNarHash = golden.pkg!.narHash!): string {
  const node = (locked: object) => ({ locked, original: locked });
  return JSON.stringify({
    nodes: {
      root: { inputs: { pkg: 'pkg', hello: 'hello', widget: 'widget', gh: 'gh', reg: 'reg' } },
      pkg: {
        ...node({ type: 'tarball', url: w.http.url('/pkg.tar.gz'), narHash: pkgNarHash }),
        flake: false,
      },
      hello: { ...node({ type: 'file', url: w.http.url('/hello.txt'), narHash: HELLO_NAR }), flake: false },
      widget: node({
        type: 'git',
        url: `${w.git.baseUrl}/acme/widget.git`,
        ref: 'refs/tags/v1.1.0',
        rev: v110,
        narHash: golden['widget-tag']!.narHash,
        revCount: 3,
        lastModified: 1,
      }),
      gh: node({
        type: 'github',
        owner: 'acme',
        repo: 'widget',
        rev: golden['widget-rel']!.rev ?? git(w.widget, ['rev-parse', 'v2.0.0']),
        narHash: golden['widget-rel']!.narHash,
      }),
      reg: { locked: { type: 'indirect', id: 'nixpkgs' }, original: { type: 'indirect', id: 'nixpkgs' } },
    },
    root: 'root',
    version,
  });
}

describe('importLock: flake.lock', () => {
  for (const version of [5, 6, 7]) {
    it(`v${version}: tarball, file, git and github inputs on loopback verify against Nix's hashes`, async () => {
      const r = await importLock(flakeLock(version), { cache, githubBase: w.http.base });
      expect(r).toMatchObject({ format: 'flake.lock', version, ok: true });
      expect(r.inputs.map((i) => [i.name, i.type, i.status])).toEqual([
        ['gh', 'github', 'ok'],
        ['hello', 'file', 'ok'],
        ['pkg', 'tarball', 'ok'],
        ['reg', 'indirect', 'skipped'],
        ['widget', 'git', 'ok'],
      ]);
    });
  }

  it('a wrong narHash is reported with both hashes', async () => {
    const wrong = golden.data!.narHash!;
    const r = await importLock(flakeLock(7, wrong), { cache, githubBase: w.http.base });
    expect(r.ok).toBe(false);
    expect(r.inputs.find((i) => i.name === 'pkg')).toMatchObject({
      status: 'differs',
      expected: wrong,
      actual: golden.pkg!.narHash,
    });
    expect(r.inputs.filter((i) => i.status === 'differs')).toHaveLength(1);
  });

  it('reads the real go-nix flake.lock of fixtures/flake-lock.json (offline: github inputs cannot be fetched)', async () => {
    const text = vectors.flakeLock[0]!.json;
    const r = await importLock(text, { cache, offline: true });
    expect(r.version).toBe(7);
    expect(r.inputs.map((i) => i.name)).toEqual([
      'blueprint',
      'flake-compat',
      'flake-utils',
      'gomod2nix',
      'nixpkgs',
      'systems',
      'systems_2',
      'treefmt-nix',
    ]);
    const systems = r.inputs.find((i) => i.name === 'systems')!;
    expect(systems).toMatchObject({
      type: 'github',
      status: 'error',
      url: 'https://github.com/nix-systems/default/archive/da67096a3b9bf56a91d16901293e51ba5b49a27e.tar.gz',
      expected: 'sha256-Vy1rq5AaRuLzOxct8nz4T6wlgyUR7zLU309k9mBC768=',
    });
    expect(systems.reason).toMatch(/^ERR_OFFLINE: /);
  });

  it('refuses malformed files with ERR_BAD_LOCKFILE', async () => {
    const cases: [string, RegExp][] = [
      ['{', /invalid JSON/],
      ['{"nodes": {}, "root": "root", "version": 4}', /unsupported flake\.lock version 4/],
      ['{"version": 7}', /neither a flake\.lock/],
      [
        '{"nodes": {"a": {"locked": {"type": "tarball", "url": "http://x/a.tgz", "narHash": "sha256-bad"}}}, "root": "root", "version": 7}',
        /nodes\.a\.locked: bad hash/,
      ],
      [
        '{"nodes": {"a": {"locked": {"type": "git", "url": "http://x/a.git"}}}, "root": "root", "version": 7}',
        /needs url and rev/,
      ],
    ];
    for (const [text, message] of cases) {
      const e = await importLock(text, { cache, file: 'flake.lock' }).catch((x) => x);
      expect(e.code).toBe('ERR_BAD_LOCKFILE');
      expect(e.message).toMatch(message);
    }
  });
});

describe('importLock: npins sources.json', () => {
  it('verifies tarball, GitHub and plain git pins; skips what it does not fetch', async () => {
    const ghRev = git(w.widget, ['rev-parse', 'v2.0.0']);
    const text = JSON.stringify({
      pins: {
        pkg: { type: 'Tarball', url: w.http.url('/pkg.tar.gz'), hash: golden.pkg!.narHash },
        widget: {
          type: 'GitRelease',
          repository: { type: 'GitHub', owner: 'acme', repo: 'widget' },
          version: 'v2.0.0',
          revision: ghRev,
          url: `https://github.com/acme/widget/archive/${ghRev}.tar.gz`,
          hash: golden['widget-rel']!.narHash,
        },
        'widget-git': {
          type: 'Git',
          repository: { type: 'Git', url: `file://${w.widget}` },
          branch: 'main',
          revision: v110,
          submodules: false,
          hash: golden['widget-tag']!.narHash,
        },
        image: { type: 'Container', image_name: 'x', image_tag: 'y' },
      },
      version: 5,
    });
    const r = await importLock(text, { cache, githubBase: w.http.base });
    expect(r.format).toBe('npins');
    expect(r.inputs.map((i) => [i.name, i.status])).toEqual([
      ['image', 'skipped'],
      ['pkg', 'ok'],
      ['widget', 'ok'],
      ['widget-git', 'ok'],
    ]);
    expect(r.inputs.find((i) => i.name === 'widget')!.url).toBe(
      `${w.http.base}/acme/widget/archive/${ghRev}.tar.gz`,
    );
  });
});

/**
 * `fetch-cache lock --import FILE` as a user runs it (the built CLI, upstreams on loopback): a flake.lock
 * of the real shape (go-nix's lock from fixtures/flake-lock.json: follows, `systems_2`, sorted keys),
 * its github inputs pointed at the loopback archive host, plus tarball, file and git inputs, and an npins
 * sources.json (Git, GitRelease on GitHub, Tarball) become pins.toml and pins.lock entries in an empty
 * project; `lock --check` then passes, `lock` keeps every entry, and `update` moves a pin that follows a
 * branch. Expected hashes are Nix 2.8's (fixtures/nix-goldens/lock.json). A name the manifest already has
 * is refused, and an input that does not verify leaves both files as they were.
 */

import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/lock/manifest.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { git } from '../helpers/git-repos.js';
import { type PinWorld, startPinWorld } from '../lock/world.js';

const golden = (
  JSON.parse(readFileSync(new URL('../../fixtures/nix-goldens/lock.json', import.meta.url), 'utf8')) as {
    cases: Record<string, { narHash?: string; rev?: string }>;
  }
).cases;
const realLock = (
  JSON.parse(readFileSync(new URL('../../fixtures/flake-lock.json', import.meta.url), 'utf8')) as {
    flakeLock: { json: string }[];
  }
).flakeLock[0]!.json;
/** `nix hash path` of a file holding "hello, pins\n" (Nix 2.8.0). */
const HELLO_NAR = 'sha256-iqV2pVtnaDg8qK8Glq16dXX3/0VZkL2GRzLRnPeQoBo=';

let w: PinWorld;
let root: string;
let v200: string;
let v110: string;

beforeAll(async () => {
  w = await startPinWorld();
  root = join(w.tmp, 'cache');
  v200 = git(w.widget, ['rev-parse', 'v2.0.0']);
  v110 = git(w.widget, ['rev-parse', 'v1.1.0^{commit}']);
});
afterAll(async () => {
  await w?.close();
});

type Node = { locked?: Record<string, unknown>; original?: Record<string, unknown>; [k: string]: unknown };

/** go-nix's real flake.lock, every github input moved to acme/widget at v2.0.0, plus three more inputs. */
function flakeLock(): string {
  const doc = JSON.parse(realLock) as { nodes: Record<string, Node>; root: string };
  for (const [name, node] of Object.entries(doc.nodes)) {
    if (node.locked?.type !== 'github') continue;
    node.locked = {
      ...node.locked,
      owner: 'acme',
      repo: 'widget',
      rev: v200,
      narHash: golden['widget-rel']!.narHash,
    };
    node.original = {
      type: 'github',
      owner: 'acme',
      repo: 'widget',
      ...(name === 'nixpkgs' ? { ref: 'main' } : {}),
    };
  }
  const inputs = doc.nodes[doc.root]!.inputs as Record<string, unknown>;
  const add = (name: string, locked: Record<string, unknown>, original: Record<string, unknown>) => {
    doc.nodes[name] = { flake: false, locked, original };
    inputs[name] = name;
  };
  add(
    'pkg',
    { type: 'tarball', url: w.http.url('/pkg.tar.gz'), narHash: golden.pkg!.narHash },
    {
      type: 'tarball',
      url: w.http.url('/pkg.tar.gz'),
    },
  );
  add(
    'hello',
    { type: 'file', url: w.http.url('/hello.txt'), narHash: HELLO_NAR },
    {
      type: 'file',
      url: w.http.url('/hello.txt'),
    },
  );
  const widgetGit = `${w.git.baseUrl}/acme/widget.git`;
  add(
    'widget-git',
    {
      type: 'git',
      url: widgetGit,
      ref: 'refs/tags/v1.1.0',
      rev: v110,
      narHash: golden['widget-tag']!.narHash,
      revCount: 3,
      lastModified: 1,
    },
    { type: 'git', url: widgetGit, ref: 'refs/tags/v1.1.0' },
  );
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function sourcesJson(): string {
  return `${JSON.stringify(
    {
      pins: {
        pkg: { type: 'Tarball', url: w.http.url('/pkg.tar.gz'), hash: golden.pkg!.narHash },
        release: {
          type: 'GitRelease',
          repository: { type: 'GitHub', owner: 'acme', repo: 'widget' },
          pre_releases: false,
          version_upper_bound: null,
          version: 'v2.0.0',
          revision: v200,
          url: `https://github.com/acme/widget/archive/${v200}.tar.gz`,
          hash: golden['widget-rel']!.narHash,
        },
        'widget-git': {
          type: 'Git',
          repository: { type: 'Git', url: `${w.git.baseUrl}/acme/widget.git` },
          branch: 'main',
          revision: v110,
          url: null,
          hash: golden['widget-tag']!.narHash,
        },
      },
      version: 5,
    },
    null,
    2,
  )}\n`;
}

const hostFlags = () => ['--github-base', w.http.base, '--github-git-base', w.git.baseUrl];

describe.runIf(cliBuilt())('fetch-cache lock --import', () => {
  it('a flake.lock: pins.toml and pins.lock that lock --check passes and lock keeps', async () => {
    const dir = mkdtempSync(join(w.tmp, 'flake-project-'));
    writeFileSync(join(dir, 'flake.lock'), flakeLock());
    const cli = (...args: string[]) => runCli(['--root', root, ...args], { cwd: dir });
    const r = await cli('lock', '--import', 'flake.lock', ...hostFlags());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const names = [
      'blueprint',
      'flake-compat',
      'flake-utils',
      'gomod2nix',
      'hello',
      'nixpkgs',
      'pkg',
      'systems',
      'systems_2',
      'treefmt-nix',
      'widget-git',
    ];
    expect(r.stdout.trimEnd().split('\n')).toEqual([
      ...names.map(
        (n) =>
          `imported ${n} (${n === 'pkg' ? 'tarball' : n === 'hello' ? 'file' : n === 'widget-git' ? 'git' : 'github'})`,
      ),
      'pins.toml, pins.lock: imported 11, skipped 0',
    ]);
    const manifest = parseManifest(readFileSync(join(dir, 'pins.toml'), 'utf8'));
    expect(manifest.pins.get('nixpkgs')).toMatchObject({
      type: 'github',
      owner: 'acme',
      repo: 'widget',
      ref: 'main',
    });
    expect(manifest.pins.get('systems')).toMatchObject({ type: 'github', owner: 'acme', repo: 'widget' });
    expect(manifest.pins.get('widget-git')).toMatchObject({
      type: 'git',
      ref: 'refs/tags/v1.1.0',
      exportIgnore: false,
    });
    expect(manifest.pins.get('hello')).toMatchObject({ type: 'url', url: w.http.url('/hello.txt') });
    const lock = JSON.parse(readFileSync(join(dir, 'pins.lock'), 'utf8')) as {
      pins: Record<string, Record<string, unknown>>;
    };
    expect(lock.pins.nixpkgs).toMatchObject({ rev: v200, narHash: golden['widget-rel']!.narHash });
    expect(lock.pins['widget-git']).toMatchObject({
      rev: v110,
      narHash: golden['widget-tag']!.narHash,
      exportIgnore: false,
    });
    expect(lock.pins.pkg).toMatchObject({ narHash: golden.pkg!.narHash });

    const check = await cli('lock', '--check');
    expect(check).toMatchObject({ code: 0, stdout: 'checked 11 pins: all ok\n' });
    const again = await cli('lock');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('pins.lock: added 0, updated 0, unchanged 11, removed 0\n');

    // nixpkgs follows `main` (the flake's original ref): update moves it to main's head.
    const moved = await cli('update', 'nixpkgs');
    expect(moved.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'pins.lock'), 'utf8')).pins.nixpkgs.rev).toBe(
      git(w.widget, ['rev-parse', 'main']),
    );

    const twice = await cli('lock', '--import', 'flake.lock', ...hostFlags());
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/^ERR_BAD_MANIFEST: pins\.toml already has a pin named 'blueprint'/);
  });

  it('an npins sources.json: Git, GitRelease and Tarball pins', async () => {
    const dir = mkdtempSync(join(w.tmp, 'npins-project-'));
    writeFileSync(join(dir, 'sources.json'), sourcesJson());
    writeFileSync(join(dir, 'pins.toml'), '# my pins\n');
    const cli = (...args: string[]) => runCli(['--root', root, ...args], { cwd: dir });
    const r = await cli('lock', '--import', 'sources.json', ...hostFlags());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      'imported pkg (Tarball)\nimported release (GitRelease)\nimported widget-git (Git)\npins.toml, pins.lock: imported 3, skipped 0\n',
    );
    const text = readFileSync(join(dir, 'pins.toml'), 'utf8');
    expect(text.startsWith('# my pins\n')).toBe(true);
    const manifest = parseManifest(text);
    expect(manifest.pins.get('release')).toMatchObject({ type: 'github', tag: '*', prefix: 'v' });
    expect(manifest.pins.get('widget-git')).toMatchObject({ type: 'git', ref: 'main', exportIgnore: false });
    const lock = JSON.parse(readFileSync(join(dir, 'pins.lock'), 'utf8')) as {
      pins: Record<string, Record<string, unknown>>;
    };
    expect(lock.pins.release).toMatchObject({ rev: v200, ref: 'refs/tags/v2.0.0' });
    expect(lock.pins['widget-git']).toMatchObject({ rev: v110 });
    const check = await cli('lock', '--check');
    expect(check).toMatchObject({ code: 0, stdout: 'checked 3 pins: all ok\n' });
    expect((await cli('lock')).stdout).toBe('pins.lock: added 0, updated 0, unchanged 3, removed 0\n');
  });

  it('an input that does not verify: exit 1 naming it, nothing written', async () => {
    const dir = mkdtempSync(join(w.tmp, 'bad-project-'));
    const doc = JSON.parse(sourcesJson());
    doc.pins.pkg.hash = golden.data!.narHash;
    writeFileSync(join(dir, 'sources.json'), JSON.stringify(doc));
    const r = await runCli(['--root', root, 'lock', '--import', 'sources.json', ...hostFlags()], {
      cwd: dir,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ERR_HASH_MISMATCH: sources.json: pkg did not verify; nothing was written\n');
    expect(existsSync(join(dir, 'pins.toml'))).toBe(false);
    expect(existsSync(join(dir, 'pins.lock'))).toBe(false);
  });
});

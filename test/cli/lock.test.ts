/**
 * `fetch-cache lock` / `update` / `lock --check` / `lock --from` as a user
 * runs them (the built CLI in a child process, pins.toml in the working
 * directory, upstreams on loopback): summaries, --json, the lockfile written
 * only when every pin resolved, a tampered hash caught with exit 1, coded
 * one-line errors, and an offline re-run with every server stopped writing
 * the same bytes.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { BASE_TIME, git } from '../helpers/git-repos.js';
import { type PinWorld, startPinWorld, worldManifest } from '../lock/world.js';

const golden = (
  JSON.parse(readFileSync(new URL('../../fixtures/nix-goldens/lock.json', import.meta.url), 'utf8')) as {
    cases: Record<string, { narHash?: string }>;
  }
).cases;

let w: PinWorld;
let dir: string;
let root: string;

const cli = (...args: string[]) => runCli(['--root', root, ...args], { cwd: dir });
const lockText = () => readFileSync(join(dir, 'pins.lock'), 'utf8');

beforeAll(async () => {
  w = await startPinWorld();
  dir = mkdtempSync(join(w.tmp, 'project-'));
  root = join(w.tmp, 'cache');
  writeFileSync(join(dir, 'pins.toml'), worldManifest(w));
});
afterAll(async () => {
  await w?.close();
});

describe.runIf(cliBuilt())('fetch-cache lock', () => {
  it('locks every pin, then keeps them; --json prints the lockfile', async () => {
    const r = await cli('lock');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^added data\n/);
    expect(r.stdout).toMatch(/pins\.lock: added 8, updated 0, unchanged 0, removed 0\n$/);
    const text = lockText();
    expect(JSON.parse(text).pins.pkg.narHash).toBe(golden.pkg!.narHash);
    const again = await cli('lock', '--json');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(text);
  });

  it('lock --check passes, then catches a tampered hash with exit 1', async () => {
    const ok = await cli('lock', '--check');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('checked 8 pins: all ok\n');
    const good = lockText();
    const lock = JSON.parse(good);
    lock.pins.pkg.narHash = golden.data!.narHash;
    writeFileSync(join(dir, 'pins.lock'), `${JSON.stringify(lock, null, 2)}\n`);
    const bad = await cli('lock', '--check');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^differs pkg: storePath does not match narHash/m);
    expect(bad.stderr).toBe('ERR_HASH_MISMATCH: lockfile check failed: pkg differ\n');
    const json = await cli('lock', '--check', '--json');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ checked: 8, ok: false });
    writeFileSync(join(dir, 'pins.lock'), good);
  });

  it('lock refuses an entry whose hash contradicts its storePath (no fetch, lockfile untouched); update fixes it', async () => {
    const good = lockText();
    const lock = JSON.parse(good);
    lock.pins.pkg.narHash = golden.data!.narHash;
    const tampered = `${JSON.stringify(lock, null, 2)}\n`;
    writeFileSync(join(dir, 'pins.lock'), tampered);
    const requests = w.http.requests();
    const r = await cli('lock');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^ERR_BAD_LOCKFILE: pins\.pkg: narHash sha256-\S+ makes \/nix\/store\/\S+-source, not the recorded storePath \/nix\/store\/\S+-source; fix the entry or re-resolve it with `fetch-cache update pkg`\n$/,
    );
    expect(w.http.requests()).toBe(requests);
    expect(lockText()).toBe(tampered);
    const fixed = await cli('update', 'pkg');
    expect(fixed.code).toBe(0);
    expect(JSON.parse(lockText()).pins.pkg.narHash).toBe(golden.pkg!.narHash);
    writeFileSync(join(dir, 'pins.lock'), good);
  });

  it('update re-resolves a new tag; unknown names are ERR_NOT_FOUND', async () => {
    const rev = w.commit(w.widget, 'widget.txt', 'widget 1.4.0\n', BASE_TIME + 50_000);
    w.tag(w.widget, 'v1.4.0');
    w.publishArchives();
    const plain = await cli('lock');
    expect(plain.stdout).toMatch(/added 0, updated 0, unchanged 8, removed 0/);
    const r = await cli('update', 'widget-tag');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^updated widget-tag\n.*updated 1, unchanged 7/s);
    expect(JSON.parse(lockText()).pins['widget-tag']).toMatchObject({ ref: 'refs/tags/v1.4.0', rev });
    const none = await cli('update', 'nope');
    expect(none.code).toBe(1);
    expect(none.stderr).toBe("ERR_NOT_FOUND: no pin named 'nope' in the manifest\n");
  });

  it('a failing pin exits 1 naming it and leaves the lockfile as it was', async () => {
    const before = lockText();
    const manifest = join(dir, 'broken.toml');
    const lockFile = join(dir, 'broken.lock');
    writeFileSync(lockFile, before);
    writeFileSync(
      manifest,
      worldManifest(w, `\n[pins.broken]\ntype = "url"\nurl = "${w.http.url('/gone.txt')}"\n`),
    );
    const r = await cli('lock', '--manifest', manifest, '--lock', lockFile);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERR_HTTP: pin 'broken': .*404.*\n$/);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(readFileSync(lockFile, 'utf8')).toBe(before);
  });

  it('bad manifests and lockfiles are coded one-line errors', async () => {
    const m = join(dir, 'bad.toml');
    const l = join(dir, 'bad.lock');
    const cases: [string, string | undefined, RegExp][] = [
      ['[pins.a]\ntype = "svn"\n', undefined, /^ERR_BAD_MANIFEST: .*pins\.a\.type is unknown/],
      ['[pins.a]\ntype = "url"\n[pins.a]\ntype = "url"\n', undefined, /^ERR_BAD_MANIFEST: .*redefine/],
      ['[pins', undefined, /^ERR_BAD_MANIFEST: .*Invalid TOML/],
      ['', '{"version": 9, "pins": {}}', /^ERR_BAD_LOCKFILE: .*unsupported lockfile version 9/],
      ['', '{"version": 1, "pins": {', /^ERR_BAD_LOCKFILE: .*invalid JSON/],
    ];
    for (const [manifest, lock, message] of cases) {
      writeFileSync(m, manifest);
      rmSync(l, { force: true });
      if (lock !== undefined) writeFileSync(l, lock);
      const r = await cli('lock', '--manifest', m, '--lock', l);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().includes('\n')).toBe(false);
    }
    const missing = await cli('lock', '--manifest', join(dir, 'none.toml'));
    expect(missing.stderr).toMatch(/^ERR_NOT_FOUND: manifest '.*none\.toml' does not exist\n$/);
    expect((await cli('lock', 'extra')).code).toBe(2);
    expect((await cli('lock', '--check', '--from', 'x')).code).toBe(2);
  });

  it('lock --from verifies a flake.lock and reports a wrong narHash', async () => {
    const flake = (narHash: string) =>
      JSON.stringify({
        nodes: {
          root: { inputs: { pkg: 'pkg', main: 'main' } },
          pkg: { locked: { type: 'tarball', url: w.http.url('/pkg.tar.gz'), narHash }, original: {} },
          main: {
            locked: {
              type: 'git',
              url: `file://${w.widget}`,
              rev: git(w.widget, ['rev-parse', 'v2.0.0']),
              narHash: golden['widget-rel']!.narHash,
            },
            original: {},
          },
        },
        root: 'root',
        version: 7,
      });
    writeFileSync(join(dir, 'flake.lock'), flake(golden.pkg!.narHash!));
    const ok = await cli('lock', '--from', 'flake.lock');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('ok main (git)\nok pkg (tarball)\n');
    writeFileSync(join(dir, 'flake.lock'), flake(golden.data!.narHash!));
    const bad = await cli('lock', '--from', 'flake.lock', '--json');
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout).inputs[1]).toMatchObject({
      name: 'pkg',
      status: 'differs',
      actual: golden.pkg!.narHash,
    });
    expect(bad.stderr).toBe('ERR_HASH_MISMATCH: flake.lock: pkg did not verify\n');
  });

  it('offline with every server stopped: the same lockfile, byte for byte', async () => {
    // Bring every pin to the upstreams' current state first: offline re-resolution sees the last listing.
    const up = await cli('update');
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const before = lockText();
    await w.stop();
    rmSync(join(dir, 'pins.lock'));
    const r = await cli('--offline', 'lock');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lockText()).toBe(before);
    const u = await cli('update', '--offline');
    expect(u.code).toBe(0);
    expect(lockText()).toBe(before);
    const check = await cli('lock', '--check', '--offline');
    expect(check.code).toBe(0);
  });
});

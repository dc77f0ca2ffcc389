/**
 * No user mistake ends in exit 70 (internal error): a `--root` that is a file, lies below a file or can
 * never be made (`/proc/x`, where Node's recursive mkdir looped forever) is one ERR_IO line naming it;
 * `--store-dir /nix/store/` is `/nix/store`, as Nix canonicalises it; a relative `--store-dir` is bad
 * usage (exit 2). Real CLI processes; a run killed by the 30 s guard (a hang) fails the test.
 */

import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_MAIN, cliBuilt } from '../helpers/cli.js';

let work: string;
let file: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'fc-mistakes-'));
  file = join(work, 'a-file');
  await writeFile(file, 'not a directory\n');
});
afterAll(() => rm(work, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI_MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  expect(r.signal, `fetch-cache ${args.join(' ')} hung`).toBeNull();
  expect(r.stderr).not.toContain('internal error');
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.runIf(cliBuilt())('user mistakes are coded errors or usage errors', () => {
  it('a --root that is a file, or lies below one: ERR_IO naming it', () => {
    for (const root of [file, join(file, 'below')]) {
      const r = cli('--root', root, 'stats');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^ERR_IO: cannot use '${root}' as the cache root: .*\\n$`));
    }
  });

  it('a --root that can never be made (/proc/x) fails at once with ERR_IO', () => {
    const r = cli('--root', '/proc/fetch-cache-x', 'path-info', '--all');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERR_IO: cannot use '\/proc\/fetch-cache-x' as the cache root/);
  });

  it('--store-dir /nix/store/ is /nix/store; a relative --store-dir is bad usage', async () => {
    const root = join(work, 'root');
    const plain = cli('--root', root, 'add', file);
    const slash = cli('--root', root, '--store-dir', '/nix/store/', 'add', file);
    expect(plain.code).toBe(0);
    expect(slash.code).toBe(0);
    expect(slash.stdout).toBe(plain.stdout);
    expect(slash.stdout).toMatch(/^\/nix\/store\/[0-9a-z]{32}-a-file\n$/);
    const listed = cli('--root', root, '--store-dir', '/nix//store/.', 'path-info', plain.stdout.trim());
    expect(listed.stdout).toBe(plain.stdout);
    const relative = cli('--root', root, '--store-dir', 'nix/store', 'stats');
    expect(relative.code).toBe(2);
    expect(relative.stderr).toContain('--store-dir');
  });

  it('--cache-size without --cache-root, a bad size, and verify --remote on local bytes are bad usage', () => {
    const root = join(work, 'root-near');
    const alone = cli('--root', root, '--cache-size', '1G', 'stats');
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--cache-size needs --cache-root');
    const bad = cli('--root', root, '--cache-root', join(work, 'near'), '--cache-size', 'lots', 'stats');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--cache-size');
    const remote = cli('--root', root, 'verify', '--remote');
    expect(remote.code).toBe(2);
    expect(remote.stderr).toContain('no chunk bytes in an object store');
  });
});

/**
 * Small things a Nix user expects of the command line, run as a user runs them (the built CLI in a child
 * process, upstreams on loopback): `--version`; `fetch git --all-refs` finding a rev that is on no
 * history of the fetched ref (Nix's `allRefs`), where without it the error names the flag; and `verify`
 * printing one line per damaged path with its count of problems (every problem with `--verbose` and
 * `--json`), not one line per damaged chunk.
 */

import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { git } from '../helpers/git-repos.js';
import { type PinWorld, startPinWorld } from '../lock/world.js';

let w: PinWorld;
let root: string;
const cli = (...args: string[]) => runCli(['--root', root, ...args]);

beforeAll(async () => {
  w = await startPinWorld();
  root = join(w.tmp, 'cache');
});
afterAll(async () => {
  await w?.close();
});

describe.runIf(cliBuilt())('the command line for Nix users', () => {
  it('--version prints the package version (plain and --json)', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(await runCli(['--version'])).toEqual({ code: 0, stdout: `fetch-cache ${version}\n`, stderr: '' });
    expect(JSON.parse((await runCli(['--version', '--json'])).stdout)).toEqual({ version });
  });

  it('fetch git --all-refs finds a rev on another branch; without it the error names the flag', async () => {
    const url = `${w.git.baseUrl}/main.git`;
    const feature = git(w.repos.main, ['rev-parse', 'feature']);
    const byRef = await cli('fetch', 'git', url, '--ref', 'feature');
    expect(byRef.code).toBe(0);
    const other = join(w.tmp, 'cache-all-refs');
    const without = await runCli(['--root', other, 'fetch', 'git', url, '--rev', feature]);
    expect(without.code).toBe(1);
    expect(without.stderr).toMatch(/^ERR_GIT: cannot find Git revision .*`fetch git --all-refs`/);
    const r = await runCli(['--root', other, 'fetch', 'git', url, '--rev', feature, '--all-refs', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ path: byRef.stdout.trim(), rev: feature });
  });

  it('verify: one line per damaged path with its count of problems; --verbose and --json list them all', async () => {
    const tree = join(w.tmp, 'tree');
    await mkdir(tree);
    for (let i = 0; i < 24; i++) {
      const bytes = Buffer.alloc(6000);
      for (let j = 0; j < bytes.length; j++) bytes[j] = (i * 131 + j * 7 + (j >> 5)) & 0xff;
      await writeFile(join(tree, `file-${i}.bin`), bytes);
    }
    const verifyRoot = join(w.tmp, 'cache-verify');
    const added = await runCli(['--root', verifyRoot, 'add', tree]);
    expect(added.code).toBe(0);
    const path = added.stdout.trim();
    // A bad disk under every chunk: flip one byte in every 512 of each pack file.
    const packs = join(verifyRoot, 'packs');
    for (const f of (await readdir(packs)).filter((n) => n.endsWith('.pack'))) {
      const size = (await stat(join(packs, f))).size;
      const fh = await open(join(packs, f), 'r+');
      try {
        for (let at = 256; at < size; at += 512) {
          const b = Buffer.alloc(1);
          await fh.read(b, 0, 1, at);
          b[0] = b[0]! ^ 0xff;
          await fh.write(b, 0, 1, at);
        }
      } finally {
        await fh.close();
      }
    }
    const plain = await runCli(['--root', verifyRoot, 'verify', '--all']);
    expect(plain.code).toBe(1);
    const lines = plain.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const m = new RegExp(`^damaged: ${path}: (\\d+) problems: .+; …$`).exec(lines[0]!);
    expect(m).not.toBeNull();
    const count = Number(m![1]);
    expect(count).toBeGreaterThan(20);
    expect(lines[1]).toMatch(/^checked 1 paths \(.*\), 1 damaged$/);
    const verbose = await runCli(['--root', verifyRoot, 'verify', '--all', '--verbose']);
    const vlines = verbose.stdout.trimEnd().split('\n');
    expect(vlines).toHaveLength(count + 2);
    expect(vlines.slice(1, -1).every((l) => l.startsWith('  '))).toBe(true);
    const json = await runCli(['--root', verifyRoot, 'verify', '--all', '--json']);
    expect(JSON.parse(json.stdout).damaged).toEqual([
      expect.objectContaining({ path, problems: expect.any(Array) }),
    ]);
    expect(JSON.parse(json.stdout).damaged[0].problems).toHaveLength(count);
  });
});

/**
 * A flake.lock written by Nix 2.8 (`nix flake lock`, live when Nix is installed, else rebuilt from the
 * goldens it recorded in fixtures/nix-goldens/flake-git-archive.json; record with
 * FETCH_CACHE_RECORD_GOLDENS=1) over three local git inputs: one without attributes, one whose
 * `.gitattributes` export-ignore a file, one whose `.gitattributes` export-subst a file. Nix 2.8
 * unpacked `git archive` for them, so `lock --from flake.lock` (the built CLI) verifies the first and
 * fails the other two, each with the reason on its own line; for export-ignore it also says that the
 * tree with export-ignore applied has the recorded hash.
 *
 * And a dirty working tree: `fetch git <dir>` warns as Nix does (`Git tree '<dir>' is dirty`, checked
 * against Nix's own warning when it is installed) and fetches the last commit; changes to untracked
 * files only are not "dirty" for either.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliBuilt, runCli } from '../helpers/cli.js';
import { BASE_TIME, FastImport, git, importRepo } from '../helpers/git-repos.js';
import { nixAvailable, nixVersion, runNix, runNixOk } from '../helpers/nix.js';

const GOLDENS_URL = new URL('../../fixtures/nix-goldens/flake-git-archive.json', import.meta.url);
const RECORD = process.env.FETCH_CACHE_RECORD_GOLDENS === '1';
const live = nixAvailable();

interface Input {
  rev: string;
  narHash: string;
  lastModified: number;
  revCount: number;
}
interface Goldens {
  source: string;
  nixVersion: string;
  inputs: Record<string, Input>;
}

const REPOS: Record<string, readonly (readonly [string, string, string])[]> = {
  plain: [
    ['100644', 'README', 'plain\n'],
    ['100755', 'run.sh', '#!/bin/sh\necho plain\n'],
  ],
  ignore: [
    ['100644', '.gitattributes', 'secret.txt export-ignore\n'],
    ['100644', 'secret.txt', 'left out by git archive\n'],
    ['100644', 'kept.txt', 'kept\n'],
  ],
  subst: [
    ['100644', '.gitattributes', 'version.txt export-subst\n'],
    ['100644', 'version.txt', 'commit $Format:%H$\n'],
  ],
};

let tmp: string;
let lockFile: string;
const dirs: Record<string, string> = {};

function flakeLock(inputs: Record<string, Input>): string {
  const nodes: Record<string, unknown> = {
    root: { inputs: Object.fromEntries(Object.keys(inputs).map((n) => [n, n])) },
  };
  for (const [name, i] of Object.entries(inputs)) {
    const url = `file://${dirs[name]}`;
    nodes[name] = {
      flake: false,
      locked: { ...i, ref: 'main', type: 'git', url },
      original: { type: 'git', url },
    };
  }
  return `${JSON.stringify({ nodes, root: 'root', version: 7 }, null, 2)}\n`;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fc-flake28-'));
  for (const [name, files] of Object.entries(REPOS)) {
    const fi = new FastImport();
    fi.commit('refs/heads/main', BASE_TIME + 120, `${name}\n`, files);
    dirs[name] = join(tmp, name);
    importRepo(dirs[name]!, fi);
  }
  lockFile = join(tmp, 'flake.lock');
  const goldens = JSON.parse(readFileSync(GOLDENS_URL, 'utf8')) as Goldens;
  if (!live) {
    writeFileSync(lockFile, flakeLock(goldens.inputs));
    return;
  }
  // Nix 2.8 writes the lock itself: a flake with the three repositories as non-flake git inputs.
  const flake = join(tmp, 'flake');
  const inputs = Object.keys(REPOS)
    .map((n) => `inputs.${n} = { url = "git+file://${dirs[n]}"; flake = false; };`)
    .join('\n  ');
  rmSync(flake, { recursive: true, force: true });
  writeFileSync(join(tmp, 'flake.nix.txt'), '');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(flake);
  writeFileSync(join(flake, 'flake.nix'), `{\n  ${inputs}\n  outputs = { self, ... }: { };\n}\n`);
  await runNixOk(['--store', join(tmp, 'store'), 'flake', 'lock'], { cwd: flake });
  const text = readFileSync(join(flake, 'flake.lock'), 'utf8');
  writeFileSync(lockFile, text);
  const nodes = (JSON.parse(text) as { nodes: Record<string, { locked?: Input }> }).nodes;
  const got: Record<string, Input> = {};
  for (const name of Object.keys(REPOS)) {
    const { rev, narHash, lastModified, revCount } = nodes[name]!.locked!;
    got[name] = { rev, narHash, lastModified, revCount };
  }
  if (RECORD) {
    const out: Goldens = {
      source:
        'recorded by test/lock/flake-nix28.test.ts (FETCH_CACHE_RECORD_GOLDENS=1): `nix flake lock` of three local git inputs built by FastImport',
      nixVersion: nixVersion(),
      inputs: got,
    };
    writeFileSync(GOLDENS_URL, `${JSON.stringify(out, null, 2)}\n`);
  } else expect(got).toEqual(goldens.inputs);
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.runIf(cliBuilt())('a flake.lock from Nix 2.8 with export-ignore / export-subst git inputs', () => {
  it('lock --from fails those inputs, each with its reason; the plain one verifies', async () => {
    const r = await runCli(['--root', join(tmp, 'cache'), 'lock', '--from', lockFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ERR_HASH_MISMATCH: ${lockFile}: ignore, subst did not verify\n`);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /^differs ignore \(git\) expected sha256-\S+ got sha256-\S+: this commit's \.gitattributes use export-ignore \(\.gitattributes\), which Nix before 2\.20 applied through `git archive` when it wrote this narHash; .*; with export-ignore applied the narHash is the recorded one: re-lock the input with Nix 2\.20 or later \(see docs\/differences-from-nix\.md\)$/,
    );
    expect(lines[1]).toBe('ok plain (git)');
    expect(lines[2]).toMatch(
      /^differs subst \(git\) expected sha256-\S+ got sha256-\S+: this commit's \.gitattributes use export-subst \(\.gitattributes\), .* \(export-subst cannot be reproduced\): re-lock the input with Nix 2\.20 or later/,
    );
    const json = await runCli(['--root', join(tmp, 'cache'), '--json', 'lock', '--from', lockFile]);
    const report = JSON.parse(json.stdout) as { inputs: { name: string; status: string; reason?: string }[] };
    expect(report.inputs.map((i) => [i.name, i.status, i.reason !== undefined])).toEqual([
      ['ignore', 'differs', true],
      ['plain', 'ok', false],
      ['subst', 'differs', true],
    ]);
  });
});

describe.runIf(cliBuilt())('a dirty working tree', () => {
  it('fetch git DIR warns as Nix does and fetches the last commit; untracked files alone are not dirty', async () => {
    const dir = dirs.plain!;
    const root = join(tmp, 'cache-dirty');
    const head = git(dir, ['rev-parse', 'HEAD']);
    const clean = await runCli(['--root', root, 'fetch', 'git', dir, '--rev', head]);
    expect(clean.code).toBe(0);
    writeFileSync(join(dir, 'untracked.txt'), 'not tracked\n');
    const untracked = await runCli(['--root', join(tmp, 'cache-untracked'), 'fetch', 'git', dir]);
    expect(untracked).toMatchObject({ code: 0, stderr: '', stdout: clean.stdout });
    writeFileSync(join(dir, 'README'), 'plain, edited\n');
    try {
      const r = await runCli(['--root', join(tmp, 'cache-dirty-2'), 'fetch', 'git', dir]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(clean.stdout);
      expect(r.stderr).toBe(
        `warning: Git tree '${dir}' is dirty; its uncommitted changes are not included (fetch-cache fetches the last commit, Nix would fetch the working tree)\n`,
      );
      const quiet = await runCli(['--root', join(tmp, 'cache-dirty-3'), '--quiet', 'fetch', 'git', dir]);
      expect(quiet.stderr).toBe('');
      if (live) {
        const nix = await runNix([
          'eval',
          '--impure',
          '--store',
          join(tmp, 'store'),
          '--expr',
          `(builtins.fetchGit ${dir}).outPath`,
        ]);
        expect(nix.stderr).toContain(`warning: Git tree '${dir}' is dirty`);
      }
    } finally {
      git(dir, ['checkout', '--', 'README']);
      rmSync(join(dir, 'untracked.txt'));
    }
  });
});

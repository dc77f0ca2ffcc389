/**
 * Conformance of `fetch-cache hash path` / `hash file` with real Nix (`nix hash path`, `nix hash file`,
 * `nix-hash`). Every tree case of test/helpers/trees.ts, the >100 MiB file included, is built once into a
 * temp dir. Each CLI answer is compared with live Nix when `nix` is installed and always with the goldens
 * Nix recorded (fixtures/nix-goldens/hash-path.json), so a regression shows even with Nix present and a
 * stale golden (or a non-deterministic generator) shows as a live-vs-golden mismatch.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HashAlgo } from '../../src/nix/hashing.js';
import { cliBuilt, runCli } from '../helpers/cli.js';
import {
  type HashFormat,
  nixAvailable,
  nixDumpDigest,
  nixHashFile,
  nixHashLegacy,
  nixHashPath,
  runNix,
} from '../helpers/nix.js';
import { buildTree, TREE_CASES } from '../helpers/trees.js';

type Formats = Record<HashFormat, string>;
type ByType = Record<HashAlgo, Formats>;

interface GoldenCase {
  kind: string;
  hashPath: ByType;
  hashFile?: ByType;
  nixHashLegacy: { sha256: string };
  narDump: { sha256: string; size: number };
}

const goldens = JSON.parse(
  readFileSync(new URL('../../fixtures/nix-goldens/hash-path.json', import.meta.url), 'utf8'),
) as { source: string; cases: Record<string, GoldenCase> };

const live = nixAvailable();

/** The flag spellings the tests exercise, and which golden each must equal. */
const VARIANTS: { args: string[]; type: HashAlgo; format: HashFormat }[] = [
  { args: [], type: 'sha256', format: 'sri' },
  { args: ['--sri'], type: 'sha256', format: 'sri' },
  { args: ['--type', 'sha256', '--base32'], type: 'sha256', format: 'base32' },
  { args: ['--type', 'sha512', '--base32'], type: 'sha512', format: 'base32' },
  { args: ['--type', 'sha512', '--sri'], type: 'sha512', format: 'sri' },
  { args: ['--type', 'md5', '--base16'], type: 'md5', format: 'base16' },
  { args: ['--type', 'sha1', '--base64'], type: 'sha1', format: 'base64' },
];

let work: string;
const roots = new Map<string, string>();

function rootOf(name: string): string {
  const root = roots.get(name);
  if (root === undefined) throw new Error(`tree ${name} was not built`);
  return root;
}

function golden(name: string): GoldenCase {
  const g = goldens.cases[name];
  if (g === undefined) throw new Error(`no golden for ${name}: run node scripts/record-nix-goldens.mjs`);
  return g;
}

function expectOneErrorLine(stderr: string, code?: string): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(code === undefined ? /^ERR_[A-Z0-9_]+: \S/ : new RegExp(`^${code}: \\S`));
}

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  work = await mkdtemp(join(tmpdir(), 'fc-hash-cli-'));
  for (const treeCase of TREE_CASES) roots.set(treeCase.name, await buildTree(treeCase, work));
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

it('the goldens cover exactly the generated tree cases and name their source', () => {
  expect(goldens.source).toMatch(
    /^recorded from Nix 2\.8\.0 \(Debian nix-bin\) by scripts\/record-nix-goldens\./,
  );
  expect(Object.keys(goldens.cases).sort()).toEqual(TREE_CASES.map((c) => c.name).sort());
});

describe.each(TREE_CASES)('tree $name', (treeCase) => {
  const g = () => golden(treeCase.name);

  it('hash path agrees with Nix in every type and format', async () => {
    const root = rootOf(treeCase.name);
    await Promise.all(
      VARIANTS.map(async ({ args, type, format }) => {
        const r = await runCli(['hash', 'path', root, ...args]);
        expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
        expect(r.stdout, `golden ${type} ${format}`).toBe(`${g().hashPath[type][format]}\n`);
        if (live)
          expect(r.stdout, `live Nix ${type} ${format}`).toBe(`${await nixHashPath(root, type, format)}\n`);
      }),
    );
  });

  it('hash path --json prints {"hash": …}', async () => {
    const root = rootOf(treeCase.name);
    const r = await runCli(['hash', 'path', root, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ hash: g().hashPath.sha256.sri });
  });

  // Flat hashes exist only for regular files; other kinds get no such test (rather than a skipped one).
  if (treeCase.kind === 'regular') {
    it('hash file agrees with nix hash file (flat hash)', async () => {
      const root = rootOf(treeCase.name);
      const fileGolden = g().hashFile;
      expect(fileGolden).toBeDefined();
      await Promise.all(
        VARIANTS.map(async ({ args, type, format }) => {
          const r = await runCli(['hash', 'file', root, ...args]);
          expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
          expect(r.stdout, `golden ${type} ${format}`).toBe(`${fileGolden?.[type][format]}\n`);
          if (live)
            expect(r.stdout, `live Nix ${type} ${format}`).toBe(`${await nixHashFile(root, type, format)}\n`);
        }),
      );
      const json = await runCli(['--json', 'hash', 'file', root, '--type', 'sha512', '--base32']);
      expect(JSON.parse(json.stdout)).toEqual({ hash: fileGolden?.sha512.base32 });
    });
  }

  it.runIf(live)('the golden is current: live Nix still gives the recorded answers', async () => {
    const root = rootOf(treeCase.name);
    const [sri, sha512, md5, legacy] = await Promise.all([
      nixHashPath(root, 'sha256', 'sri'),
      nixHashPath(root, 'sha512', 'base32'),
      nixHashPath(root, 'md5', 'base16'),
      nixHashLegacy(root, 'sha256'),
    ]);
    expect({ sri, sha512, md5, legacy }).toEqual({
      sri: g().hashPath.sha256.sri,
      sha512: g().hashPath.sha512.base32,
      md5: g().hashPath.md5.base16,
      legacy: g().nixHashLegacy.sha256,
    });
    if (!treeCase.large) expect(await nixDumpDigest(root)).toEqual(g().narDump);
  });
});

describe('hash path details', () => {
  it('nix-hash (legacy) and nix-store --dump goldens agree with our sha256 answers', async () => {
    const root = rootOf('unusual-names');
    const [nix32, hex] = await Promise.all([
      runCli(['hash', 'path', root, '--base32']),
      runCli(['hash', 'path', root, '--base16']),
    ]);
    expect(nix32.stdout.trim()).toBe(golden('unusual-names').nixHashLegacy.sha256);
    expect(hex.stdout.trim()).toBe(golden('unusual-names').narDump.sha256);
  });

  it('accepts a relative PATH and global options before the sub-command', async () => {
    const r = await runCli(['--json', 'hash', 'path', 'sort-order', '--type', 'md5', '--base16'], {
      cwd: work,
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ hash: golden('sort-order').hashPath.md5.base16 });
  });

  it('a tree 150 directories deep hashes as Nix 2.8 hashes it, with the native walk and without', async () => {
    // Recorded from `nix hash path` (Nix 2.8.0, Debian nix-bin) on this tree: directory `x` nested 150
    // times, each level holding a file `f` with its level number.
    const recorded = 'sha256-NHVkosWoUFh4quavVcZ3pM7YiCl5Py3+Gg2D/kQD8zs=';
    const root = join(work, 'deep-150');
    let dir = root;
    for (let i = 1; i <= 150; i++) {
      await mkdir(dir);
      await writeFile(join(dir, 'f'), `${i}\n`);
      dir = join(dir, 'x');
    }
    for (const env of [{}, { FETCH_CACHE_NO_NATIVE: '1' }] as Record<string, string>[]) {
      const r = await runCli(['hash', 'path', root], { env });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(recorded);
    }
    if (live) expect((await runNix(['hash', 'path', root])).stdout.trim()).toBe(recorded);
    // `add` refuses it cleanly: modern Nix (and our NAR parser) would refuse the NAR it makes.
    const cacheRoot = join(work, 'deep-cache');
    const add = await runCli(['--root', cacheRoot, 'add', root]);
    expect(add.code).toBe(1);
    expectOneErrorLine(add.stderr, 'ERR_UNSUPPORTED_FILE_TYPE');
    const list = await runCli(['--root', cacheRoot, 'path-info', '--all']);
    expect(list.stdout).toBe('');
  });

  it('a nonexistent path exits 1 with one ERR_ line', async () => {
    for (const sub of ['path', 'file']) {
      const r = await runCli(['hash', sub, join(work, 'does-not-exist')]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expectOneErrorLine(r.stderr);
    }
    if (live) expect((await runNix(['hash', 'path', join(work, 'does-not-exist')])).code).toBe(1);
  });

  it('a FIFO inside a tree exits 1 with ERR_UNSUPPORTED_FILE_TYPE, as Nix refuses it', async () => {
    const tree = join(work, 'with-fifo');
    await mkdir(tree);
    await writeFile(join(tree, 'a-file'), 'x');
    execFileSync('mkfifo', [join(tree, 'pipe')]);
    try {
      const r = await runCli(['hash', 'path', tree]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expectOneErrorLine(r.stderr, 'ERR_UNSUPPORTED_FILE_TYPE');
      const root = await runCli(['hash', 'path', join(tree, 'pipe')]);
      expect(root.code).toBe(1);
      expectOneErrorLine(root.stderr, 'ERR_UNSUPPORTED_FILE_TYPE');
      if (live) {
        const nix = await runNix(['hash', 'path', tree]);
        expect(nix.code).toBe(1);
        expect(nix.stderr).toContain('unsupported type');
      }
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it('hash file on a directory exits 1 with one ERR_ line', async () => {
    const r = await runCli(['hash', 'file', rootOf('modes')]);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr);
  });

  it.each([
    ['an unknown flag', ['hash', 'path', '.', '--bogus']],
    ['an unknown flag on hash file', ['hash', 'file', '--frobnicate', '.']],
    ['a missing PATH', ['hash', 'path']],
    ['a missing PATH for hash file', ['hash', 'file', '--type', 'sha256']],
    ['--type without its value', ['hash', 'path', '.', '--type']],
    ['an unknown hash type', ['hash', 'path', '.', '--type', 'sha3']],
    ['two PATHs', ['hash', 'path', '.', '.']],
  ])('bad usage (%s) exits 2 with nothing on stdout', async (_what, args) => {
    const r = await runCli(args, { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toBe('');
  });

  it('--help exits 0 and describes the command', async () => {
    const r = await runCli(['hash', 'path', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hash path');
  });
});

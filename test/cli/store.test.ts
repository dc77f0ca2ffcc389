/**
 * Conformance of the store commands (`add`, `add --flat`, `nar`, `path-info`, `export`) with real Nix
 * (`nix-store --add`, `nix-store --add-fixed sha256`, `nix-store --dump`, `nix path-info --json`). Every tree
 * case of test/helpers/trees.ts (the >100 MiB file included) and the 10,000-file source tree of
 * test/helpers/source-tree.ts is built once into a temp dir and added to one fresh cache root. Answers are
 * compared with the goldens Nix recorded (fixtures/nix-goldens/store.json) always, and with live Nix in a
 * chroot store when `nix` is installed. Error cases check the one-line `ERR_…` contract and that a failed
 * add leaves the path infos as they were.
 */

import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAnyPrefixedHash, toBase16 } from '../../src/nix/hash.js';
import { createHasher } from '../../src/nix/hashing.js';
import { CLI_MAIN, cliBuilt, runCli } from '../helpers/cli.js';
import { nixAvailable, nixDump, nixDumpDigest, nixHashPath, runNix, runNixOk } from '../helpers/nix.js';
import { SOURCE_TREE, SOURCE_TREE_FILES } from '../helpers/source-tree.js';
import { buildTree, TREE_CASES, type TreeCase } from '../helpers/trees.js';

interface GoldenInfo {
  path: string;
  narHash: string;
  narSize: number;
  ca: string | null;
  references: string[];
}

interface GoldenCase {
  kind: string;
  large?: boolean;
  narDump: { sha256: string; size: number };
  add: GoldenInfo;
  addFixed?: GoldenInfo;
}

const goldens = JSON.parse(
  readFileSync(new URL('../../fixtures/nix-goldens/store.json', import.meta.url), 'utf8'),
) as {
  source: string;
  cases: Record<string, GoldenCase>;
  named: Record<string, { name: string; flat: boolean; path: string }>;
};

const live = nixAvailable();
const CASES: readonly TreeCase[] = [...TREE_CASES, SOURCE_TREE];
/** NARs up to this size are compared byte for byte with `nix-store --dump`, larger ones by sha256 + size. */
const BYTES_COMPARE_MAX = 8 << 20;

let work: string;
let cacheRoot: string;
let nixStore: string;
const roots = new Map<string, string>();

function rootOf(name: string): string {
  const root = roots.get(name);
  if (root === undefined) throw new Error(`tree ${name} was not built`);
  return root;
}

function golden(name: string): GoldenCase {
  const g = goldens.cases[name];
  if (g === undefined)
    throw new Error(`no golden for ${name}: run node scripts/record-nix-store-goldens.mjs`);
  return g;
}

/** The CLI against this file's cache root. */
function cli(args: readonly string[]) {
  return runCli(['--root', cacheRoot, ...args]);
}

function expectOneErrorLine(stderr: string, code?: string): void {
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(code === undefined ? /^ERR_[A-Z0-9_]+: \S/ : new RegExp(`^${code}: \\S`));
}

/** A narHash as Nix prints it (SRI, or `sha256:<nix32>` in some versions) as lowercase hex. */
function narHashHex(text: string): string {
  const h = parseAnyPrefixedHash(text);
  expect(h.algo).toBe('sha256');
  return toBase16(h.digest);
}

/** The content-determined fields of a path info, with the narHash normalised to hex. */
function comparable(info: {
  path: string;
  narHash: string;
  narSize: number;
  ca?: string | null;
  references: string[];
}) {
  return {
    path: info.path,
    narHash: narHashHex(info.narHash),
    narSize: info.narSize,
    ca: info.ca ?? null,
    references: info.references,
  };
}

async function nixStoreAdd(args: readonly string[]): Promise<string> {
  return runNixOk(['--store', nixStore, ...args], { bin: 'nix-store' });
}

async function nixPathInfo(path: string): Promise<GoldenInfo> {
  const [info] = JSON.parse(
    await runNixOk(['path-info', '--json', '--store', nixStore, path]),
  ) as GoldenInfo[];
  if (info === undefined) throw new Error(`nix path-info printed nothing for ${path}`);
  return info;
}

/** What live Nix answers for one tree case. */
interface LiveCase {
  add: GoldenInfo;
  addFixed?: GoldenInfo;
  /** The whole `nix-store --dump` for small NARs, else its sha256 and size. */
  dump: Buffer | { sha256: string; size: number };
}

async function askNix(treeCase: TreeCase): Promise<LiveCase> {
  const root = rootOf(treeCase.name);
  const path = await nixStoreAdd(['--add', root]);
  const out: LiveCase = {
    add: { ...(await nixPathInfo(path)), path },
    dump:
      golden(treeCase.name).narDump.size <= BYTES_COMPARE_MAX
        ? await nixDump(root)
        : await nixDumpDigest(root),
  };
  if (treeCase.kind === 'regular') {
    const fixed = await nixStoreAdd(['--add-fixed', 'sha256', root]);
    out.addFixed = { ...(await nixPathInfo(fixed)), path: fixed };
  }
  return out;
}

/**
 * Live Nix's answers, asked one case after another in the background from beforeAll on, so Nix works
 * while the CLI tests run; a test awaits only its own case.
 */
const liveAnswers = new Map<string, Promise<LiveCase>>();

function askAllInBackground(): void {
  let chain: Promise<unknown> = Promise.resolve();
  for (const treeCase of CASES) {
    const answer = chain.then(() => askNix(treeCase));
    answer.catch(() => {}); // reported by the test that awaits it
    liveAnswers.set(treeCase.name, answer);
    chain = answer.catch(() => {});
  }
}

function liveNix(name: string): Promise<LiveCase> {
  const answer = liveAnswers.get(name);
  if (answer === undefined) throw new Error(`live Nix was not asked about ${name}`);
  return answer;
}

/** Runs the CLI with binary stdout: its sha256 and size, and the bytes when `keep` is set. */
function cliBinary(
  args: readonly string[],
  keep: boolean,
): Promise<{ code: number; stderr: string; sha256: string; size: number; bytes?: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, '--root', cacheRoot, ...args], { stdio: 'pipe' });
    const hasher = createHasher('sha256');
    const chunks: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      hasher.update(chunk);
      size += chunk.length;
      if (keep) chunks.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.stdin.end();
    child.on('close', (code) =>
      resolve({
        code: code ?? 1,
        stderr: Buffer.concat(err).toString('utf8'),
        sha256: Buffer.from(hasher.digest()).toString('hex'),
        size,
        ...(keep ? { bytes: Buffer.concat(chunks) } : {}),
      }),
    );
  });
}

/** Every path info of the cache root, as `path-info --all --json` prints it. */
async function allPathInfos(): Promise<unknown> {
  const r = await cli(['--json', 'path-info', '--all']);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  if (!cliBuilt()) throw new Error('dist/cli/main.js is missing: run `npm run build` first');
  work = await mkdtemp(join(tmpdir(), 'fc-store-cli-'));
  cacheRoot = join(work, 'cache');
  nixStore = join(work, 'nix-store');
  await mkdir(join(work, 'src'));
  await mkdir(join(work, 'export'));
  for (const treeCase of CASES) roots.set(treeCase.name, await buildTree(treeCase, join(work, 'src')));
  if (live) askAllInBackground();
});

afterAll(async () => {
  // Background Nix calls finish before their temp dir goes away.
  await Promise.allSettled(liveAnswers.values());
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

it('the goldens cover exactly the generated cases and name their source', () => {
  expect(goldens.source).toMatch(
    /^recorded from Nix 2\.8\.0 \(Debian nix-bin\) by scripts\/record-nix-store-goldens\.mjs/,
  );
  expect(Object.keys(goldens.cases).sort()).toEqual(CASES.map((c) => c.name).sort());
});

it('the source tree really has over 10,000 regular files', async () => {
  expect(SOURCE_TREE_FILES).toBeGreaterThanOrEqual(10_000);
  const files = (await readdir(rootOf(SOURCE_TREE.name), { recursive: true, withFileTypes: true })).filter(
    (e) => e.isFile(),
  );
  expect(files).toHaveLength(SOURCE_TREE_FILES);
});

describe.each(CASES)('tree $name', (treeCase) => {
  const g = () => golden(treeCase.name);

  it('add prints the store path nix-store --add prints', async () => {
    const r = await cli(['add', rootOf(treeCase.name)]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout, 'golden').toBe(`${g().add.path}\n`);
    if (live) expect(r.stdout, 'live Nix').toBe(`${(await liveNix(treeCase.name)).add.path}\n`);
  });

  it('add --json and path-info --json match nix path-info --json', async () => {
    const added = await cli(['--json', 'add', rootOf(treeCase.name)]);
    expect({ code: added.code, stderr: added.stderr }).toEqual({ code: 0, stderr: '' });
    const info = JSON.parse(added.stdout);
    expect(info.narHash).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
    expect(info.signatures).toEqual([]);
    expect(comparable(info), 'golden').toEqual(comparable(g().add));

    const shown = await cli(['path-info', '--json', g().add.path]);
    expect({ code: shown.code, stderr: shown.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(shown.stdout)).toEqual([info]);

    if (live) expect(comparable(info), 'live Nix').toEqual(comparable((await liveNix(treeCase.name)).add));
  });

  if (treeCase.kind === 'regular') {
    // Nix 2.8's `--add-fixed` builds the store object's NAR from the file on
    // disk, so an executable file stays executable (NAR 32 bytes longer: the
    // `executable ""` marker). Modern Nix stores a flat object as its bytes
    // only (`restorePath(…, Flat)` = writeFile), never executable, since the
    // content address cannot vouch for a mode bit. We follow modern Nix: the
    // store path and CA equal Nix 2.8's, the NAR is that of a non-executable
    // file with the same bytes.
    it('add --flat equals nix-store --add-fixed sha256 (path and CA; flat objects never executable)', async () => {
      const fixed = g().addFixed as GoldenInfo;
      expect(fixed).toBeDefined();
      const file = rootOf(treeCase.name);
      const executable = ((await lstat(file)).mode & 0o100) !== 0;
      const r = await cli(['add', '--flat', file]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stdout, 'golden').toBe(`${fixed.path}\n`);
      const json = comparable(JSON.parse((await cli(['add', '--flat', '--json', file])).stdout));
      const expected = async (nix: GoldenInfo) => {
        if (!executable) return comparable(nix);
        // The same bytes as a non-executable file, hashed by Nix when it is here.
        const copy = join(work, `flat-${treeCase.name}`);
        await writeFile(copy, await readFile(file), { mode: 0o644 });
        const hex = live
          ? await nixHashPath(copy, 'sha256', 'base16')
          : (await runCli(['hash', 'path', '--base16', copy])).stdout.trim();
        await rm(copy);
        return { ...comparable(nix), narHash: hex, narSize: nix.narSize - 32 };
      };
      expect(json, 'golden').toEqual(await expected(fixed));
      if (live) {
        const nix = (await liveNix(treeCase.name)).addFixed as GoldenInfo;
        expect(r.stdout, 'live Nix').toBe(`${nix.path}\n`);
        expect(json, 'live Nix').toEqual(await expected(nix));
      }
    });
  }

  it('nar is byte-identical to nix-store --dump', async () => {
    const small = g().narDump.size <= BYTES_COMPARE_MAX;
    const r = await cliBinary(['nar', g().add.path], small);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect({ sha256: r.sha256, size: r.size }, 'golden').toEqual(g().narDump);
    if (live) {
      const dump = (await liveNix(treeCase.name)).dump;
      if (Buffer.isBuffer(dump)) expect(r.bytes?.equals(dump), 'live Nix bytes').toBe(true);
      else expect({ sha256: r.sha256, size: r.size }, 'live Nix').toEqual(dump);
    }
  });

  it('export materialises a tree with the same NAR hash, modes and symlinks', async () => {
    const target = join(work, 'export', treeCase.name);
    try {
      const r = await cli(['export', g().add.path, target]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 0,
        stdout: '',
        stderr: '',
      });
      const [hex, nixHex] = await Promise.all([
        runCli(['hash', 'path', '--base16', target]),
        live ? nixHashPath(target, 'sha256', 'base16') : undefined,
      ]);
      expect(hex.stdout, 'golden').toBe(`${g().narDump.sha256}\n`);
      if (live) expect(nixHex, 'live Nix').toBe(g().narDump.sha256);
      expect((await lstat(target)).isSymbolicLink()).toBe(treeCase.kind === 'symlink');
    } finally {
      await rm(target, { recursive: true, force: true });
    }
  });
});

describe('add --name', () => {
  it.each(Object.entries(goldens.named))(
    '%s under another name equals nix store add-path|add-file --name',
    async (caseName, named) => {
      const args = [
        '--json',
        'add',
        rootOf(caseName),
        '--name',
        named.name,
        ...(named.flat ? ['--flat'] : []),
      ];
      const r = await cli(args);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const info = JSON.parse(r.stdout);
      expect(info.path, 'golden').toBe(named.path);
      // Only the name differs from the unnamed add: same NAR, same content address.
      const unnamed = named.flat ? golden(caseName).addFixed : golden(caseName).add;
      expect(comparable(info)).toEqual({ ...comparable(unnamed as GoldenInfo), path: named.path });
      if (live) {
        const sub = named.flat ? 'add-file' : 'add-path';
        const nixPath = await runNixOk([
          'store',
          sub,
          '--store',
          nixStore,
          '--name',
          named.name,
          rootOf(caseName),
        ]);
        expect(info.path, 'live Nix').toBe(nixPath);
      }
    },
  );

  it('an invalid --name exits 1 with ERR_BAD_STORE_PATH', async () => {
    const r = await cli(['add', rootOf('modes'), '--name', 'bad name']);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, 'ERR_BAD_STORE_PATH');
  });
});

describe('export details', () => {
  it('keeps executable bits (0755 vs 0644) and symlink targets verbatim', async () => {
    const target = join(work, 'export', 'modes-and-links');
    await mkdir(target);
    try {
      await cli(['add', rootOf('modes')]);
      await cli(['add', rootOf('symlinks')]);
      expect((await cli(['export', golden('modes').add.path, join(target, 'modes')])).code).toBe(0);
      expect((await cli(['export', golden('symlinks').add.path, join(target, 'symlinks')])).code).toBe(0);
      const mode = async (p: string) => (await lstat(join(target, 'modes', p))).mode & 0o777;
      expect(await mode('exec-0744')).toBe(0o755);
      expect(await mode('exec-empty')).toBe(0o755);
      expect(await mode('sub/nested-exec')).toBe(0o755);
      expect(await mode('plain-0645-other-x')).toBe(0o644);
      expect(await mode('plain-0444-readonly')).toBe(0o644);
      const link = (p: string) => readlink(join(target, 'symlinks', p));
      expect(await link('dangling')).toBe('does/not/exist');
      expect(await link('absolute')).toBe('/nix/store/00000000000000000000000000000000-absolute');
      expect(await link('unicode-target')).toBe('with space/\u00e9\u{1F600}');
      expect((await lstat(join(target, 'symlinks', 'to-directory'))).isSymbolicLink()).toBe(true);
    } finally {
      await rm(target, { recursive: true, force: true });
    }
  });
});

describe('store command errors', () => {
  it('add of a missing path exits 1 with ERR_NOT_FOUND, as nix-store --add fails', async () => {
    const missing = join(work, 'does-not-exist');
    const r = await cli(['add', missing]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectOneErrorLine(r.stderr, 'ERR_NOT_FOUND');
    const flat = await cli(['add', '--flat', missing]);
    expect(flat.code).toBe(1);
    expectOneErrorLine(flat.stderr, 'ERR_NOT_FOUND');
    if (live)
      expect((await runNix(['--store', nixStore, '--add', missing], { bin: 'nix-store' })).code).toBe(1);
  });

  it('add of a tree with a FIFO exits 1 with ERR_UNSUPPORTED_FILE_TYPE and adds no path', async () => {
    const tree = join(work, 'with-fifo');
    await mkdir(tree);
    try {
      await writeFile(join(tree, 'a-file'), 'x');
      execFileSync('mkfifo', [join(tree, 'pipe')]);
      await writeFile(join(tree, 'z-file'), 'after the pipe');
      const before = await allPathInfos();
      const r = await cli(['add', tree]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expectOneErrorLine(r.stderr, 'ERR_UNSUPPORTED_FILE_TYPE');
      const flat = await cli(['add', '--flat', join(tree, 'pipe')]);
      expect(flat.code).toBe(1);
      expectOneErrorLine(flat.stderr, 'ERR_UNSUPPORTED_FILE_TYPE');
      expect(await allPathInfos()).toEqual(before);
      if (live) {
        const nix = await runNix(['--store', nixStore, '--add', tree], { bin: 'nix-store' });
        expect(nix.code).toBe(1);
        expect(nix.stderr).toContain('unsupported type');
      }
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it('add --flat of a directory exits 1 with one ERR_ line, as nix-store --add-fixed fails', async () => {
    const r = await cli(['add', '--flat', rootOf('modes')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectOneErrorLine(r.stderr);
    if (live) {
      const nix = await runNix(['--store', nixStore, '--add-fixed', 'sha256', rootOf('modes')], {
        bin: 'nix-store',
      });
      expect(nix.code).toBe(1);
    }
  });

  it('nar, export and path-info of a well-formed path not in the cache exit 1 with ERR_NOT_FOUND', async () => {
    const unknown = '/nix/store/00000000000000000000000000000000-not-added';
    const nar = await cliBinary(['nar', unknown], true);
    expect(nar.code).toBe(1);
    expect(nar.size).toBe(0);
    expectOneErrorLine(nar.stderr, 'ERR_NOT_FOUND');
    const info = await cli(['path-info', unknown]);
    expect(info.code).toBe(1);
    expectOneErrorLine(info.stderr, 'ERR_NOT_FOUND');
    const target = join(work, 'export', 'never');
    const exp = await cli(['export', unknown, target]);
    expect(exp.code).toBe(1);
    expectOneErrorLine(exp.stderr, 'ERR_NOT_FOUND');
    await expect(lstat(target)).rejects.toThrow();
    // Same hash part as a stored path but another name is another path.
    const renamed = golden('modes').add.path.replace(/-modes$/, '-other');
    expectOneErrorLine((await cli(['path-info', renamed])).stderr, 'ERR_NOT_FOUND');
  });

  it('export to an existing directory exits 1 and leaves it alone', async () => {
    await cli(['add', rootOf('modes')]);
    const target = join(work, 'export', 'exists');
    await mkdir(target);
    try {
      await writeFile(join(target, 'keep'), 'mine');
      const r = await cli(['export', golden('modes').add.path, target]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expectOneErrorLine(r.stderr);
      expect(await readdir(target)).toEqual(['keep']);
    } finally {
      await rm(target, { recursive: true, force: true });
    }
  });

  it.each([
    ['no store dir', 'pyf8r70s75yddxg80xi2ici97imi8a9a-modes'],
    ['another store dir', '/gnu/store/pyf8r70s75yddxg80xi2ici97imi8a9a-modes'],
    ['a short hash part', '/nix/store/pyf8r70s75yddxg-modes'],
    ['a non-nix32 hash character', '/nix/store/eyf8r70s75yddxg80xi2ici97imi8a9a-modes'],
    ['an empty name', '/nix/store/pyf8r70s75yddxg80xi2ici97imi8a9a-'],
    ['a bad name character', '/nix/store/pyf8r70s75yddxg80xi2ici97imi8a9a-mo des'],
  ])('path-info of a malformed path (%s) exits 1 with ERR_BAD_STORE_PATH', async (_what, path) => {
    const r = await cli(['path-info', path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectOneErrorLine(r.stderr, 'ERR_BAD_STORE_PATH');
  });

  it('nar of a malformed path exits 1 with ERR_BAD_STORE_PATH', async () => {
    const r = await cli(['nar', '/nix/store/not-a-store-path']);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.stderr, 'ERR_BAD_STORE_PATH');
  });

  it.each([
    ['add without PATH', ['add']],
    ['add with two PATHs', ['add', '.', '.']],
    ['add with an unknown flag', ['add', '.', '--bogus']],
    ['nar without STORE-PATH', ['nar']],
    ['export without DIR', ['export', '/nix/store/pyf8r70s75yddxg80xi2ici97imi8a9a-modes']],
  ])('bad usage (%s) exits 2 with nothing on stdout', async (_what, args) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toBe('');
  });

  it('path-info --all lists every added path once', async () => {
    const r = await cli(['path-info', '--all']);
    expect(r.code).toBe(0);
    const listed = r.stdout.split('\n').filter((l) => l !== '');
    expect(new Set(listed).size).toBe(listed.length);
    for (const c of CASES) expect(listed).toContain(golden(c.name).add.path);
    for (const c of CASES) if (c.kind === 'regular') expect(listed).toContain(golden(c.name).addFixed?.path);
  });
});

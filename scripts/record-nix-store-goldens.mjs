#!/usr/bin/env node
/**
 * Records the real-Nix store goldens test/cli/store.test.ts falls back to when `nix` is not installed:
 *
 *   node scripts/record-nix-store-goldens.mjs      # writes fixtures/nix-goldens/store.json
 *
 * Every tree case of test/helpers/trees.ts plus the 10,000-file source tree of test/helpers/source-tree.ts is
 * built in a temp dir and added to a throw-away chroot store (`nix-store --store <tmp> --add`, which prints
 * the logical /nix/store/… path): the store path, `nix path-info --json` narHash/narSize/ca/references, and
 * sha256 + size of `nix-store --dump` of the source. Regular-file roots are also added with
 * `nix-store --add-fixed sha256` (flat), with their path info. Nix's narHash is kept exactly as printed.
 * `named`: two cases added under another name with `nix store add-path --name` / `nix store add-file --name`.
 *
 * Needs the Nix CLI (2.8.0, Debian nix-bin); runs offline with a throw-away HOME, never touches /nix.
 * The TypeScript helpers are loaded through Vite's module runner (Node 20 cannot import .ts itself).
 */

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const repo = fileURLToPath(new URL('../', import.meta.url));
const outDir = join(repo, 'fixtures/nix-goldens');
const load = async (rel) =>
  (await runnerImport(join(repo, rel), { configFile: false, logLevel: 'error' })).module;

const trees = await load('test/helpers/trees.ts');
const sourceTree = await load('test/helpers/source-tree.ts');
const nix = await load('test/helpers/nix.ts');

if (!nix.nixAvailable()) {
  console.error('record-nix-store-goldens: `nix` is not available');
  process.exit(1);
}
const version = nix.nixVersion();
const today = new Date().toISOString().slice(0, 10);
const source = `recorded from ${version.replace(/^nix \(Nix\) /, 'Nix ')} (Debian nix-bin) by scripts/record-nix-store-goldens.mjs, ${today}`;

/** The fields of `nix path-info --json` that are a function of the content (no registrationTime). */
async function pathInfo(store, path) {
  const [info] = JSON.parse(await nix.runNixOk(['path-info', '--json', '--store', store, path]));
  if (info?.path !== path) throw new Error(`nix path-info answered for ${info?.path}, asked ${path}`);
  return { narHash: info.narHash, narSize: info.narSize, ca: info.ca ?? null, references: info.references };
}

async function nixAdd(store, args) {
  return nix.runNixOk(['--store', store, ...args], { bin: 'nix-store' });
}

/** Cases also added under another name (`add --name`), with `nix store add-path|add-file --name`. */
const NAMED = {
  modes: { name: 'renamed-tree', flat: false },
  'file-root': { name: 'renamed-file', flat: true },
};

const work = await mkdtemp(join(tmpdir(), 'fc-record-store-'));
const cases = {};
const named = {};
try {
  const store = join(work, 'store');
  const srcDir = join(work, 'src');
  await mkdir(srcDir);
  for (const treeCase of [...trees.TREE_CASES, sourceTree.SOURCE_TREE]) {
    const started = Date.now();
    const root = await trees.buildTree(treeCase, srcDir);
    const entry = { kind: treeCase.kind, description: treeCase.description };
    if (treeCase.large) entry.large = true;
    entry.narDump = await nix.nixDumpDigest(root);
    const path = await nixAdd(store, ['--add', root]);
    entry.add = { path, ...(await pathInfo(store, path)) };
    if (entry.add.narSize !== entry.narDump.size) throw new Error(`${treeCase.name}: narSize != dump size`);
    if (treeCase.kind === 'regular') {
      const flat = await nixAdd(store, ['--add-fixed', 'sha256', root]);
      entry.addFixed = { path: flat, ...(await pathInfo(store, flat)) };
    }
    if (NAMED[treeCase.name]) {
      const { name, flat } = NAMED[treeCase.name];
      const args = ['store', flat ? 'add-file' : 'add-path', '--store', store, '--name', name, root];
      const namedPath = await nix.runNixOk(args);
      named[treeCase.name] = {
        name,
        flat,
        command: `nix ${args.slice(0, 2).join(' ')} --name ${name}`,
        path: namedPath,
      };
    }
    cases[treeCase.name] = entry;
    await rm(root, { recursive: true, force: true });
    // The chroot store keeps a copy; drop big ones so the temp dir stays small.
    if (treeCase.large) await nix.runNix(['--store', store, '--delete', path], { bin: 'nix-store' });
    console.error(`${treeCase.name}: ${path} (${Date.now() - started} ms)`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
await mkdir(outDir, { recursive: true });
const note =
  'store path from `nix-store --store <tmp> --add ROOT` (and `--add-fixed sha256 ROOT` for regular-file roots as addFixed); narHash (as Nix printed it), narSize, ca, references from `nix path-info --json --store <tmp>`; narDump = sha256 (hex) and size of `nix-store --dump ROOT`. Trees from test/helpers/trees.ts and test/helpers/source-tree.ts.';
await writeFile(
  join(outDir, 'store.json'),
  `${JSON.stringify({ source, nixVersion: version, note, cases, named }, null, 2)}\n`,
);

#!/usr/bin/env node
/**
 * Records what real Nix makes of every archive in fixtures/archives/ into
 * fixtures/nix-goldens/fetch-tarball.json, which test/fetchers/tarball.test.ts compares against (always; and
 * live as well when `nix` is installed):
 *
 *   node scripts/record-tarball-goldens.mjs
 *
 * Per archive: its sha256 (so a golden stays tied to the exact bytes), Nix 2.8's `builtins.fetchTarball`
 * result (store path + narHash, or its error), `nix-prefetch-url --unpack` (nix32), and `modern`: the
 * store path and narHash Nix >= 2.21 gives, with how it was obtained from Nix 2.8 output:
 *   single-dir   = fetchTarball (both versions strip the single top-level directory);
 *   multiple     = nix-prefetch-url --unpack (its root is the unpack directory, as modern fetchTarball's);
 *   single-file  = `nix hash path` of a directory holding what GNU tar extracts (modern Nix does not
 *                  dereference a single top-level *file*; Nix 2.8 makes it the root).
 * Needs Nix (2.8.0, Debian nix-bin); offline, throw-away HOME and chroot store, never touches /nix.
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const repo = fileURLToPath(new URL('../', import.meta.url));
const load = async (rel) =>
  (await runnerImport(join(repo, rel), { configFile: false, logLevel: 'error' })).module;
const cases = await load('test/helpers/archive-cases.ts');
const nix = await load('test/helpers/nix.ts');

if (!nix.nixAvailable()) {
  console.error('record-tarball-goldens: `nix` is not available');
  process.exit(1);
}
const version = nix.nixVersion();
const today = new Date().toISOString().slice(0, 10);

const work = await mkdtemp(join(tmpdir(), 'fc-record-tarball-'));
const out = {};
try {
  for (const c of cases.GOOD_CASES) {
    const file = join(repo, 'fixtures/archives', c.file);
    const bytes = await readFile(file);
    const url = `file://${file}`;
    const store = join(work, `store-${c.file}`);
    const entry = {
      archiveSha256: createHash('sha256').update(bytes).digest('hex'),
      topLevel: c.topLevel,
    };
    const ft = await nix.runNix([
      'eval',
      '--impure',
      '--raw',
      '--store',
      store,
      '--expr',
      `builtins.fetchTarball "${url}"`,
    ]);
    if (ft.code === 0) {
      const path = ft.stdout.trim();
      const [info] = JSON.parse(await nix.runNixOk(['path-info', '--json', '--store', store, path]));
      entry.nix28FetchTarball = { storePath: path, narHash: info.narHash };
    } else {
      const line = ft.stderr.split('\n').find((l) => l.includes('error:')) ?? ft.stderr.trim();
      entry.nix28FetchTarball = { error: line.replace(/'file:\/\/[^']*'/, "'…'").trim() };
    }
    entry.nix28PrefetchUnpack = await nix.runNixOk(['--store', store, '--unpack', url], {
      bin: 'nix-prefetch-url',
    });
    const toSri = (h) => nix.runNixOk(['hash', 'to-sri', '--type', 'sha256', h]);
    let narHash;
    let how;
    if (c.topLevel === 'single-dir') {
      narHash = entry.nix28FetchTarball.narHash;
      how = 'Nix 2.8 builtins.fetchTarball';
    } else if (c.topLevel === 'multiple') {
      narHash = await toSri(entry.nix28PrefetchUnpack);
      how = 'Nix 2.8 nix-prefetch-url --unpack (root = the unpack directory)';
    } else {
      const dir = join(work, `x-${c.file}`);
      execFileSync('mkdir', ['-p', dir]);
      execFileSync('tar', ['-xf', file, '-C', dir]);
      narHash = await nix.nixHashPath(dir);
      how = 'Nix 2.8 nix hash path of the directory GNU tar extracts into';
    }
    entry.modern = { narHash, how };
    out[c.file] = entry;
    console.log(c.file, JSON.stringify(entry));
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
await writeFile(
  join(repo, 'fixtures/nix-goldens/fetch-tarball.json'),
  `${JSON.stringify(
    {
      source: `recorded from ${version.replace(/^nix \(Nix\) /, 'Nix ')} (Debian nix-bin) by scripts/record-tarball-goldens.mjs, ${today}`,
      nixVersion: version,
      note: 'archives are fixtures/archives/<name> (sha256 given); modern.narHash is what Nix >= 2.21 fetchTarball yields, derived from Nix 2.8 output as modern.how says; the store path is makeFixedOutputPath(source, nar, narHash)',
      cases: out,
    },
    null,
    2,
  )}\n`,
);

#!/usr/bin/env node
/**
 * Records the real-Nix goldens of the fetcher tests (test/fetchers/url.test.ts, nar.test.ts), used when
 * `nix` is not installed:
 *
 *   node scripts/record-nix-fetch-goldens.mjs   # writes fixtures/nix-goldens/fetch-url.json and fixtures/nar-fetch/
 *
 * URL cases: deterministic bodies served by test/helpers/http-server.ts on 127.0.0.1, fetched with
 * `nix-prefetch-url --print-path [--executable] [--type T] URL` into a throw-away chroot store; the nix32
 * hash and store path it prints, and `nix path-info --json` (narHash, narSize, ca) of that path. The store
 * path depends only on the name (the URL's base name) and the content, never on the port.
 * NAR cases: a small tree dumped with `nix-store --dump`, compressed with the xz/zstd/bzip2/gzip CLIs,
 * written to fixtures/nar-fetch/; `nix-store --add` (recursive sha256, name `source`) and
 * `nix-store --add-fixed --recursive sha512` of the tree give the store paths a NAR fetch must produce.
 *
 * Needs the Nix CLI (2.8.0, Debian nix-bin); runs offline with a throw-away HOME, never touches /nix.
 */

import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runnerImport } from 'vite';

const repo = fileURLToPath(new URL('../', import.meta.url));
const load = async (rel) =>
  (await runnerImport(join(repo, rel), { configFile: false, logLevel: 'error' })).module;
const nix = await load('test/helpers/nix.ts');
const { startServer } = await load('test/helpers/http-server.ts');

if (!nix.nixAvailable()) {
  console.error('record-nix-fetch-goldens: `nix` is not available');
  process.exit(1);
}
const version = nix.nixVersion().replace(/^nix \(Nix\) /, 'Nix ');
const today = new Date().toISOString().slice(0, 10);
const source = `recorded from ${version} (Debian nix-bin) by scripts/record-nix-fetch-goldens.mjs, ${today}`;

/** The byte pattern the tests rebuild from `{"pattern": n}`. */
function pattern(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}
const bodyOf = (spec) => (spec.pattern !== undefined ? pattern(spec.pattern) : Buffer.from(spec.text));

const URL_CASES = [
  { id: 'hello', path: '/hello.txt', body: { text: 'hello from fetch-cache\n' } },
  { id: 'pattern', path: '/data.bin', body: { pattern: 300000 } },
  { id: 'query', path: '/get?id=42', body: { text: 'query\n' } },
  { id: 'empty', path: '/empty', body: { text: '' } },
  { id: 'executable', path: '/tool.sh', body: { text: '#!/bin/sh\necho hi\n' }, executable: true },
  { id: 'sha512', path: '/hello.txt', body: { text: 'hello from fetch-cache\n' }, type: 'sha512' },
];

const work = await mkdtemp(join(tmpdir(), 'fc-fetch-goldens-'));
const store = join(work, 'store');
const server = await startServer(
  Object.fromEntries(URL_CASES.map((c) => [c.path, { body: bodyOf(c.body) }])),
);
const out = { source, cases: {} };
try {
  for (const c of URL_CASES) {
    const args = ['--store', store, '--print-path'];
    if (c.executable) args.push('--executable');
    if (c.type) args.push('--type', c.type);
    const [hash, path] = (
      await nix.runNixOk([...args, server.url(c.path)], { bin: 'nix-prefetch-url' })
    ).split('\n');
    const [info] = JSON.parse(await nix.runNixOk(['path-info', '--store', store, '--json', path]));
    out.cases[c.id] = {
      path: c.path,
      body: c.body,
      ...(c.executable ? { executable: true } : {}),
      ...(c.type ? { type: c.type } : {}),
      hash,
      storePath: path,
      narHash: info.narHash,
      narSize: info.narSize,
      ca: info.ca,
    };
  }
  await mkdir(join(repo, 'fixtures/nix-goldens'), { recursive: true });
  await writeFile(join(repo, 'fixtures/nix-goldens/fetch-url.json'), `${JSON.stringify(out, null, 2)}\n`);

  // The NAR tree.
  const tree = join(work, 'source');
  await mkdir(join(tree, 'bin'), { recursive: true });
  await mkdir(join(tree, 'sub/empty-dir'), { recursive: true });
  await writeFile(join(tree, 'a.txt'), 'alpha\n');
  await writeFile(join(tree, 'bin/run.sh'), '#!/bin/sh\necho run\n');
  await chmod(join(tree, 'bin/run.sh'), 0o755);
  await writeFile(join(tree, 'big.bin'), pattern(100000));
  await symlink('a.txt', join(tree, 'link'));
  const nar = await nix.nixDump(tree);
  const dir = join(repo, 'fixtures/nar-fetch');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tree.nar'), nar);
  await writeFile(join(dir, 'tree.nar.xz'), execFileSync('xz', ['-c', '-9'], { input: nar }));
  await writeFile(join(dir, 'tree.nar.zst'), execFileSync('zstd', ['-c', '-q'], { input: nar }));
  await writeFile(join(dir, 'tree.nar.bz2'), execFileSync('bzip2', ['-c'], { input: nar }));
  await writeFile(join(dir, 'tree.nar.gz'), execFileSync('gzip', ['-c', '-n'], { input: nar }));
  const added = await nix.runNixOk(['--store', store, '--add', tree], { bin: 'nix-store' });
  const [addedInfo] = JSON.parse(await nix.runNixOk(['path-info', '--store', store, '--json', added]));
  const sha512Path = await nix.runNixOk(['--store', store, '--add-fixed', '--recursive', 'sha512', tree], {
    bin: 'nix-store',
  });
  const sha512 = await nix.runNixOk(['hash', 'path', '--type', 'sha512', '--sri', tree]);
  await writeFile(
    join(dir, 'tree.json'),
    `${JSON.stringify(
      {
        source,
        files: ['tree.nar', 'tree.nar.xz', 'tree.nar.zst', 'tree.nar.bz2', 'tree.nar.gz'],
        sha256: {
          storePath: added,
          narHash: addedInfo.narHash,
          narSize: addedInfo.narSize,
          ca: addedInfo.ca,
        },
        sha512: { storePath: sha512Path, hash: sha512 },
      },
      null,
      2,
    )}\n`,
  );
  console.log(JSON.stringify(out, null, 2));
} finally {
  await server.close();
  execFileSync('chmod', ['-R', 'u+w', work]);
  await rm(work, { recursive: true, force: true });
}

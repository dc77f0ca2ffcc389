/**
 * Tarball benchmark: a generated source-like tree (~120 MB unpacked, ~16,000 text files, GNU tar + gzip -6)
 * served from a loopback HTTP server; `fetch-cache fetch tarball URL` (the CLI, a whole process, fresh cache
 * root each run) against `nix-prefetch-url --unpack URL` (fresh chroot store each run) on the same server in
 * the same run, plus the in-process `ingestTarball()` harness (ingest and NAR-hash times separately) and
 * plain `tar -xzf` to disk for scale. Wall time and peak RSS through bench/measure.py. Run alone with
 * `node bench/tarball.mjs` (inputs in $BENCH_WORK, default .bench-work/).
 */

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, hasCommand, measureOnce, NIX_ENV, prng, REPO } from './lib.mjs';

const WORDS = [
  'static',
  'int',
  'return',
  'if',
  'for',
  'struct',
  'const',
  'char',
  'size_t',
  'while',
  '{',
  '}',
  ';',
  '(',
  ')',
  '=',
  'buf',
  'len',
  'ptr',
  'err',
  '0',
  '1',
  '->',
  'NULL',
];

/** ~120 MB of C-like text in ~16,000 files, deterministic. */
export function makeSourceTarball(work) {
  const out = join(work, 'source.tar.gz');
  if (existsSync(out)) return out;
  const tree = join(work, 'source-tree');
  rmSync(tree, { recursive: true, force: true });
  const rnd = prng(2024);
  let total = 0;
  for (let i = 0; total < 120e6; i++) {
    const dir = join(tree, 'project-1.0', `mod${i % 64}`, `sub${(i >> 6) % 16}`);
    mkdirSync(dir, { recursive: true });
    // Log-normal-ish sizes: mostly 1–10 KB, a few up to ~300 KB.
    const size = Math.floor(Math.exp(7 + ((rnd() % 1000) / 1000) * 2 + (rnd() % 20 === 0 ? 3 : 0)));
    const lines = [];
    let n = 0;
    while (n < size) {
      const line = Array.from({ length: 1 + (rnd() % 12) }, () => WORDS[rnd() % WORDS.length]).join(' ');
      lines.push(line);
      n += line.length + 1;
    }
    writeFileSync(join(dir, `file${i}.${i % 5 === 0 ? 'h' : 'c'}`), `${lines.join('\n')}\n`, {
      mode: i % 30 === 0 ? 0o755 : 0o644,
    });
    total += n;
  }
  spawnSync(
    'sh',
    [
      '-c',
      `tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1600000000 -C '${tree}' -cf - project-1.0 | gzip -6 -n > '${out}.tmp' && mv '${out}.tmp' '${out}'`,
    ],
    { stdio: 'inherit' },
  );
  rmSync(tree, { recursive: true, force: true });
  return out;
}

function measureFresh(argvFor, { runs = 3, env = process.env } = {}) {
  const results = [];
  for (let i = 0; i <= runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'fc-bench-tarball-'));
    try {
      const m = measureOnce(argvFor(dir), env);
      if (i > 0) results.push(m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  results.sort((a, b) => a.wall - b.wall);
  const median = results[Math.floor(results.length / 2)];
  return {
    wall: median.wall,
    maxRssMiB: Math.max(...results.map((m) => m.maxRssKiB)) / 1024,
    stderr: median.stderr,
  };
}

async function main() {
  const work = join(process.env.BENCH_WORK ?? join(REPO, '.bench-work'), 'tarball');
  mkdirSync(work, { recursive: true });
  const archive = makeSourceTarball(work);
  const unpacked = Number(
    spawnSync('sh', ['-c', `gzip -dc '${archive}' | wc -c`], { encoding: 'utf8' }).stdout.trim(),
  );
  console.log(
    `archive ${archive}: ${(statSync(archive).size / 1e6).toFixed(1)} MB gzip, ${(unpacked / 1e6).toFixed(1)} MB tar`,
  );

  // A loopback server in another process (spawnSync below blocks this one).
  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const p = probe.address().port;
      probe.close(() => resolve(p));
    });
  });
  const server = spawn(
    'python3',
    ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', work],
    {
      stdio: 'ignore',
    },
  );
  await new Promise((r) => setTimeout(r, 1000));
  const url = `http://127.0.0.1:${port}/source.tar.gz`;
  const cli = measureFresh((d) => [CLI, '--root', join(d, 'root'), '--quiet', 'fetch', 'tarball', url]);

  const ours = measureFresh((d) => [
    'node',
    '--import',
    'tsx',
    join(REPO, 'bench/tarball-child.ts'),
    archive,
    join(d, 'root'),
  ]);
  const inner = JSON.parse(ours.stderr.trim().split('\n').pop());
  const tar = measureFresh((d) => ['tar', '-xzf', archive, '-C', d]);
  const rows = [
    ['fetch-cache fetch tarball (CLI, loopback HTTP)', cli],
    ['fetch-cache ingestTarball + NAR hash (in-process harness)', ours],
    ['tar -xzf to disk', tar],
  ];
  if (hasCommand('nix-prefetch-url')) {
    const nix = measureFresh(
      (d) => ['env', `HOME=${d}`, 'nix-prefetch-url', '--store', join(d, 'store'), '--unpack', url],
      { env: NIX_ENV },
    );
    rows.push(['nix-prefetch-url --unpack (Nix 2.8, loopback HTTP)', nix]);
    console.log(
      `\nratio fetch tarball / nix-prefetch-url --unpack: ${(cli.wall / nix.wall).toFixed(2)} (target ≤ 1.0)`,
    );
  }
  server.kill();
  console.log(`\n## tarball ingest (${(unpacked / 1e6).toFixed(0)} MB unpacked)`);
  console.log('| case | wall (s) | MB/s unpacked | peak RSS (MiB) |');
  console.log('|---|---|---|---|');
  for (const [name, m] of rows) {
    console.log(
      `| ${name} | ${m.wall.toFixed(2)} | ${(unpacked / 1e6 / m.wall).toFixed(0)} | ${m.maxRssMiB.toFixed(0)} |`,
    );
  }
  console.log(
    `inside our process: ingest ${inner.ingestSeconds.toFixed(2)} s (${(unpacked / 1e6 / inner.ingestSeconds).toFixed(0)} MB/s), NAR hash ${inner.narSeconds.toFixed(2)} s, ${inner.narHash}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

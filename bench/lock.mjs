/**
 * Benchmark: `fetch-cache lock` on a 100-pin manifest (50 tarball pins, 50
 * url pins) served by a loopback HTTP server in a child process, timed as a
 * whole process (node start-up, cache open, manifest and lockfile, every pin)
 * through bench/measure.py. Cases:
 * - cold: empty cache root, no lockfile — every pin downloaded and ingested;
 * - warm, no lockfile: every pin re-resolved from the cache (fetch index
 *   within its TTL, no request);
 * - warm, lockfile current: the everyday `lock` with nothing to do;
 * - `lock --check --offline` of the 100 pins from the cache.
 * Target (issue 5): warm < 1 s. Our side runs `dist/` (`npm run build`).
 *
 * One command: `node bench/lock.mjs`; `benchLock(work)` for bench/run.mjs.
 * Internal mode: `--serve <dir>` (the HTTP server; prints its port).
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { CLI, measureOnce, prng, REPO } from './lib.mjs';

const PINS = 100;
const RUNS = 5;

/** A ustar member (name < 100 bytes), content padded to 512. */
function tarMember(name, content, mode = 0o644, type = '0') {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  const octal = (v, w) => `${v.toString(8).padStart(w - 1, '0')}\0`;
  h.write(octal(mode, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(content.length, 12), 124);
  h.write(octal(1_600_000_000, 12), 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\x0000', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([h, content, Buffer.alloc((512 - (content.length % 512)) % 512)]);
}

/** 50 tarballs of 20 files (≈ 40 KiB unpacked each) and 50 files of 4 KiB, deterministic. */
function makeInputs(dir) {
  if (existsSync(join(dir, '.complete'))) return;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const rnd = prng(5);
  const bytes = (n) => {
    const b = Buffer.alloc(n);
    for (let k = 0; k + 4 <= n; k += 4) b.writeUInt32LE(rnd(), k);
    return b;
  };
  for (let i = 0; i < PINS / 2; i++) {
    const members = [tarMember(`pkg-${i}/`, Buffer.alloc(0), 0o755, '5')];
    for (let f = 0; f < 20; f++)
      members.push(tarMember(`pkg-${i}/file-${f}.txt`, bytes(2048), f % 7 ? 0o644 : 0o755));
    writeFileSync(join(dir, `pkg-${i}.tar.gz`), gzipSync(Buffer.concat([...members, Buffer.alloc(1024)])));
    writeFileSync(join(dir, `file-${i}.txt`), bytes(4096));
  }
  writeFileSync(join(dir, '.complete'), '');
}

function serve(dir) {
  const files = new Map(readdirSync(dir).map((f) => [`/${f}`, readFileSync(join(dir, f))]));
  const server = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
}

function startServer(dir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.once('error', reject);
    child.stdout.once('data', (d) => resolve({ port: Number(String(d).trim()), child }));
  });
}

function manifest(port) {
  const lines = [];
  for (let i = 0; i < PINS / 2; i++) {
    lines.push(`[pins.pkg-${i}]\ntype = "tarball"\nurl = "http://127.0.0.1:${port}/pkg-${i}.tar.gz"\n`);
    lines.push(`[pins.file-${i}]\ntype = "url"\nurl = "http://127.0.0.1:${port}/file-${i}.txt"\n`);
  }
  return lines.join('\n');
}

/** Median wall time and max RSS of `runs` runs, `before()` run untimed ahead of each. */
function timeRuns(argv, before, runs = RUNS) {
  const results = [];
  for (let i = 0; i < runs; i++) {
    before();
    results.push(measureOnce(argv));
  }
  const walls = results.map((m) => m.wall).sort((a, b) => a - b);
  return {
    wall: walls[Math.floor(walls.length / 2)],
    min: walls[0],
    maxRssMiB: Math.max(...results.map((m) => m.maxRssKiB)) / 1024,
  };
}

export async function benchLock(work) {
  const base = join(work, 'lock');
  const inputs = join(base, 'inputs');
  makeInputs(inputs);
  const { port, child } = await startServer(inputs);
  try {
    const project = join(base, 'project');
    mkdirSync(project, { recursive: true });
    const m = join(project, 'pins.toml');
    const l = join(project, 'pins.lock');
    const root = join(base, 'cache');
    writeFileSync(m, manifest(port));
    const lock = [CLI, '--root', root, 'lock', '--manifest', m, '--lock', l];
    const rows = [
      [
        'cold: empty cache, no lockfile',
        timeRuns(lock, () => {
          rmSync(root, { recursive: true, force: true });
          rmSync(l, { force: true });
        }),
      ],
      ['warm cache, no lockfile (all 100 re-resolved)', timeRuns(lock, () => rmSync(l, { force: true }))],
      ['warm cache, lockfile current (no-op)', timeRuns(lock, () => {})],
      ['lock --check --offline (100 pins from cache)', timeRuns([...lock, '--check', '--offline'], () => {})],
    ];
    console.log(
      `\n## fetch-cache lock, ${PINS} pins (${PINS / 2} tarballs, ${PINS / 2} files) on loopback, whole process, median of ${RUNS}`,
    );
    console.log('| case | median (s) | min (s) | peak RSS (MiB) | target |');
    console.log('|---|---|---|---|---|');
    for (const [name, r] of rows) {
      const target = name.startsWith('warm') ? '< 1 s' : '';
      console.log(
        `| ${name} | ${r.wall.toFixed(3)} | ${r.min.toFixed(3)} | ${r.maxRssMiB.toFixed(0)} | ${target} |`,
      );
    }
    return rows;
  } finally {
    child.kill();
  }
}

if (process.argv[2] === '--serve') serve(process.argv[3]);
else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchLock(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));
}

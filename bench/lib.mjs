/**
 * Shared pieces of the benchmarks: deterministic input generation, timing a
 * command as a fresh process (wall time and peak RSS through bench/measure.py),
 * and printing a ratio table. Ratios compare us with the reference tool
 * measured in the same run on the same inputs.
 */

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The `fetch-cache` command as users start it (package.json `bin`). */
export const CLI = join(REPO, 'bin/fetch-cache');
export const NIX_ENV = {
  ...process.env,
  NIX_CONFIG: 'experimental-features = nix-command flakes\nsubstituters =',
};

/** A small deterministic PRNG (xorshift32), so inputs are the same on every machine. */
export function prng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** A tree of `count` small files (0–8 KiB) in nested directories, with executables and symlinks. */
export function makeSmallFilesTree(dir, count) {
  if (existsSync(join(dir, '.complete'))) return;
  const rnd = prng(42);
  mkdirSync(dir, { recursive: true });
  const buf = Buffer.alloc(8192);
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `d${i % 100}`, `e${(i >> 7) % 10}`);
    mkdirSync(sub, { recursive: true });
    const size = rnd() % 8192;
    for (let k = 0; k < size; k += 4) buf.writeUInt32LE(rnd(), k);
    const p = join(sub, `file-${i}.txt`);
    writeFileSync(p, buf.subarray(0, size));
    chmodSync(p, rnd() % 10 === 0 ? 0o755 : 0o644);
    if (i % 50 === 0) symlinkSync(`file-${i}.txt`, join(sub, `link-${i}`));
  }
  writeFileSync(join(dir, '.complete'), '');
}

/** One file of `bytes` bytes of deterministic pseudo-random content, written in 1 MiB steps. */
export function makeLargeFile(path, bytes) {
  if (existsSync(path)) return;
  mkdirSync(dirname(path), { recursive: true });
  const rnd = prng(7);
  const chunk = Buffer.alloc(1 << 20);
  const fd = openSync(`${path}.tmp`, 'w');
  for (let done = 0; done < bytes; done += chunk.length) {
    for (let k = 0; k < chunk.length; k += 4) chunk.writeUInt32LE(rnd(), k);
    writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
  }
  closeSync(fd);
  spawnSync('mv', [`${path}.tmp`, path]);
}

/** One timed run of `argv` through measure.py (stdout discarded): its JSON, plus the run's stderr. */
export function measureOnce(argv, env = process.env) {
  const r = spawnSync('python3', [join(REPO, 'bench/measure.py'), ...argv], { env, encoding: 'utf8' });
  const m = JSON.parse(r.stdout);
  if (m.code !== 0) throw new Error(`${argv.join(' ')} exited ${m.code}: ${r.stderr}`);
  return { ...m, stderr: r.stderr };
}

/** Median wall time (and every wall time, sorted) and max peak RSS of measureOnce results. */
export function summarise(results) {
  const walls = results.map((m) => m.wall).sort((a, b) => a - b);
  return {
    wall: walls[Math.floor(walls.length / 2)],
    walls,
    maxRssMiB: Math.max(...results.map((m) => m.maxRssKiB)) / 1024,
  };
}

/** Run `argv` `runs` times (after one warm-up run); median wall time and max peak RSS. */
export function measure(argv, { runs = 5, env = process.env } = {}) {
  const results = [];
  for (let i = 0; i <= runs; i++) {
    const m = measureOnce(argv, env);
    if (i > 0) results.push(m);
  }
  return summarise(results);
}

/**
 * Like `measure` for two commands, run alternately (a warm-up of each, then `runs` rounds of a, b), so
 * that a change in the machine's state (page cache, background load) during the run hits both sides.
 */
export function measureInterleaved(a, b, { runs = 5, envA = process.env, envB = process.env } = {}) {
  const ra = [];
  const rb = [];
  for (let i = 0; i <= runs; i++) {
    const ma = measureOnce(a, envA);
    const mb = measureOnce(b, envB);
    if (i > 0) {
      ra.push(ma);
      rb.push(mb);
    }
  }
  return [summarise(ra), summarise(rb)];
}

export function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export function printTable(title, rows) {
  console.log(`\n## ${title}`);
  console.log('| case | ours (s) | reference (s) | ratio ours/ref | our peak RSS (MiB) | target |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.ours.wall.toFixed(3)} | ${r.ref.wall.toFixed(3)} | ${(r.ours.wall / r.ref.wall).toFixed(2)} | ${r.ours.maxRssMiB.toFixed(0)} | ${r.target} |`,
    );
  }
}

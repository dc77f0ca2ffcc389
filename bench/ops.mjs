/**
 * Benchmark of the operations commands on a store of ≥ 2 GiB logical content:
 *  - `verify --all` throughput: NAR bytes rendered, re-hashed (every chunk BLAKE3, every NAR SHA-256) per
 *    second, from the command's own timing and from the wall clock of the process;
 *  - `gc` on that store with nothing to delete (mark and sweep only), then `gc --max-size` evicting about
 *    half of the paths (least recently used first) — its wall time and the bytes it freed.
 * The store holds 21 "releases" of one 100 MiB tree (400 files of 256 KiB; each release rewrites 5% of the
 * files), added with `fetch-cache add --name vN`: 2.1 GB of NAR, about 200 MB stored after dedup, like a
 * cache that keeps many versions of a source package. No reference tool has these commands, so the figures
 * are absolute (there is no ratio).
 * Run alone with `node bench/ops.mjs` (inputs in $BENCH_WORK, default .bench-work/; a fresh root each run).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI as BUILT_CLI, prng, REPO } from './lib.mjs';

const CLI = process.env.BENCH_CLI ?? BUILT_CLI;
const FILES = 400;
const FILE_BYTES = 256 * 1024;
const RELEASES = 21;
const CHANGED = Math.round(FILES * 0.05);

function fill(buf, rnd) {
  for (let k = 0; k < buf.length; k += 4) buf.writeUInt32LE(rnd(), k);
  return buf;
}

function cli(args, root) {
  const started = performance.now();
  const r = spawnSync(CLI, [...args, '--root', root], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const wall = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`fetch-cache ${args.join(' ')} failed: ${r.stderr}`);
  return { wall, stdout: r.stdout };
}

export async function benchOps(work) {
  const tree = join(work, 'ops-tree');
  const root = join(work, 'ops-root');
  rmSync(root, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  const rnd = prng(2024);
  const buf = Buffer.alloc(FILE_BYTES);
  if (!existsSync(join(tree, '.complete'))) {
    for (let i = 0; i < FILES; i++)
      writeFileSync(join(tree, `f${String(i).padStart(3, '0')}.bin`), fill(buf, rnd));
    writeFileSync(join(tree, '.complete'), '');
  }
  let addSeconds = 0;
  for (let v = 0; v < RELEASES; v++) {
    if (v > 0) {
      for (let k = 0; k < CHANGED; k++) {
        writeFileSync(
          join(tree, `f${String((v * 37 + k * 13) % FILES).padStart(3, '0')}.bin`),
          fill(buf, rnd),
        );
      }
    }
    addSeconds += cli(['add', tree, '--name', `release-${v}`], root).wall;
  }
  const stats = JSON.parse(cli(['stats', '--json'], root).stdout);
  const verify = cli(['verify', '--all', '--json'], root);
  const v = JSON.parse(verify.stdout);
  if (v.damaged.length !== 0) throw new Error('verify found damage in a fresh store');
  const gcClean = cli(['gc', '--json'], root);
  const gcEvict = cli(['gc', '--json', '--max-size', String(Math.floor(stats.storedBytes / 2))], root);
  const evicted = JSON.parse(gcEvict.stdout);
  const mb = (b) => b / 1e6;
  console.log('\n## Operations (verify, gc) on a store of many releases');
  console.log(
    `store: ${stats.paths} paths, ${mb(stats.logicalBytes).toFixed(0)} MB logical (NAR), ${mb(stats.storedBytes).toFixed(0)} MB stored, dedup ${stats.dedupRatio}, ${stats.chunks} chunks; built in ${addSeconds.toFixed(1)} s`,
  );
  console.log('| case | wall (s) | figure |');
  console.log('|---|---|---|');
  console.log(
    `| verify --all | ${verify.wall.toFixed(2)} | ${(mb(v.bytes) / (v.durationMs / 1000)).toFixed(0)} MB/s of NAR (command timing), ${(mb(v.bytes) / verify.wall).toFixed(0)} MB/s wall |`,
  );
  console.log(
    `| gc (nothing to delete) | ${gcClean.wall.toFixed(2)} | ${JSON.parse(gcClean.stdout).durationMs} ms in gc |`,
  );
  console.log(
    `| gc --max-size ${mb(Math.floor(stats.storedBytes / 2)).toFixed(0)}MB | ${gcEvict.wall.toFixed(2)} | ${evicted.evicted.length} paths evicted, ${mb(evicted.freedBytes).toFixed(0)} MB freed |`,
  );
  rmSync(root, { recursive: true, force: true });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchOps(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));
}

/**
 * Benchmark: `fetch-cache hash path` against `nix hash path` in the same run,
 * on (a) a tree of 20,000 small files and (b) one 1 GiB file. Prints the
 * wall-time ratio (target ≤ 1.0) and our peak RSS (target < 128 MiB).
 */

import { join } from 'node:path';
import {
  CLI,
  hasCommand,
  makeLargeFile,
  makeSmallFilesTree,
  measure,
  NIX_ENV,
  printTable,
  REPO,
} from './lib.mjs';

export function benchHashPath(work) {
  if (!hasCommand('nix')) {
    console.log('nix not installed: skipping hash-path benchmark (apt-get install nix-bin)');
    return [];
  }
  const tree = join(work, 'small-files');
  const big = join(work, 'large', 'one-gib.bin');
  makeSmallFilesTree(tree, 20_000);
  makeLargeFile(big, 1 << 30);
  const rows = [];
  for (const [name, path, runs] of [
    ['20,000 small files', tree, 7],
    ['1 GiB file', big, 3],
  ]) {
    const ref = measure(['nix', 'hash', 'path', '--type', 'sha256', path], { runs, env: NIX_ENV });
    const ours = measure(['node', CLI, 'hash', 'path', '--type', 'sha256', path], { runs });
    rows.push({ name, ours, ref, target: 'ratio ≤ 1.0, RSS < 128 MiB' });
  }
  printTable('hash path: fetch-cache vs nix hash path', rows);
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchHashPath(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));
}

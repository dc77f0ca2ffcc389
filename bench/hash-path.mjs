/**
 * Benchmark: `fetch-cache hash path` against `nix hash path` in the same run,
 * on (a) a tree of 20,000 small files and (b) one 1 GiB file. Prints the
 * wall-time ratio (target ≤ 1.0) and our peak RSS (target < 128 MiB), then
 * the start-up floor of each tool (`node -e 0`; Nix on one small file).
 */

import { join } from 'node:path';
import {
  CLI,
  hasCommand,
  makeLargeFile,
  makeSmallFilesTree,
  measure,
  measureInterleaved,
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
    ['20,000 small files', tree, 9],
    ['1 GiB file', big, 7],
  ]) {
    // Alternating runs, medians of each side.
    const [ref, ours] = measureInterleaved(
      ['nix', 'hash', 'path', '--type', 'sha256', path],
      [CLI, 'hash', 'path', '--type', 'sha256', path],
      { runs, envA: NIX_ENV },
    );
    rows.push({ name, ours, ref, target: 'ratio ≤ 1.0, RSS < 128 MiB' });
  }
  printTable('hash path: fetch-cache vs nix hash path (runs alternate; medians)', rows);
  for (const r of rows) {
    console.log(
      `${r.name}: ours ${r.ours.walls.map((w) => w.toFixed(3)).join(' ')} s; nix ${r.ref.walls.map((w) => w.toFixed(3)).join(' ')} s (each sorted)`,
    );
  }
  // What every Node.js start costs here, so the figures above can be read: a
  // set NODE_EXTRA_CA_CERTS makes Node load its certificate store at start.
  const floor = measure(['node', '-e', '0'], { runs: 7 });
  const nixFloor = measure(['nix', 'hash', 'path', '--type', 'sha256', join(REPO, 'package.json')], {
    runs: 7,
    env: NIX_ENV,
  });
  const note = process.env.NODE_EXTRA_CA_CERTS ? ' (NODE_EXTRA_CA_CERTS is set in this environment)' : '';
  console.log(
    `start-up floor: \`node -e 0\` ${(floor.wall * 1000).toFixed(0)} ms${note}; \`nix hash path\` of one file ${(nixFloor.wall * 1000).toFixed(0)} ms`,
  );
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchHashPath(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));
}

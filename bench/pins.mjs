/**
 * Many pins in one process: a manifest of 100 tarball pins, each a distinct real archive served on loopback
 * HTTP (the corpus of bench/corpus.json below 50 MB, and small npm packages from bench/pins.json to make up
 * 100), locked cold by our CLI (`fetch-cache lock`, whole process, empty root, default concurrency) against
 * the same URLs fetched by `nix-prefetch-url --unpack` one after another (what npins or niv users run) and
 * 4 at a time (`xargs -P4`), each into an empty chroot store; the three alternate (the order rotates every
 * round). Then warm: `lock` with no lockfile (every pin re-resolved from the cache) and `lock` with the
 * lockfile current. Every pin's narHash and store path in our lockfile are compared with Nix's (exit 1 on a
 * difference). BENCH_CLI and BENCH_ROUNDS (default 3 here) as in bench/corpus.mjs.
 *
 * `node bench/pins.mjs` or `BENCH_ONLY=pins node bench/run.mjs`.
 */

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cliCommand,
  cliDescription,
  ensureArchives,
  loadAverage,
  loadCorpus,
  nix32ToSri,
  startServer,
} from './corpus.mjs';
import { measureOnce, NIX_ENV, REPO } from './lib.mjs';

const PINS = 100;
const LARGEST = 50e6;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARM_RUNS = 5;

/** The 100 archives: the corpus below 50 MB, then npm packages from bench/pins.json, all distinct. */
function pinArchives(work) {
  const corpus = loadCorpus(work).filter((a) => a.size < LARGEST);
  const { npm } = JSON.parse(readFileSync(join(REPO, 'bench/pins.json'), 'utf8'));
  const extra = npm.slice(0, PINS - corpus.length).map((e) => ({ ...e, source: 'npm' }));
  const dir = join(work, 'corpus');
  const all = [...corpus, ...ensureArchives(dir, extra)];
  if (all.length !== PINS || new Set(all.map((a) => a.sha256)).size !== PINS) {
    throw new Error(`expected ${PINS} distinct archives, have ${all.length}`);
  }
  return all;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function summary(runs) {
  const walls = runs.map((r) => r.wall);
  return {
    wall: median(walls),
    min: Math.min(...walls),
    rssMiB: Math.max(...runs.map((r) => r.maxRssKiB)) / 1024,
  };
}

export async function benchPins(work) {
  const archives = pinArchives(work);
  const { port, child } = await startServer(join(work, 'corpus'));
  const failures = [];
  try {
    const project = join(work, 'pins');
    rmSync(project, { recursive: true, force: true });
    mkdirSync(project, { recursive: true });
    const urls = archives.map((a) => `http://127.0.0.1:${port}/${a.name}`);
    const manifest = join(project, 'pins.toml');
    const lock = join(project, 'pins.lock');
    const urlFile = join(project, 'urls.txt');
    writeFileSync(
      manifest,
      urls
        .map((u, i) => `[pins.p${String(i).padStart(3, '0')}]\ntype = "tarball"\nurl = "${u}"\n`)
        .join('\n'),
    );
    writeFileSync(urlFile, `${urls.join('\n')}\n`);
    const root = join(project, 'root');
    const ours = [...cliCommand(), '--root', root, 'lock', '--manifest', manifest, '--lock', lock];
    const nix = (parallel) => () => {
      const d = mkdtempSync(join(tmpdir(), 'fc-bench-pins-'));
      try {
        // Nix 2.8 processes that start together on a new store race to create its database ("schema is
        // corrupt"), so the store is made first, untimed, for both the sequential and the parallel runs.
        const init = spawnSync('nix-store', ['--store', join(d, 'store'), '--init'], {
          env: { ...NIX_ENV, HOME: d },
          encoding: 'utf8',
        });
        if (init.status !== 0) throw new Error(`nix-store --init failed: ${init.stderr}`);
        const out = join(d, 'stdout');
        const m = measureOnce(
          [
            '--stdout',
            out,
            'env',
            `HOME=${d}`,
            'xargs',
            `-P${parallel}`,
            '-n1',
            '-a',
            urlFile,
            'nix-prefetch-url',
            '--store',
            join(d, 'store'),
            '--unpack',
            '--name',
            'source',
          ],
          NIX_ENV,
        );
        return { ...m, out: readFileSync(out, 'utf8') };
      } finally {
        rmSync(d, { recursive: true, force: true });
      }
    };
    const cold = () => {
      rmSync(root, { recursive: true, force: true });
      rmSync(lock, { force: true });
      return measureOnce(ours);
    };
    const runs = { ours: [], seq: [], par: [] };
    const tools = [
      ['ours', cold],
      ['seq', nix(1)],
      ['par', nix(4)],
    ];
    console.log(`\n# pins benchmark: ${PINS} tarball pins on loopback, ${ROUNDS} rounds, order rotating`);
    console.log(`CLI under test: ${cliDescription()}`);
    console.log(`load average at start: ${loadAverage()}`);
    for (let i = 0; i < ROUNDS; i++) {
      for (let k = 0; k < tools.length; k++) {
        const [who, run] = tools[(i + k) % tools.length];
        const m = run();
        runs[who].push(m);
        process.stderr.write(`  round ${i + 1} ${who}: ${m.wall.toFixed(2)} s\n`);
      }
    }
    // The last cold lock left its root and lockfile: check them against Nix's sequential answers.
    const locked = JSON.parse(readFileSync(lock, 'utf8')).pins;
    const nixHashes = runs.seq[0].out.trim().split('\n');
    archives.forEach((a, i) => {
      const pin = locked[`p${String(i).padStart(3, '0')}`];
      const want = nix32ToSri(nixHashes[i]);
      if (pin?.narHash !== want) {
        failures.push(`HASH MISMATCH ${a.name}: lock ${pin?.narHash}, nix-prefetch-url --unpack ${want}`);
      }
    });
    const warm = (before) => {
      const r = [];
      for (let i = 0; i < WARM_RUNS; i++) {
        before();
        r.push(measureOnce(ours));
      }
      return summary(r);
    };
    const reresolve = warm(() => rmSync(lock, { force: true }));
    const noop = warm(() => {});
    const o = summary(runs.ours);
    const s = summary(runs.seq);
    const p = summary(runs.par);
    console.log(`\n## ${PINS} tarball pins, cold (median of ${ROUNDS}; warm: median of ${WARM_RUNS})`);
    console.log('| case | median (s) | min (s) | peak RSS (MiB) | ours/this | target |');
    console.log('|---|---|---|---|---|---|');
    const row = (name, r, ratio = '', target = '') =>
      console.log(
        `| ${name} | ${r.wall.toFixed(3)} | ${r.min.toFixed(3)} | ${r.rssMiB.toFixed(0)} | ${ratio} | ${target} |`,
      );
    row('fetch-cache lock, empty root (concurrency 8)', o);
    row('nix-prefetch-url --unpack, one after another', s, (o.wall / s.wall).toFixed(2));
    row('nix-prefetch-url --unpack, 4 at a time', p, (o.wall / p.wall).toFixed(2));
    const mark = (r) => (r.wall < 1 ? 'ok' : '**MISS**');
    row('warm lock, no lockfile (100 re-resolved)', reresolve, '', `< 1 s: ${mark(reresolve)}`);
    row('warm lock, lockfile current', noop, '', `< 1 s: ${mark(noop)}`);
    const mb = archives.reduce((n, a) => n + a.size, 0) / 1e6;
    const files = archives.reduce((n, a) => n + a.files, 0);
    console.log(
      `(${mb.toFixed(0)} MB of archives, ${files} files; RSS of xargs rows is the largest single nix-prefetch-url)`,
    );
    console.log(`load average at end: ${loadAverage()}`);
    return { ours: o, seq: s, par: p, reresolve, noop };
  } finally {
    child.kill();
    if (failures.length > 0) {
      console.error(`\n${failures.length} FAILURE(S):\n${failures.join('\n')}`);
      process.exitCode = 1;
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchPins(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));
}

/**
 * The shared deployment against the embedded default and nginx, in the same
 * run: a store on `postgres://` (records) + `s3://` (pack objects), created
 * for the run (a database and a bucket of its own, dropped at the end), the
 * default store (a level root), and nginx serving `nix copy --to file://`
 * of the same paths (bench/serve.mjs makes the inputs and starts nginx and wrk):
 *  - narinfo p50 on one keep-alive connection (wrk -c1 over 20 narinfos, as
 *    served once they are in memory), and the first request of each narinfo
 *    after the server starts (curl, one connection: a database read each);
 *  - the 128 MiB NAR, one connection: with a cold near cache (a fresh
 *    `--cache-root`, one curl download per fresh server, median of 3: every
 *    chunk comes from S3) against nginx (target ≥ 0.3×), and with the near
 *    cache warm (wrk -c1 on the server that downloaded it) against the level
 *    root (target ≥ 1/1.2× its throughput, i.e. within 1.2×);
 *  - `fetch tarball` of bench/tarball.mjs's archive over loopback HTTP into a
 *    fresh shared store against a fresh level root (median of 3, alternating);
 *  - the pack objects that fetch wrote (listed: count and bytes, so PUTs
 *    per GiB ingested; target ≤ 64, one per 16 MiB);
 *  - `gc` on what that fetch stored, per chunk: right after it (compaction
 *    merges the fetch's packs), again (nothing to do: mark, list, compare),
 *    then `--max-size 0` (every path evicted, every chunk swept).
 * Needs the servers the tests use, named as they name them
 * (scripts/services/pg-up.sh and s3-rgw-up.sh print the lines):
 *   FETCH_CACHE_TEST_POSTGRES=… FETCH_CACHE_TEST_S3=… FETCH_CACHE_TEST_S3_ACCESS_KEY=… \
 *   FETCH_CACHE_TEST_S3_SECRET_KEY=… node bench/scale.mjs
 * or `BENCH_ONLY=scale npm run bench`; skipped with a message without them.
 * Loopback servers on one host: compare the figures with each other, not with
 * a cloud object store (whose first byte takes 10–30 ms).
 */

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CLI, hasCommand, measureOnce, REPO, summarise } from './lib.mjs';
import { freePort, makeInputs, populate, startNginx, startOurs, urls, waitFor, wrk } from './serve.mjs';
import { makeSourceTarball } from './tarball.mjs';

const POINT_SECONDS = Number(process.env.BENCH_SERVE_SECONDS ?? 10);
const RUNS = 3;
const NARINFOS = 20;

function run(args, env) {
  const r = spawnSync(CLI, args, { encoding: 'utf8', env, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`fetch-cache ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** curl over one connection: seconds per transfer of `paths` in turn, and bytes/s of each. */
function curl(base, paths) {
  const args = ['-s', '-w', '%{time_total} %{speed_download} %{http_code}\\n'];
  for (const p of paths) args.push('-o', '/dev/null', `${base}${p}`);
  const r = spawnSync('curl', args, { encoding: 'utf8' });
  const rows = r.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(' '));
  if (r.status !== 0 || rows.some((x) => x[2] !== '200')) throw new Error(`curl failed: ${r.stdout}`);
  return rows.map(([t, speed]) => ({ seconds: Number(t), bytesPerSec: Number(speed) }));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The run's servers: a fresh database per `store()` and one bucket, all removed by `close()`. */
async function sharedStores() {
  const dist = (p) => import(join(REPO, 'dist', p));
  const { default: postgres } = await import('postgres');
  const { S3Client } = await dist('storage/s3.js');
  const server = process.env.FETCH_CACHE_TEST_POSTGRES;
  const endpoint = process.env.FETCH_CACHE_TEST_S3;
  const region = process.env.FETCH_CACHE_TEST_S3_REGION ?? 'us-east-1';
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: process.env.FETCH_CACHE_TEST_S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: process.env.FETCH_CACHE_TEST_S3_SECRET_KEY,
  };
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  const s3 = new S3Client({
    endpoint,
    region,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  });
  const bucket = `fc-bench-scale-${process.pid}-${randomBytes(3).toString('hex')}`;
  await s3.createBucket(bucket);
  const databases = [];
  return {
    env,
    /** `--store` and `--blob-store` of a new, migrated shared store. */
    async store() {
      const name = `fc_scale_${process.pid}_${databases.length}`;
      await admin.unsafe(`create database ${name}`);
      databases.push(name);
      const u = new URL(server);
      u.pathname = `/${name}`;
      const blob = `s3://${bucket}/${name}?endpoint=${encodeURIComponent(endpoint)}&region=${region}`;
      const args = ['--store', u.href, '--blob-store', blob];
      run([...args, 'migrate'], env);
      return args;
    },
    /** Pack objects (and their bytes) in the bucket under the prefix of the store `args` names. */
    async packObjects(args) {
      const prefix = new URL(args[3]).pathname.slice(1);
      let count = 0;
      let bytes = 0;
      for await (const o of s3.listObjects(bucket, `${prefix}/`)) {
        count++;
        bytes += o.size;
      }
      return { count, bytes };
    },
    async close() {
      for (const name of databases) await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
      const keys = [];
      for await (const o of s3.listObjects(bucket, '')) keys.push(o.key);
      if (keys.length > 0) await s3.deleteObjects(bucket, keys);
      await s3.close();
    },
  };
}

/** The serve half: narinfo latency and the 128 MiB NAR on every server. */
async function serveFigures(work, shared) {
  const inputs = makeInputs(join(work, 'serve-inputs'));
  const { root, files, paths } = populate(work, inputs);
  const all = [...inputs.smallFiles, inputs.tree, inputs.large];
  const { narinfos: allNarinfos, nars } = urls(files, paths);
  const narinfos = allNarinfos.slice(0, NARINFOS);
  const large = nars.at(-1);
  const store = await shared.store();
  for (const p of [...all.slice(0, NARINFOS), inputs.large]) run([...store, 'add', p], shared.env);
  const nearRoots = [];
  const withNear = () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-bench-near-'));
    nearRoots.push(dir);
    return [...store, '--cache-root', dir];
  };
  /** Figures of one server: first narinfo requests, then wrk on narinfos. */
  const narinfoFigures = async (server) => {
    const first = curl(server.base, narinfos).map((x) => x.seconds);
    await wrk(server.base, narinfos, work, { connections: 1, seconds: 2 });
    const steady = await wrk(server.base, narinfos, work, { connections: 1, seconds: POINT_SECONDS });
    return { first: median(first), p50: steady.p50 };
  };
  const results = {};
  try {
    for (const [name, start] of [
      ['nginx', () => startNginx(files, work)],
      ['level', () => startOurs(root)],
    ]) {
      const server = await start();
      try {
        const r = await narinfoFigures(server);
        r.once = median([0, 1, 2].map(() => curl(server.base, [large])[0].bytesPerSec));
        r.steady = (
          await wrk(server.base, [large], work, { connections: 1, seconds: POINT_SECONDS })
        ).mibPerSec;
        results[name] = r;
      } finally {
        await server.stop();
      }
    }
    const cold = [];
    let server;
    for (let i = 0; i < RUNS; i++) {
      await server?.stop();
      server = await startOurs(undefined, withNear(), shared.env);
      cold.push(curl(server.base, [large])[0].bytesPerSec);
    }
    try {
      const r = await narinfoFigures(server);
      r.once = median(cold);
      r.steady = (
        await wrk(server.base, [large], work, { connections: 1, seconds: POINT_SECONDS })
      ).mibPerSec;
      results.shared = r;
    } finally {
      await server.stop();
    }
  } finally {
    for (const d of nearRoots) rmSync(d, { recursive: true, force: true });
  }
  return results;
}

/** The fetch half: `fetch tarball` into fresh stores, then gc of what the last shared one holds. */
async function fetchFigures(work, shared) {
  const dir = join(work, 'tarball');
  mkdirSync(dir, { recursive: true });
  const archive = makeSourceTarball(dir);
  const port = await freePort();
  const http = spawn(
    'python3',
    ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir],
    {
      stdio: 'ignore',
    },
  );
  const roots = [];
  try {
    await waitFor(`http://127.0.0.1:${port}/`);
    const url = `http://127.0.0.1:${port}/${basename(archive)}`;
    const level = [];
    const pg = [];
    let store;
    let root;
    for (let i = 0; i < RUNS; i++) {
      root = mkdtempSync(join(tmpdir(), 'fc-bench-scale-root-'));
      roots.push(root);
      level.push(measureOnce([CLI, '--root', root, '--quiet', 'fetch', 'tarball', url]));
      store = await shared.store();
      pg.push(measureOnce([CLI, ...store, '--quiet', 'fetch', 'tarball', url], shared.env));
    }
    /** gc three times: the first after the fetch (compaction of its packs), again (nothing to do), then evicting everything. */
    const gc = (args, env) => {
      const json = (extra = []) => JSON.parse(run([...args, 'gc', ...extra, '--json'], env));
      const chunks = JSON.parse(run([...args, 'stats', '--json'], env)).chunks;
      const first = json();
      const again = json();
      const all = json(['--max-size', '0']);
      return {
        chunks,
        first: first.durationMs,
        moved: first.compacted.moved,
        again: again.durationMs,
        sweep: all.durationMs,
        swept: all.deleted.chunks,
      };
    };
    const packObjects = await shared.packObjects(store);
    return {
      level: summarise(level),
      shared: summarise(pg),
      gcLevel: gc(['--root', root], process.env),
      gcShared: gc(store, shared.env),
      packObjects,
    };
  } finally {
    http.kill();
    for (const d of roots) rmSync(d, { recursive: true, force: true });
  }
}

export async function benchScale(work = join(REPO, '.bench-work')) {
  const missing = ['FETCH_CACHE_TEST_POSTGRES', 'FETCH_CACHE_TEST_S3', 'FETCH_CACHE_TEST_S3_ACCESS_KEY'].find(
    (v) => !process.env[v],
  );
  if (missing !== undefined) {
    console.log(
      `\n## scale: skipped (${missing} is unset: start the servers with scripts/services/pg-up.sh DIR and s3-rgw-up.sh DIR and export what they print)`,
    );
    return undefined;
  }
  for (const cmd of ['wrk', 'nginx', 'nix', 'curl']) {
    if (!hasCommand(cmd)) {
      console.log(`\n## scale: skipped (${cmd} not installed; apt-get install wrk nginx nix-bin curl)`);
      return undefined;
    }
  }
  mkdirSync(work, { recursive: true });
  const shared = await sharedStores();
  let s;
  let f;
  try {
    s = await serveFigures(work, shared);
    f = await fetchFigures(work, shared);
  } finally {
    await shared.close();
  }
  const us = (x) => `${(x * 1e6).toFixed(0)} µs`;
  const mib = (bytesPerSec) => (bytesPerSec / 2 ** 20).toFixed(0);
  console.log('\n## scale: postgres + s3 (near cache cold / warm) vs the level root and nginx');
  console.log('| measure | postgres + s3 | level root | nginx | ratio | target |');
  console.log('|---|---|---|---|---|---|');
  console.log(
    `| narinfo, first request each (median of ${NARINFOS}) | ${us(s.shared.first)} | ${us(s.level.first)} | ${us(s.nginx.first)} | ${(s.shared.first / s.level.first).toFixed(2)} vs level | — |`,
  );
  console.log(
    `| narinfo p50, wrk -c1 | ${us(s.shared.p50)} | ${us(s.level.p50)} | ${us(s.nginx.p50)} | ${(s.shared.p50 / s.level.p50).toFixed(2)} vs level | ≤ 1.2 |`,
  );
  console.log(
    `| 128 MiB NAR, near cache cold, one download (MiB/s, median of ${RUNS}) | ${mib(s.shared.once)} | ${mib(s.level.once)} | ${mib(s.nginx.once)} | ${(s.shared.once / s.nginx.once).toFixed(2)} vs nginx | ≥ 0.3 |`,
  );
  console.log(
    `| 128 MiB NAR, near cache warm, wrk -c1 ${POINT_SECONDS} s (MiB/s) | ${s.shared.steady.toFixed(0)} | ${s.level.steady.toFixed(0)} | ${s.nginx.steady.toFixed(0)} | ${(s.level.steady / s.shared.steady).toFixed(2)} level/warm | ≤ 1.2 |`,
  );
  console.log(
    `| fetch tarball (s, median of ${RUNS}; peak RSS MiB) | ${f.shared.wall.toFixed(2)} (${f.shared.maxRssMiB.toFixed(0)}) | ${f.level.wall.toFixed(2)} (${f.level.maxRssMiB.toFixed(0)}) | — | ${(f.shared.wall / f.level.wall).toFixed(2)} vs level | — |`,
  );
  const perGiB = (f.packObjects.count * 2 ** 30) / f.packObjects.bytes;
  console.log(
    `objects the shared fetch wrote: ${f.packObjects.count} (${(f.packObjects.bytes / 2 ** 20).toFixed(0)} MiB), ${perGiB.toFixed(0)} per GiB ingested (target ≤ 64: 1 PUT per 16 MiB)`,
  );
  const per = (ms, n) => `${((ms * 1000) / n).toFixed(1)} µs/chunk`;
  for (const [name, g] of [
    ['postgres + s3', f.gcShared],
    ['level root', f.gcLevel],
  ]) {
    console.log(
      `gc on ${name}, ${g.chunks} chunks: after the fetch ${g.first} ms (${per(g.first, g.chunks)}; ${g.moved} chunks moved by compaction), again ${g.again} ms (${per(g.again, g.chunks)}), --max-size 0 sweeping ${g.swept} chunks ${g.sweep} ms (${per(g.sweep, g.swept)})`,
    );
  }
  return { serve: s, fetch: f };
}

if (import.meta.url === `file://${process.argv[1]}`)
  await benchScale(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));

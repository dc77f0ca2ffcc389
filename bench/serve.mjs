/**
 * Benchmark of `fetch-cache serve` against nginx serving the same store paths
 * as static files, in the same run:
 *  - the paths: 200 small files (1–64 KiB, one path each), a 2,000-file tree
 *    and a 128 MiB file, added to a fetch-cache root and, with
 *    `nix-store --add` (same store paths), to a Nix chroot store that
 *    `nix copy --to file://…?compression=none` writes out for nginx;
 *  - narinfo latency p50/p99 on one keep-alive connection (wrk -c1, the 200
 *    narinfos in turn; target p50 ≤ 1.5× nginx);
 *  - NAR throughput at 1, 4 and 16 connections for the large file and for the
 *    tree (target ≥ 0.5× nginx at every concurrency);
 *  - peak RSS of the server with 64 concurrent NAR downloads (target < 256 MiB);
 *  - mixed load (narinfos, NARs, ranges, nix-cache-info) for
 *    BENCH_SERVE_MIXED_SECONDS (default 60) with zero errors.
 * Both servers run one process/worker (Node is single-threaded; nginx
 * `worker_processes 1`). Needs `wrk`, `nginx` and `nix` (Debian packages).
 * Run alone with `node bench/serve.mjs` or from bench/run.mjs via
 * `benchServe(work)`. BENCH_SERVE_SECONDS sets each point's duration (default 10).
 */

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  CLI as BUILT_CLI,
  hasCommand,
  makeLargeFile,
  makeSmallFilesTree,
  NIX_ENV,
  prng,
  REPO,
} from './lib.mjs';

/** The CLI under test; `BENCH_CLI` points at the bin/fetch-cache of a snapshot (bin/ and dist/) when the tree is being rebuilt meanwhile. */
const CLI = process.env.BENCH_CLI ?? BUILT_CLI;
const POINT_SECONDS = Number(process.env.BENCH_SERVE_SECONDS ?? 10);
const MIXED_SECONDS = Number(process.env.BENCH_SERVE_MIXED_SECONDS ?? 60);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Inputs once per work dir: small files, a tree, a large file. */
export function makeInputs(dir) {
  const small = join(dir, 'small');
  if (!existsSync(join(small, '.complete'))) {
    mkdirSync(small, { recursive: true });
    const rnd = prng(99);
    for (let i = 0; i < 200; i++) {
      const size = 1024 + (rnd() % (63 * 1024));
      const buf = Buffer.alloc(size);
      for (let k = 0; k + 4 <= size; k += 4) buf.writeUInt32LE(rnd(), k);
      writeFileSync(join(small, `blob-${String(i).padStart(3, '0')}.bin`), buf);
    }
    writeFileSync(join(small, '.complete'), '');
  }
  const tree = join(dir, 'tree');
  makeSmallFilesTree(tree, 2000);
  const large = join(dir, 'large.bin');
  makeLargeFile(large, 128 << 20);
  const smallFiles = readdirSync(small)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => join(small, f));
  return { smallFiles, tree, large };
}

/** Our root and Nix's file:// cache over the same store paths; returns the store paths. */
export function populate(work, inputs) {
  const root = join(work, 'serve-root');
  const nixStore = join(work, 'serve-nix-store');
  const files = join(work, 'serve-nginx');
  const marker = join(work, 'serve-populated.json');
  if (existsSync(marker)) return { root, files, ...JSON.parse(readFileSync(marker, 'utf8')) };
  for (const d of [root, nixStore, files]) rmSync(d, { recursive: true, force: true });
  const all = [...inputs.smallFiles, inputs.tree, inputs.large];
  const ours = all.map((p) => run(CLI, ['--root', root, 'add', p]).trim());
  const theirs = run('nix-store', ['--store', nixStore, '--add', ...all], { env: NIX_ENV })
    .trim()
    .split('\n');
  if (JSON.stringify(ours) !== JSON.stringify(theirs))
    throw new Error('fetch-cache and Nix disagree on store paths');
  run('nix', ['copy', '--store', nixStore, '--to', `file://${files}?compression=none`, ...theirs], {
    env: NIX_ENV,
  });
  rmSync(nixStore, { recursive: true, force: true });
  const paths = theirs;
  writeFileSync(marker, JSON.stringify({ paths }));
  return { root, files, paths };
}

/** narinfo and NAR URLs (from the narinfos nginx serves; ours name NARs the same way). */
export function urls(files, paths) {
  const narinfos = [];
  const nars = [];
  for (const p of paths) {
    const hash = p.slice('/nix/store/'.length, '/nix/store/'.length + 32);
    narinfos.push(`/${hash}.narinfo`);
    const text = readFileSync(join(files, `${hash}.narinfo`), 'utf8');
    nars.push(`/${/^URL: (.*)$/m.exec(text)[1]}`);
  }
  return { narinfos, nars };
}

const LUA = `
local paths = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  i = math.random(#paths)
end
function request()
  i = i % #paths + 1
  local p = paths[i]
  local sp = p:find(' ', 1, true)
  if sp then return wrk.format('GET', p:sub(1, sp - 1), { Range = p:sub(sp + 1) }) end
  return wrk.format('GET', p)
end
`;

function parseWrk(out) {
  const unit = (v, u) => Number(v) * ({ us: 1e-6, ms: 1e-3, s: 1 }[u] ?? 1);
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    return m ? unit(m[1], m[2]) : Number.NaN;
  };
  const bytes = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const mult = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
  const reqs = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    p50: pct(50),
    p99: pct(99),
    mibPerSec: bytes ? (Number(bytes[1]) * mult[bytes[2]]) / 2 ** 20 : 0,
    reqPerSec: reqs ? Number(reqs[1]) : 0,
    errors:
      (errors ? errors.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
  };
}

export async function wrk(base, list, work, { connections, seconds }) {
  const listFile = join(work, `wrk-list-${connections}-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(listFile, `${list.join('\n')}\n`);
  const script = join(work, 'wrk-paths.lua');
  writeFileSync(script, LUA);
  const threads = Math.min(connections, 2);
  const out = await new Promise((resolve, reject) => {
    const child = spawn(
      'wrk',
      [
        '-t',
        String(threads),
        '-c',
        String(connections),
        '-d',
        `${seconds}s`,
        '--latency',
        '--timeout',
        '30s',
        '-s',
        script,
        base,
        '--',
        listFile,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '';
    child.stdout.on('data', (c) => {
      text += c;
    });
    child.stderr.on('data', (c) => {
      text += c;
    });
    child.on('close', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)),
    );
  });
  rmSync(listFile, { force: true });
  return parseWrk(out);
}

export async function waitFor(url) {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up`);
}

export function stopChild(child, signal) {
  return new Promise((resolve) => {
    child.once('close', resolve);
    child.kill(signal);
  });
}

/** `fetch-cache serve` on a free port over the store `storeArgs` names (default: the root `root`). */
export async function startOurs(root, storeArgs = ['--root', root], env = process.env) {
  const port = await freePort();
  const child = spawn(CLI, [...storeArgs, 'serve', '--bind', `127.0.0.1:${port}`, '--quiet'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/nix-cache-info`);
  return {
    base,
    pid: child.pid,
    stop: () => stopChild(child, 'SIGTERM'),
  };
}

export async function startNginx(files, work) {
  const port = await freePort();
  const prefix = join(work, 'nginx');
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off; worker_processes 1; pid ${prefix}/nginx.pid; error_log ${prefix}/logs/error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000; keepalive_timeout 65;
  types { text/x-nix-narinfo narinfo; application/x-nix-nar nar; text/x-nix-cache-info nix-cache-info; }
  default_type application/octet-stream;
  client_body_temp_path ${prefix}/tmp; proxy_temp_path ${prefix}/tmp; fastcgi_temp_path ${prefix}/tmp; uwsgi_temp_path ${prefix}/tmp; scgi_temp_path ${prefix}/tmp;
  server { listen 127.0.0.1:${port}; root ${files}; } }
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/nix-cache-info`);
  return {
    base,
    pid: child.pid,
    stop: () => stopChild(child, 'SIGQUIT'),
  };
}

function peakRssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

export async function benchServe(work = join(REPO, '.bench-work')) {
  for (const cmd of ['wrk', 'nginx', 'nix', 'nix-store']) {
    if (!hasCommand(cmd)) {
      console.log(`\n## serve: skipped (${cmd} not installed; apt-get install wrk nginx nix-bin)`);
      return undefined;
    }
  }
  mkdirSync(work, { recursive: true });
  const inputs = makeInputs(join(work, 'serve-inputs'));
  const { root, files, paths } = populate(work, inputs);
  const { narinfos, nars } = urls(files, paths);
  const largeNar = [nars.at(-1)];
  const treeNar = [nars.at(-2)];
  const results = {};
  for (const [name, start] of [
    ['nginx', () => startNginx(files, work)],
    ['ours', () => startOurs(root)],
  ]) {
    const server = await start();
    try {
      const r = {};
      await wrk(server.base, narinfos, work, { connections: 1, seconds: 2 }); // warm-up
      r.narinfo = await wrk(server.base, narinfos, work, { connections: 1, seconds: POINT_SECONDS });
      for (const c of [1, 4, 16]) {
        r[`large-c${c}`] = await wrk(server.base, largeNar, work, { connections: c, seconds: POINT_SECONDS });
        r[`tree-c${c}`] = await wrk(server.base, treeNar, work, { connections: c, seconds: POINT_SECONDS });
      }
      r.c64 = await wrk(server.base, [...largeNar, ...treeNar, ...nars.slice(0, 50)], work, {
        connections: 64,
        seconds: POINT_SECONDS,
      });
      r.peakRssMiB = peakRssMiB(server.pid);
      const mixed = [
        ...narinfos,
        ...nars.slice(0, 200),
        ...treeNar,
        ...largeNar,
        '/nix-cache-info',
        `${nars[0]} bytes=100-4000`,
        `${largeNar[0]} bytes=50000000-`,
      ];
      r.mixed = await wrk(server.base, mixed, work, { connections: 16, seconds: MIXED_SECONDS });
      results[name] = r;
    } finally {
      await server.stop();
    }
  }
  const o = results.ours;
  const n = results.nginx;
  const fmtUs = (s) => `${(s * 1e6).toFixed(0)} µs`;
  console.log('\n## serve: fetch-cache serve vs nginx (static `nix copy --to file://…?compression=none`)');
  console.log('| measure | ours | nginx | ratio | target |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| narinfo p50, 1 connection | ${fmtUs(o.narinfo.p50)} | ${fmtUs(n.narinfo.p50)} | ${(o.narinfo.p50 / n.narinfo.p50).toFixed(2)} | ≤ 1.5 |`,
  );
  console.log(
    `| narinfo p99, 1 connection | ${fmtUs(o.narinfo.p99)} | ${fmtUs(n.narinfo.p99)} | ${(o.narinfo.p99 / n.narinfo.p99).toFixed(2)} | — |`,
  );
  for (const kind of ['large', 'tree']) {
    for (const c of [1, 4, 16]) {
      const k = `${kind}-c${c}`;
      console.log(
        `| NAR ${kind === 'large' ? '128 MiB file' : '2,000-file tree'}, ${c} conn (MiB/s) | ${o[k].mibPerSec.toFixed(0)} | ${n[k].mibPerSec.toFixed(0)} | ${(o[k].mibPerSec / n[k].mibPerSec).toFixed(2)} | ≥ 0.5 |`,
      );
    }
  }
  console.log(
    `| peak RSS after 64 concurrent NAR downloads (MiB) | ${o.peakRssMiB.toFixed(0)} | ${n.peakRssMiB.toFixed(0)} | — | < 256 |`,
  );
  console.log(
    `| mixed load ${MIXED_SECONDS} s, 16 conn: req/s | ${o.mixed.reqPerSec.toFixed(0)} | ${n.mixed.reqPerSec.toFixed(0)} | ${(o.mixed.reqPerSec / n.mixed.reqPerSec).toFixed(2)} | — |`,
  );
  console.log(`| mixed load errors (socket + non-2xx) | ${o.mixed.errors} | ${n.mixed.errors} | — | 0 |`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`)
  await benchServe(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));

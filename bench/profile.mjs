/**
 * Where the time of one small fetch goes: runs `fetch tarball URL` (or `fetch url`) of one corpus archive
 * (bench/corpus.json, default typescript-5.6.3.tgz) served on loopback HTTP, into an empty root, under
 * `node --cpu-prof`, and sums the profile's samples by what they were doing: idle, GC, module loading,
 * gunzip, hashing, LevelDB, HTTP, tar parsing, blob and castore code, file I/O. A sample with a module
 * loader anywhere on its stack is module loading; any other is charged to the innermost frame of its stack
 * that names one of the others (so gunzip called from our code is gunzip);
 * then the top functions by self time and the idle gaps over 10 ms, in order.
 *
 * It runs the unbundled CLI (dist/cli/main.js, so that frames name their source files) with the flags the
 * launcher gives `fetch`; BENCH_CLI may name another checkout's bin/fetch-cache (its dist/ is used).
 *
 * `node bench/profile.mjs [archive-name] [tarball|url]`.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cliCommand, loadCorpus, startServer } from './corpus.mjs';
import { REPO } from './lib.mjs';

/** A frame of Node's module loaders (ours and Node's own lazily loaded internals: resolve, compile, link, evaluate). */
const loading = (f) =>
  f.url.startsWith('node:internal/modules/') ||
  f.functionName === 'compileForInternalLoader' ||
  f.functionName === 'requireBuiltin';

/** [category, test on a call frame]; the first that matches the innermost frame possible wins. */
const CATEGORIES = [
  ['gunzip (node:zlib)', (f) => f.url === 'node:zlib' || f.url.startsWith('node:internal/zlib')],
  ['xz (lzma-native)', (f) => f.url.includes('lzma-native')],
  [
    'hashing (BLAKE3, SHA-256)',
    (f) =>
      f.url.includes('blake-hash') ||
      f.url.startsWith('node:internal/crypto') ||
      f.url.endsWith('/hashing.js'),
  ],
  [
    'LevelDB (classic-level, storage/)',
    (f) => /classic-level|abstract-level|level-transcoder|memory-level|\/storage\//.test(f.url),
  ],
  [
    'HTTP (node:http, undici, http.js)',
    (f) =>
      f.url.includes('undici') ||
      f.url.startsWith('node:_http') ||
      f.url === 'node:http' ||
      f.url === 'node:https' ||
      f.url.endsWith('/fetchers/http.js'),
  ],
  ['tar parsing (fetchers/archive/)', (f) => f.url.includes('/fetchers/archive/')],
  ['blob writing (blob/)', (f) => f.url.includes('/dist/blob/')],
  ['castore ingest, directories (castore/, directory/)', (f) => /\/dist\/(castore|directory)\//.test(f.url)],
  ['NAR hash / render (nar-render/)', (f) => f.url.includes('/dist/nar-render/')],
  ['path info, fetch index (pathinfo/, fetchers/)', (f) => /\/dist\/(pathinfo|fetchers)\//.test(f.url)],
  ['file I/O (node:fs)', (f) => f.url === 'node:fs' || f.url.startsWith('node:internal/fs')],
  [
    'Node streams, events, async plumbing',
    (f) =>
      /^node:(stream|events|internal\/(streams|async_hooks|process\/task_queues|buffer))/.test(f.url) ||
      f.functionName === 'callbackTrampoline',
  ],
  [
    'CLI (cli/), cache open (cache.js)',
    (f) => f.url.includes('/dist/cli/') || f.url.endsWith('/dist/cache.js'),
  ],
  ['other code of ours (dist/)', (f) => f.url.includes('/dist/')],
];

const LOADING = 'module loading (resolve, compile, link, evaluate)';

/** For a module-loading sample: the package (or dist/ directory) whose code was loading or running. */
function loadedBy(stack) {
  for (const f of stack) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)|\/(dist\/[^/]+)/.exec(f.url);
    if (m) return m[1] ?? m[2];
    if (f.url.startsWith('node:') && !loading(f) && !f.url.startsWith('node:internal/bootstrap'))
      return f.url;
  }
  return 'Node bootstrap / internals';
}

function categorise(stack) {
  if (stack[0].functionName === '(idle)') return 'idle';
  if (stack[0].functionName === '(garbage collector)') return 'GC';
  if (stack.some(loading)) return LOADING;
  for (const frame of stack) {
    for (const [name, test] of CATEGORIES) if (test(frame)) return name;
  }
  return stack[0]?.functionName === '(program)' ? '(program): VM work outside JS' : 'other';
}

export function summariseProfile(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackOf = new Map();
  const stack = (id) => {
    let s = stackOf.get(id);
    if (s) return s;
    s = [];
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) s.push(byId.get(cur).callFrame);
    stackOf.set(id, s);
    return s;
  };
  const cats = new Map();
  const self = new Map();
  const loads = new Map();
  const gaps = [];
  let t = 0;
  let idleStart;
  let before = '';
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const s = stack(profile.samples[i]);
    const c = categorise(s);
    cats.set(c, (cats.get(c) ?? 0) + dt);
    if (c === LOADING) loads.set(loadedBy(s), (loads.get(loadedBy(s)) ?? 0) + dt);
    const f = s[0];
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    if (c === 'idle') idleStart ??= t;
    else {
      if (idleStart !== undefined && t - idleStart > 10)
        gaps.push({ at: idleStart, ms: t - idleStart, before, after: c });
      idleStart = undefined;
      before = c;
    }
    t += dt;
  }
  return {
    totalMs: (profile.endTime - profile.startTime) / 1000,
    categories: [...cats].sort((a, b) => b[1] - a[1]),
    top: [...self].sort((a, b) => b[1] - a[1]).slice(0, 20),
    loads: [...loads].sort((a, b) => b[1] - a[1]).slice(0, 10),
    gaps,
  };
}

export function printProfile(title, s) {
  console.log(`\n## ${title}: ${s.totalMs.toFixed(0)} ms profiled`);
  console.log('| where | ms | share |');
  console.log('|---|---|---|');
  for (const [c, ms] of s.categories)
    console.log(`| ${c} | ${ms.toFixed(1)} | ${((100 * ms) / s.totalMs).toFixed(0)}% |`);
  console.log(
    `\nmodule loading by what was loading: ${s.loads.map(([k, ms]) => `${k} ${ms.toFixed(0)} ms`).join(', ')}`,
  );
  console.log('\n| top self time | ms |');
  console.log('|---|---|');
  for (const [k, ms] of s.top) console.log(`| ${k.replaceAll('|', '\\|')} | ${ms.toFixed(1)} |`);
  console.log(`\nidle gaps over 10 ms: ${s.gaps.length === 0 ? 'none' : ''}`);
  for (const g of s.gaps) {
    console.log(
      `- at ${g.at.toFixed(0)} ms: ${g.ms.toFixed(0)} ms idle, after ${g.before}, before ${g.after}`,
    );
  }
}

export async function profileFetch(work, name = 'typescript-5.6.3.tgz', kind = 'tarball') {
  // Any file of the corpus directory will do (bench/corpus.mjs also leaves tiny.tar.gz there).
  const known = loadCorpus(work).some((a) => a.name === name);
  if (!known && !existsSync(join(work, 'corpus', name)))
    throw new Error(`${name} is not in bench/corpus.json`);
  const main = join(dirname(cliCommand().at(-1)), '../dist/cli/main.js');
  const { port, child } = await startServer(join(work, 'corpus'));
  const dir = mkdtempSync(join(tmpdir(), 'fc-bench-profile-'));
  try {
    const url = `http://127.0.0.1:${port}/${name}`;
    const start = process.hrtime.bigint();
    const r = spawnSync(
      process.execPath,
      [
        '--max-semi-space-size=8',
        '--expose-gc',
        '--cpu-prof',
        '--cpu-prof-dir',
        join(dir, 'prof'),
        '--cpu-prof-interval',
        '250',
        main,
        '--root',
        join(dir, 'root'),
        'fetch',
        kind,
        url,
      ],
      { encoding: 'utf8' },
    );
    const wall = Number(process.hrtime.bigint() - start) / 1e9;
    if (r.status !== 0) throw new Error(`fetch failed: ${r.stderr}`);
    const file = readdirSync(join(dir, 'prof')).find((f) => f.endsWith('.cpuprofile'));
    const s = summariseProfile(JSON.parse(readFileSync(join(dir, 'prof', file), 'utf8')));
    printProfile(
      `fetch ${kind} ${name} (loopback HTTP, empty root), ${main}, ${wall.toFixed(3)} s wall under --cpu-prof`,
      s,
    );
    return s;
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  await profileFetch(process.env.BENCH_WORK ?? join(REPO, '.bench-work'), process.argv[2], process.argv[3]);
}

/**
 * Benchmark of the store commands against Nix in the same run:
 *  - `fetch-cache add` vs `nix-store --store <tmp> --add` on a 20,000-file tree and a 1 GiB file, each run
 *    into a fresh empty cache root / chroot store so every run really adds, the two alternating, each after
 *    a `sync` (target: ratio ≤ 1.0, our peak RSS < 256 MiB);
 *  - `fetch-cache nar` from a populated root vs `nix-store --dump` of the same tree / file, stdout
 *    discarded (target: throughput ratio ours/Nix ≥ 1.0);
 *  - dedup: two generated "releases" of one source package (v2 = v1 with ~5% of files edited, ~2% added,
 *    ~2% removed) added to one root; bytes in the chunk store and on disk (LevelDB after a full compaction
 *    plus the pack files)
 *    over the logical bytes of both trees (target: chunk bytes / logical ≤ 0.6).
 * Run alone with `node bench/store.mjs` (inputs in $BENCH_WORK, default .bench-work/; BENCH_STORE_ONLY to pick
 * sections) or in `npm run bench`.
 */

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import {
  CLI as BUILT_CLI,
  hasCommand,
  makeLargeFile,
  makeSmallFilesTree,
  measureOnce,
  NIX_ENV,
  prng,
  REPO,
  summarise,
} from './lib.mjs';

/** The CLI under test; `BENCH_CLI` points at the bin/fetch-cache of a snapshot (bin/ and dist/) when the tree is being rebuilt meanwhile. */
const CLI = process.env.BENCH_CLI ?? BUILT_CLI;

/** `BENCH_STORE_ONLY=add,nar,dedup` runs only those sections (default all). */
function wanted(section) {
  const only = process.env.BENCH_STORE_ONLY;
  return only === undefined || only.split(',').includes(section);
}

/**
 * Runs `ref(dir)` and `ours(dir)` alternately (each first in every other round), `runs` rounds after
 * one warm-up round, each run with a fresh empty temp dir that is removed afterwards; median wall time
 * and max peak RSS of each. Before
 * every run (untimed) the previous run's dir is removed and `sync` flushes its writes: a run that adds
 * 1 GiB otherwise leaves the next run (the other tool's, when alternating) its writeback and block
 * freeing, and single runs of the same command varied 1.3-3.9 s that way.
 */
function measureFreshPair(ref, ours, { runs, refEnv = process.env, parent }) {
  const results = { ref: [], ours: [] };
  for (let i = 0; i <= runs; i++) {
    const sides = [
      ['ref', ref, refEnv],
      ['ours', ours, process.env],
    ];
    // Each goes first in every other round: neither always runs just after the other's deletion.
    if (i % 2 === 1) sides.reverse();
    for (const [side, argvFor, env] of sides) {
      const dir = mkdtempSync(join(parent, 'fresh-'));
      try {
        spawnSync('sync');
        const m = measureOnce(argvFor(dir), env);
        if (i > 0) results[side].push(m);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  spawnSync('sync');
  return { ref: summarise(results.ref), ours: summarise(results.ours) };
}

function measureRepeat(argv, { runs, env = process.env }) {
  const results = [];
  for (let i = 0; i <= runs; i++) {
    const m = measureOnce(argv, env);
    if (i > 0) results.push(m);
  }
  return summarise(results);
}

function run(argv, env = process.env) {
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Nix with a private HOME (it writes caches there) below `parent`. */
function nixEnv(parent) {
  const home = join(parent, 'nix-home');
  mkdirSync(home, { recursive: true });
  return { ...NIX_ENV, HOME: home, XDG_CACHE_HOME: join(home, '.cache') };
}

const WORDS = (
  'static int void return if else for while struct const char size_t buffer length offset state ctx node ' +
  'next prev count error result value key table entry index flags NULL 0 1 ( ) { } ; = == != -> + - * && || ' +
  'sizeof memcpy malloc free assert goto out unsigned long bool true false the a is of to in not and'
).split(' ');

function text(rnd, size) {
  const parts = [];
  let length = 0;
  while (length < size) {
    const n = 1 + (rnd() % 12);
    const words = [];
    for (let i = 0; i < n; i++) words.push(WORDS[rnd() % WORDS.length]);
    const line = `${'    '.repeat(rnd() % 4)}${words.join(' ')}\n`;
    parts.push(line);
    length += line.length;
  }
  return parts.join('').slice(0, size);
}

/**
 * A per-file PRNG seed scrambled by murmur3's finaliser. Seeds must not be raw outputs of another xorshift
 * stream: xorshift(x_k) continues that very stream, so files seeded from consecutive outputs would be the
 * same text shifted by a few words, and chunking would "dedup" what no real release shares.
 */
function seedOf(x) {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Mostly 0.2–12 KiB sources, 3% generated files of 64–512 KiB (where content-defined chunking matters). */
function fileSize(rnd) {
  return rnd() % 100 < 3 ? 65_536 + (rnd() % 458_752) : 200 + (rnd() % 12_000);
}

/**
 * Release v1: `count` text files in `dirs` directories. Release v2 from the same seed: every file of v1 but
 * ~2% removed, ~5% edited (one line replaced and a few lines inserted in the middle), plus ~2% new files.
 * Returns the logical bytes (sum of file sizes) of the tree written.
 */
/** Bumped whenever makeRelease's output changes, so stale generated trees are rebuilt. */
const RELEASE_GENERATOR = 2;

function makeRelease(dir, version, count = 8000, dirs = 160) {
  const marker = `${dir}.complete`; // beside the tree, so it is not part of what gets added
  if (existsSync(marker)) {
    const done = JSON.parse(readFileSync(marker, 'utf8'));
    if (done.generator === RELEASE_GENERATOR) return done.bytes;
  }
  rmSync(dir, { recursive: true, force: true });
  const layout = prng(1234);
  const edits = prng(5678);
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `pkg${i % dirs}`, i % 3 === 0 ? 'tests' : 'src');
    const fileSeed = seedOf(layout());
    const size = fileSize(layout);
    const executable = layout() % 20 === 0;
    const fate = edits() % 100; // 0–1 removed in v2, 2–6 edited in v2
    if (version === 2 && fate < 2) continue;
    let content = text(prng(fileSeed), size);
    if (version === 2 && fate < 7) {
      const at = content.indexOf('\n', Math.floor(content.length / 2)) + 1;
      const rnd = prng(fileSeed ^ 0x2222);
      content = `${content.slice(0, at)}${text(rnd, 40 + (rnd() % 200))}\n${content.slice(at + 60)}`;
    }
    mkdirSync(sub, { recursive: true });
    const path = join(sub, `file${i}.c`);
    writeFileSync(path, content);
    chmodSync(path, executable ? 0o755 : 0o644);
    bytes += Buffer.byteLength(content);
  }
  if (version === 2) {
    const added = prng(9999);
    for (let i = 0; i < Math.round(count * 0.02); i++) {
      const sub = join(dir, `pkg${added() % dirs}`, 'src');
      mkdirSync(sub, { recursive: true });
      const content = text(prng(seedOf(added())), fileSize(added));
      writeFileSync(join(sub, `new${i}.c`), content);
      bytes += Buffer.byteLength(content);
    }
  }
  writeFileSync(marker, JSON.stringify({ generator: RELEASE_GENERATOR, bytes }));
  return bytes;
}

function duBytes(path) {
  return Number(run(['du', '-sb', path]).split('\t')[0]);
}

/** Value bytes per sublevel (keys look like `!name!…`) of the LevelDB at `location`, after full compaction. */
async function levelStats(location) {
  const db = new ClassicLevel(location, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    await db.compactRange(new Uint8Array([0]), new Uint8Array(64).fill(0xff));
    const perSublevel = {};
    for await (const [key, value] of db.iterator()) {
      const text = Buffer.from(key.subarray(0, 32)).toString('latin1');
      const name = text.startsWith('!') ? text.slice(1, text.indexOf('!', 1)) : '(top)';
      perSublevel[name] ??= { entries: 0, bytes: 0 };
      perSublevel[name].entries++;
      // Chunk rows are 20-byte pack locations (src/blob/packs.ts) whose last u32le is the chunk length.
      perSublevel[name].bytes +=
        name === 'chunks' && value.length === 20 ? Buffer.from(value).readUInt32LE(16) : value.length;
    }
    return perSublevel;
  } finally {
    await db.close();
  }
}

function fmtRatio(x) {
  return x.toFixed(2);
}

export async function benchStore(work) {
  if (!hasCommand('nix-store')) {
    console.log('nix not installed: skipping store benchmark (apt-get install nix-bin)');
    return {};
  }
  const tree = join(work, 'small-files');
  const big = join(work, 'large', 'one-gib.bin');
  makeSmallFilesTree(tree, 20_000);
  makeLargeFile(big, 1 << 30);
  const scratch = mkdtempSync(join(tmpdir(), 'fc-bench-store-'));
  const env = nixEnv(scratch);
  try {
    // add: a fresh root / store per run.
    const addRows = [];
    const narRows = [];
    if (wanted('add')) {
      for (const [name, path, runs] of [
        ['20,000 small files', tree, 5],
        ['1 GiB file', big, 5],
      ]) {
        const { ref, ours } = measureFreshPair(
          (d) => ['nix-store', '--store', d, '--add', path],
          (d) => [CLI, '--root', d, 'add', path],
          { runs, refEnv: env, parent: scratch },
        );
        addRows.push({ name, ours, ref });
      }
      console.log('\n## add: fetch-cache add vs nix-store --add (fresh root / chroot store per run)');
      console.log(
        '| case | ours (s) | nix-store --add (s) | ratio ours/ref | our peak RSS (MiB) | target | runs: ours / nix (s) |',
      );
      console.log('|---|---|---|---|---|---|---|');
      const walls = (m) => m.walls.map((w) => w.toFixed(2)).join(' ');
      for (const r of addRows) {
        console.log(
          `| ${r.name} | ${r.ours.wall.toFixed(3)} | ${r.ref.wall.toFixed(3)} | ${fmtRatio(r.ours.wall / r.ref.wall)} | ${r.ours.maxRssMiB.toFixed(0)} | ratio ≤ 1.0, RSS < 256 MiB | ${walls(r.ours)} / ${walls(r.ref)} |`,
        );
      }
    }

    // nar: render from a populated root vs dumping the local path.
    const root = join(scratch, 'populated');
    if (wanted('nar')) {
      for (const [name, path, runs] of [
        ['20,000 small files', tree, 5],
        ['1 GiB file', big, 5],
      ]) {
        const storePath = run([CLI, '--root', root, 'add', path]);
        const narSize = JSON.parse(run([CLI, '--root', root, '--json', 'path-info', storePath]))[0].narSize;
        const ref = measureRepeat(['nix-store', '--dump', path], { runs, env });
        const ours = measureRepeat([CLI, '--root', root, 'nar', storePath], { runs });
        narRows.push({ name, narSize, ours, ref });
      }
      console.log(
        '\n## nar: fetch-cache nar (from the cache) vs nix-store --dump (from the file system), stdout discarded',
      );
      console.log(
        '| case | NAR MiB | ours (s) | ours MiB/s | nix-store --dump (s) | Nix MiB/s | throughput ratio ours/ref | our peak RSS (MiB) | target |',
      );
      console.log('|---|---|---|---|---|---|---|---|---|');
      for (const r of narRows) {
        const mib = r.narSize / (1 << 20);
        console.log(
          `| ${r.name} | ${mib.toFixed(1)} | ${r.ours.wall.toFixed(3)} | ${(mib / r.ours.wall).toFixed(0)} | ${r.ref.wall.toFixed(3)} | ${(mib / r.ref.wall).toFixed(0)} | ${fmtRatio(r.ref.wall / r.ours.wall)} | ${r.ours.maxRssMiB.toFixed(0)} | ≥ 1.0 |`,
        );
      }
    }
    if (!wanted('dedup')) return { addRows, narRows };

    // dedup: two releases in one fresh root.
    const v1 = join(work, 'release-v1');
    const v2 = join(work, 'release-v2');
    const logical1 = makeRelease(v1, 1);
    const logical2 = makeRelease(v2, 2);
    const files1 = countFiles(v1);
    const files2 = countFiles(v2);
    const dedupRoot = join(scratch, 'dedup');
    run([CLI, '--root', dedupRoot, 'add', v1]);
    const afterV1 = await levelStats(join(dedupRoot, 'db'));
    run([CLI, '--root', dedupRoot, 'add', v2]);
    const stats = await levelStats(join(dedupRoot, 'db'));
    const chunkBytes = stats.chunks?.bytes ?? 0;
    const allValueBytes = Object.values(stats).reduce((n, s) => n + s.bytes, 0);
    const disk = duBytes(join(dedupRoot, 'db')) + duBytes(join(dedupRoot, 'packs'));
    const logical = logical1 + logical2;
    console.log('\n## dedup: two releases of one source package in one cache root');
    console.log(
      `v1: ${files1} files, ${(logical1 / 1e6).toFixed(1)} MB; v2: ${files2} files, ${(logical2 / 1e6).toFixed(1)} MB (~5% edited, ~2% added, ~2% removed)`,
    );
    console.log('| measure | bytes | / logical (v1+v2) | target |');
    console.log('|---|---|---|---|');
    console.log(`| logical bytes of both trees | ${logical} | 1.00 | |`);
    console.log(
      `| chunk bytes after v1 only | ${afterV1.chunks?.bytes ?? 0} | ${fmtRatio((afterV1.chunks?.bytes ?? 0) / logical)} | |`,
    );
    console.log(
      `| chunk bytes (uncompressed) after v1 + v2 | ${chunkBytes} | ${fmtRatio(chunkBytes / logical)} | ≤ 0.6 |`,
    );
    console.log(
      `| all values (chunk bytes in packs; lists, directories, path infos) | ${allValueBytes} | ${fmtRatio(allValueBytes / logical)} | |`,
    );
    console.log(
      `| du of <root>/db (after full compaction, snappy) + <root>/packs | ${disk} | ${fmtRatio(disk / logical)} | |`,
    );
    console.log(
      `sublevels: ${Object.entries(stats)
        .map(([k, s]) => `${k} ${s.entries} entries ${s.bytes} B`)
        .join('; ')}`,
    );
    return { addRows, narRows, dedup: { logical, chunkBytes, allValueBytes, disk } };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function countFiles(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchStore(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));
}

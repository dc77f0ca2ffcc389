/**
 * Corpus benchmark: real archives the project did not make (bench/corpus.json: npm packages fetched with
 * `npm pack`, Debian packages with `apt-get download`, the archive taken out of each .deb), each served from
 * a loopback HTTP server and fetched by our CLI into an empty root and by `nix-prefetch-url` into an empty
 * chroot store, in alternating order (the first tool swaps every round), wall time and peak RSS through
 * bench/measure.py. Cases:
 * - fixed: a `.tar.gz` holding one small file, over loopback HTTP and over `file://`;
 * - tarball: `fetch tarball URL` against `nix-prefetch-url --unpack URL`, every archive;
 * - flat: `fetch url URL` against `nix-prefetch-url URL`, the same files.
 * Every run's hash and store path are compared with Nix's; a difference fails the run (exit 1) after the tables.
 * Each row is flagged against the targets of issue 21.
 *
 * Downloads happen once, into $BENCH_WORK/corpus (default .bench-work/), and every file is checked against
 * the sha256 in bench/corpus.json on every run; $BENCH_WORK/corpus/manifest.json records what was measured
 * of each (size, compression, files, unpacked tar bytes).
 *
 * `node bench/corpus.mjs` or `BENCH_ONLY=corpus node bench/run.mjs`. Environment:
 * - BENCH_CLI: the CLI under test (default bin/fetch-cache of this checkout; a `.js` file runs with node),
 *   e.g. another checkout's bin/fetch-cache for a before/after table;
 * - BENCH_ROUNDS: rounds per case (default 5; the fixed cost runs twice as many);
 * - BENCH_CORPUS: comma-separated parts of archive names to keep (default all);
 * - BENCH_CORPUS_CASES: some of fixed,tarball,flat (default all).
 * Internal mode: `--serve <dir>` (the HTTP server; prints its port).
 */

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { CLI, measure, measureOnce, NIX_ENV, REPO } from './lib.mjs';

export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MiB = 1024 * 1024;

/** The command that starts the CLI under test: BENCH_CLI, else this checkout's launcher. */
export function cliCommand() {
  const cli = process.env.BENCH_CLI ?? CLI;
  return cli.endsWith('.js') ? [process.execPath, cli] : [cli];
}

/** A one-line description of the CLI under test: its path and the commit of its checkout. */
export function cliDescription() {
  const cli = cliCommand().at(-1);
  const rev = spawnSync('git', ['-C', dirname(cli), 'log', '-1', '--format=%h %s'], { encoding: 'utf8' });
  return `${cli} (${rev.status === 0 ? rev.stdout.trim().slice(0, 90) : 'not in a git checkout'})`;
}

export function loadAverage() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

// ---------------------------------------------------------------------------------------------- downloads

function sha256File(path) {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4 * MiB);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * `npm pack` each `{ name, spec }` missing from `dir` (in one call), renamed to `name`. npm serves the
 * registry's tarball unchanged, so its sha256 is the registry's.
 */
export function downloadNpm(dir, entries) {
  const missing = entries.filter((e) => !existsSync(join(dir, e.name)));
  if (missing.length === 0) return;
  const tmp = mkdtempSync(join(dir, '.npm-'));
  try {
    console.log(`npm pack ${missing.map((e) => e.spec).join(' ')}`);
    const r = spawnSync('npm', ['pack', '--json', '--pack-destination', tmp, ...missing.map((e) => e.spec)], {
      cwd: tmp,
      encoding: 'utf8',
      maxBuffer: 256 * MiB,
    });
    if (r.status !== 0) throw new Error(`npm pack failed: ${r.stderr}`);
    const packed = JSON.parse(r.stdout);
    for (const [i, e] of missing.entries()) renameSync(join(tmp, packed[i].filename), join(dir, e.name));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** `apt-get download package=version`, then `member` out of the .deb (`data.tar.xz` itself, or a file in it). */
function downloadDebian(dir, e) {
  if (existsSync(join(dir, e.name))) return;
  const tmp = mkdtempSync(join(dir, '.deb-'));
  try {
    console.log(`apt-get download ${e.package}=${e.version}`);
    const r = spawnSync('apt-get', ['download', `${e.package}=${e.version}`], { cwd: tmp, encoding: 'utf8' });
    if (r.status !== 0) {
      throw new Error(
        `apt-get download ${e.package}=${e.version} failed (a superseded version leaves the archive: pin the current one in bench/corpus.json): ${r.stderr}`,
      );
    }
    const deb = join(
      tmp,
      readdirSync(tmp).find((f) => f.endsWith('.deb')),
    );
    const out = join(tmp, e.name);
    const cmd = e.member.startsWith('./')
      ? `dpkg-deb --fsys-tarfile '${deb}' | tar -xOf - '${e.member}' > '${out}'`
      : `ar p '${deb}' '${e.member}' > '${out}'`;
    const x = spawnSync('sh', ['-c', `set -e; ${cmd}`], { stdio: 'inherit' });
    if (x.status !== 0) throw new Error(`extracting ${e.member} from ${deb} failed`);
    renameSync(out, join(dir, e.name));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** gzip, xz, bzip2, zstd or none, from the first bytes. */
function compressionOf(path) {
  const b = Buffer.alloc(6);
  const fd = openSync(path, 'r');
  readSync(fd, b, 0, 6, 0);
  closeSync(fd);
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

const DECOMPRESS = { gzip: 'gzip -dc', xz: 'xz -dc', bzip2: 'bzip2 -dc', zstd: 'zstd -dc', none: 'cat' };

/** Regular files in the archive and the size of its tar stream. */
function countArchive(path, compression) {
  const sh = (cmd) => Number(spawnSync('sh', ['-c', cmd], { encoding: 'utf8' }).stdout.trim());
  const tar = `${DECOMPRESS[compression]} < '${path}'`;
  return { files: sh(`${tar} | tar -tvf - | grep -c '^-'`), tarBytes: sh(`${tar} | wc -c`) };
}

/**
 * Every entry of `entries` present in `dir` and matching its sha256 (downloaded when missing), described by
 * `dir/manifest.json` (computed once per sha256). Returns the entries with `path` and the description.
 */
export function ensureArchives(dir, entries) {
  mkdirSync(dir, { recursive: true });
  downloadNpm(
    dir,
    entries.filter((e) => e.source === 'npm'),
  );
  for (const e of entries) if (e.source === 'debian') downloadDebian(dir, e);
  const manifestPath = join(dir, 'manifest.json');
  const known = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, 'utf8')) : {};
  const out = [];
  for (const e of entries) {
    const path = join(dir, e.name);
    const sha256 = sha256File(path);
    if (e.sha256 && sha256 !== e.sha256) {
      throw new Error(
        `${path}: sha256 ${sha256}, bench/corpus.json expects ${e.sha256}; delete it to download again`,
      );
    }
    if (!e.sha256) console.log(`${e.name}: sha256 ${sha256} (not yet in the manifest: record it)`);
    let d = known[e.name];
    if (d?.sha256 !== sha256) {
      const compression = compressionOf(path);
      d = {
        name: e.name,
        source: e.source,
        version: e.spec ?? `${e.package}=${e.version}`,
        sha256,
        size: statSync(path).size,
        compression,
        ...countArchive(path, compression),
      };
      known[e.name] = d;
      writeFileSync(manifestPath, `${JSON.stringify(known, null, 2)}\n`);
    }
    out.push({ ...e, ...d, path });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- serving

function serve(dir) {
  const server = createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').slice(1));
    const path = join(dir, basename(name));
    let size;
    try {
      size = statSync(path).size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') res.end();
    else pipeline(createReadStream(path, { highWaterMark: MiB }), res).catch(() => {});
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
}

/** The loopback server for `dir`, in a child process (the measured runs block this one). */
export function startServer(dir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.once('error', reject);
    child.stdout.once('data', (d) => resolve({ port: Number(String(d).trim()), child }));
  });
}

// ---------------------------------------------------------------------------------------------- hashes

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** A nix32 (Nix's base-32) hash as SRI sha256. */
export function nix32ToSri(s) {
  const out = Buffer.alloc(Math.floor((s.length * 5) / 8));
  for (let n = 0; n < s.length; n++) {
    const digit = NIX32.indexOf(s[s.length - 1 - n]);
    if (digit < 0) throw new Error(`not a nix32 hash: ${s}`);
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] |= (digit << j) & 0xff;
    if (i + 1 < out.length) out[i + 1] |= digit >> (8 - j);
  }
  return `sha256-${out.toString('base64')}`;
}

// ---------------------------------------------------------------------------------------------- running

/** One measured run of `argv` in a fresh temp dir (`argvFor(dir)`); its stdout is returned as `out`. */
export function runFresh(argvFor, env = process.env) {
  const dir = mkdtempSync(join(tmpdir(), 'fc-bench-corpus-'));
  try {
    const outFile = join(dir, 'stdout');
    const m = measureOnce(['--stdout', outFile, ...argvFor(dir)], env);
    return { ...m, out: readFileSync(outFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function summary(runs) {
  return {
    wall: median(runs.map((r) => r.wall)),
    walls: runs.map((r) => r.wall),
    rssMiB: Math.max(...runs.map((r) => r.maxRssKiB)) / 1024,
  };
}

/** The Nix command (HOME and a chroot store in the run's dir, offline). */
function nixArgv(dir, url, unpack) {
  return [
    'env',
    `HOME=${dir}`,
    'nix-prefetch-url',
    '--store',
    join(dir, 'store'),
    ...(unpack ? ['--unpack', '--name', 'source'] : []),
    '--print-path',
    url,
  ];
}

const failures = [];

/**
 * `rounds` rounds of our `fetch <kind> URL` and the matching `nix-prefetch-url` (each first in every other
 * round), each into an empty root / store; every run's hash and store path are checked against Nix's.
 */
export function compare(label, kind, url, rounds = ROUNDS) {
  const unpack = kind === 'tarball';
  const ours = (d) => [...cliCommand(), '--root', join(d, 'root'), '--json', 'fetch', kind, url];
  const nix = (d) => nixArgv(d, url, unpack);
  const ra = [];
  const rb = [];
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? ['ours', 'nix'] : ['nix', 'ours'];
    for (const who of order) {
      if (who === 'ours') ra.push(runFresh(ours));
      else rb.push(runFresh(nix, NIX_ENV));
    }
  }
  const [nixHash, nixPath] = rb[0].out.trim().split('\n');
  const expected = { hash: nix32ToSri(nixHash), path: nixPath };
  for (const r of ra) {
    const j = JSON.parse(r.out);
    const got = { hash: unpack ? j.narHash : j.hash, path: j.path };
    if (got.hash !== expected.hash || got.path !== expected.path) {
      const msg = `HASH MISMATCH ${label} (${kind}): ours ${got.hash} ${got.path}, nix-prefetch-url ${expected.hash} ${expected.path}`;
      console.error(msg);
      failures.push(msg);
      return { ours: summary(ra), nix: summary(rb), hash: expected.hash, mismatch: true };
    }
  }
  for (const r of rb.slice(1)) {
    if (r.out !== rb[0].out)
      failures.push(`${label}: nix-prefetch-url printed different answers across runs`);
  }
  return { ours: summary(ra), nix: summary(rb), hash: expected.hash };
}

/** The three targets of issue 21 for one row: ok / MISS each. */
export function targets(ours, nix) {
  const mark = (ok) => (ok ? 'ok' : '**MISS**');
  return {
    plus: mark(ours.wall <= nix.wall + 0.12),
    fast: nix.wall >= 1 ? mark(ours.wall <= 0.7 * nix.wall) : '–',
    rss: mark(ours.rssMiB <= Math.max(2 * nix.rssMiB, 128)),
  };
}

function printRows(title, rows, withFiles) {
  console.log(`\n## ${title}`);
  console.log(
    `| archive | comp | size (MB) |${withFiles ? ' files |' : ''} ours (s) | Nix (s) | ours/Nix | our RSS (MiB) | Nix RSS (MiB) | ≤ Nix+0.12 s | ≤ 0.7× (Nix ≥ 1 s) | RSS ≤ max(2×Nix, 128) |`,
  );
  console.log(`|---|---|---|${withFiles ? '---|' : ''}---|---|---|---|---|---|---|---|`);
  for (const r of rows) {
    if (r.error) {
      console.log(
        `| ${r.name} | ${r.compression} | ${(r.size / 1e6).toFixed(1)} |${withFiles ? ` ${r.files} |` : ''} error: ${r.error} |`,
      );
      continue;
    }
    const t = r.mismatch ? { plus: '**HASH MISMATCH**', fast: '', rss: '' } : targets(r.ours, r.nix);
    console.log(
      `| ${r.name} | ${r.compression} | ${(r.size / 1e6).toFixed(2)} |${withFiles ? ` ${r.files} |` : ''} ${r.ours.wall.toFixed(3)} | ${r.nix.wall.toFixed(3)} | ${(r.ours.wall / r.nix.wall).toFixed(2)} | ${r.ours.rssMiB.toFixed(0)} | ${r.nix.rssMiB.toFixed(0)} | ${t.plus} | ${t.fast} | ${t.rss} |`,
    );
  }
}

/** A deterministic `.tar.gz` of one 13-byte file, for the fixed cost. */
function makeTiny(dir) {
  const out = join(dir, 'tiny.tar.gz');
  if (existsSync(out)) return out;
  const tree = mkdtempSync(join(tmpdir(), 'fc-bench-tiny-'));
  try {
    mkdirSync(join(tree, 'tiny'));
    writeFileSync(join(tree, 'tiny', 'hello.txt'), 'hello, world\n');
    const r = spawnSync(
      'sh',
      [
        '-c',
        `tar --owner=0 --group=0 --numeric-owner --mtime=@1600000000 -C '${tree}' -cf - tiny | gzip -n > '${out}.tmp' && mv '${out}.tmp' '${out}'`,
      ],
      { stdio: 'inherit' },
    );
    if (r.status !== 0) throw new Error('making tiny.tar.gz failed');
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
  return out;
}

export function loadCorpus(work) {
  const { archives } = JSON.parse(readFileSync(join(REPO, 'bench/corpus.json'), 'utf8'));
  return ensureArchives(join(work, 'corpus'), archives);
}

export async function benchCorpus(work) {
  const cases = (process.env.BENCH_CORPUS_CASES ?? 'fixed,tarball,flat').split(',');
  const filter = process.env.BENCH_CORPUS?.split(',');
  const dir = join(work, 'corpus');
  const all = loadCorpus(work);
  const archives = all.filter((a) => filter === undefined || filter.some((f) => a.name.includes(f)));
  const tiny = makeTiny(dir);
  console.log(
    `\n# corpus benchmark: ${ROUNDS} rounds, alternating, each run into an empty root / chroot store`,
  );
  console.log(`CLI under test: ${cliDescription()}`);
  console.log(
    `${spawnSync('nix-prefetch-url', ['--version'], { encoding: 'utf8' }).stdout.trim()}; node ${process.version}`,
  );
  console.log(`load average at start: ${loadAverage()}`);
  const { port, child } = await startServer(dir);
  const base = `http://127.0.0.1:${port}`;
  const results = { cli: cliDescription(), rounds: ROUNDS, loadStart: loadAverage() };
  try {
    if (cases.includes('fixed')) {
      const rows = [
        ['loopback HTTP', `${base}/tiny.tar.gz`, 0.15],
        ['file://', `file://${tiny}`, 0.12],
      ].map(([how, url, target]) => ({
        how,
        target,
        ...compare(`tiny.tar.gz over ${how}`, 'tarball', url, 2 * ROUNDS),
      }));
      console.log(
        `\n## fixed cost: fetch tarball of a .tar.gz holding one small file (median of ${2 * ROUNDS})`,
      );
      console.log('| over | ours (s) | Nix (s) | ours/Nix | our RSS (MiB) | Nix RSS (MiB) | target | met |');
      console.log('|---|---|---|---|---|---|---|---|');
      for (const r of rows) {
        console.log(
          `| ${r.how} | ${r.ours.wall.toFixed(3)} | ${r.nix.wall.toFixed(3)} | ${(r.ours.wall / r.nix.wall).toFixed(2)} | ${r.ours.rssMiB.toFixed(0)} | ${r.nix.rssMiB.toFixed(0)} | ≤ ${r.target} s | ${r.mismatch ? '**HASH MISMATCH**' : r.ours.wall <= r.target ? 'ok' : '**MISS**'} |`,
        );
      }
      // The runtime's own start, for scale: what no change to this code can take away here.
      const nodeStart = measure([process.execPath, '-e', '0'], { runs: 2 * ROUNDS }).wall;
      console.log(
        `node -e 0 (Node's own start here, median of ${2 * ROUNDS}): ${nodeStart.toFixed(3)} s; NODE_EXTRA_CA_CERTS is ${process.env.NODE_EXTRA_CA_CERTS ? 'set (Node parses that file at every start)' : 'unset'}`,
      );
      results.fixed = rows;
      results.nodeStart = nodeStart;
    }
    for (const kind of ['tarball', 'flat']) {
      if (!cases.includes(kind)) continue;
      const rows = [];
      for (const a of archives) {
        const row = { name: a.name, compression: a.compression, size: a.size, files: a.files };
        try {
          Object.assign(row, compare(a.name, kind === 'flat' ? 'url' : 'tarball', `${base}/${a.name}`));
        } catch (err) {
          row.error = String(err.message ?? err)
            .split('\n')[0]
            .slice(0, 200);
          failures.push(`${a.name} (${kind}): ${row.error}`);
        }
        rows.push(row);
        process.stderr.write(
          `  ${kind} ${a.name}: ${row.error ?? `${row.ours.wall.toFixed(3)} s vs ${row.nix.wall.toFixed(3)} s`}\n`,
        );
      }
      printRows(
        kind === 'tarball'
          ? `fetch tarball vs nix-prefetch-url --unpack, loopback HTTP (median of ${ROUNDS})`
          : `fetch url (flat) vs nix-prefetch-url, loopback HTTP (median of ${ROUNDS})`,
        rows,
        kind === 'tarball',
      );
      results[kind] = rows;
    }
  } finally {
    child.kill();
  }
  results.loadEnd = loadAverage();
  console.log(`\nload average at end: ${results.loadEnd}`);
  const out = join(work, 'corpus-results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`results: ${file}`);
  if (failures.length > 0) {
    console.error(`\n${failures.length} FAILURE(S):\n${failures.join('\n')}`);
    process.exitCode = 1;
  }
  return results;
}

if (process.argv[2] === '--serve') serve(process.argv[3]);
else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchCorpus(process.env.BENCH_WORK ?? join(REPO, '.bench-work'));
}

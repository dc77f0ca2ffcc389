/**
 * Chooses the FastCDC parameters (src/blob/fastcdc.ts) by measurement: for a
 * few min/avg/max sets, how many bytes two versions of the same data need once
 * chunked and deduplicated (stored / logical; 0.5 would be perfect), how many
 * chunks that is (each costs a key and a LevelDB operation), and how fast the
 * chunker runs. Then times LevelBlobService writes and reads of one large blob
 * on classic-level. Inputs are generated, deterministic:
 *
 * - file: 64 MiB of pseudo-random bytes; v2 has 300 small edits (insert,
 *   delete or overwrite 1–100 bytes) spread through it.
 * - tar: 6000 files of 0–64 KiB (mostly small) with 512-byte headers, as in a
 *   tar; v2 changes a few bytes in 5 % of the files, inserts 1 % new ones and
 *   drops 1 %.
 *
 * Run: `npm run build && node bench/blob-chunking.mjs [--write-mib N]`, or
 * from the sources: `BENCH_FROM_SRC=1 npx tsx bench/blob-chunking.mjs`.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const from = process.env.BENCH_FROM_SRC ? '../src' : '../dist';
const { Chunker } = await import(`${from}/blob/fastcdc.js`);
const { LevelBlobService } = await import(`${from}/blob/leveldb.js`);
const { blake3 } = await import(`${from}/nix/hashing.js`);
const { ClassicLevel } = await import('classic-level');

const KiB = 1024;
const MiB = 1024 * KiB;
const PARAMS = [
  [8, 32, 128],
  [16, 64, 256],
  [32, 128, 512],
  [64, 256, 1024],
  [128, 256, 512],
].map(([minSize, avgSize, maxSize]) => ({
  minSize: minSize * KiB,
  avgSize: avgSize * KiB,
  maxSize: maxSize * KiB,
}));

function prng(seed) {
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

function randomBytes(n, rnd) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rnd() >>> 24;
  return out;
}

/** v1 with `edits` small edits at sorted random positions. */
function edited(v1, edits, rnd) {
  const positions = Array.from({ length: edits }, () => rnd() % v1.length).sort((a, b) => a - b);
  const parts = [];
  let at = 0;
  for (const p of positions) {
    if (p < at) continue;
    parts.push(v1.subarray(at, p));
    const n = 1 + (rnd() % 100);
    const kind = rnd() % 3;
    if (kind === 0) {
      parts.push(randomBytes(n, rnd)); // insert
      at = p;
    } else if (kind === 1) {
      at = p + n; // delete
    } else {
      parts.push(randomBytes(n, rnd)); // overwrite
      at = p + n;
    }
  }
  parts.push(v1.subarray(Math.min(at, v1.length)));
  return Buffer.concat(parts);
}

function tarLike(files) {
  const parts = [];
  for (const f of files) {
    const header = new Uint8Array(512);
    header.set(Buffer.from(`${f.name}\0${f.data.length}`));
    parts.push(header, f.data, new Uint8Array((512 - (f.data.length % 512)) % 512));
  }
  return Buffer.concat(parts);
}

function makeTars() {
  const rnd = prng(11);
  const fileSize = () => Math.min(64 * KiB, Math.floor(256 * 2 ** ((rnd() % 1000) / 125)));
  const files = Array.from({ length: 6000 }, (_, i) => ({
    name: `src/file-${i}`,
    data: randomBytes(fileSize(), rnd),
  }));
  const v2files = [];
  for (const f of files) {
    const r = rnd() % 100;
    if (r === 0) continue; // dropped
    if (r < 6) {
      const data = new Uint8Array(f.data);
      for (let k = 0; k < 4 && data.length > 0; k++) data[rnd() % data.length] = rnd() & 0xff;
      v2files.push({ name: f.name, data });
    } else v2files.push(f);
    if (r === 99) v2files.push({ name: `${f.name}.new`, data: randomBytes(fileSize(), rnd) });
  }
  return [tarLike(files), tarLike(v2files)];
}

function chunkDigests(data, params) {
  const chunker = new Chunker(params);
  const out = [];
  const note = (c) => out.push([Buffer.from(blake3(c)).toString('hex'), c.length]);
  for (let pos = 0; pos < data.length; pos += MiB) chunker.push(data.subarray(pos, pos + MiB), note);
  chunker.finish(note);
  return out;
}

function storedRatio(v1, v2, params) {
  const unique = new Map();
  let chunks = 0;
  for (const v of [v1, v2]) {
    for (const [d, n] of chunkDigests(v, params)) {
      unique.set(d, n);
      chunks++;
    }
  }
  let stored = 0;
  for (const n of unique.values()) stored += n;
  return { ratio: stored / (v1.length + v2.length), chunks, unique: unique.size };
}

function chunkSpeed(data, params) {
  let best = Infinity;
  for (let rep = 0; rep < 5; rep++) {
    const chunker = new Chunker(params);
    const t = performance.now();
    const none = () => {};
    for (let pos = 0; pos < data.length; pos += MiB) chunker.push(data.subarray(pos, pos + MiB), none);
    chunker.finish(none);
    best = Math.min(best, performance.now() - t);
  }
  return data.length / 1e6 / (best / 1e3);
}

async function writeThroughput(mib, params) {
  const dir = mkdtempSync(join(tmpdir(), 'fetch-cache-bench-'));
  const db = new ClassicLevel(join(dir, 'db'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    const service = new LevelBlobService(db, { chunker: params });
    const piece = randomBytes(MiB, prng(5));
    const t0 = performance.now();
    const w = service.writer();
    for (let i = 0; i < mib; i++) {
      piece[0] = i & 0xff; // every MiB differs
      piece[1] = i >> 8;
      await w.write(piece);
    }
    const { digest } = await w.close();
    const t1 = performance.now();
    let n = 0;
    for await (const p of await service.read(digest)) n += p.length;
    const t2 = performance.now();
    const rate = (ms) => ((mib * MiB) / 1e6 / (ms / 1e3)).toFixed(0);
    if (n !== mib * MiB) throw new Error('short read');
    const name = `${params.minSize / KiB}/${params.avgSize / KiB}/${params.maxSize / KiB}`.padEnd(15);
    console.log(`${name} | ${rate(t1 - t0).padStart(13)} | ${rate(t2 - t1).padStart(22)}`);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const rnd = prng(7);
const file1 = randomBytes(64 * MiB, rnd);
const file2 = edited(file1, 300, rnd);
const [tar1, tar2] = makeTars();
console.log(`file ${(file1.length / MiB).toFixed(0)} MiB, tar ${(tar1.length / MiB).toFixed(1)} MiB`);
console.log('min/avg/max KiB | file stored/logical | tar stored/logical | chunk MB/s | chunks/GiB');
for (const p of PARAMS) {
  const f = storedRatio(file1, file2, p);
  const t = storedRatio(tar1, tar2, p);
  const perGiB = Math.round((f.chunks / (file1.length + file2.length)) * 1024 * MiB);
  const name = `${p.minSize / KiB}/${p.avgSize / KiB}/${p.maxSize / KiB}`.padEnd(15);
  console.log(
    `${name} | ${f.ratio.toFixed(3).padStart(19)} | ${t.ratio.toFixed(3).padStart(18)} | ${chunkSpeed(file1, p).toFixed(0).padStart(10)} | ${perGiB}`,
  );
}
const i = process.argv.indexOf('--write-mib');
const mib = i > 0 ? Number(process.argv[i + 1]) : 256;
console.log(`\nLevelBlobService on classic-level, one ${mib} MiB blob written in 1 MiB pieces:`);
console.log('min/avg/max KiB | write MB/s    | full read (verified) MB/s');
for (const p of PARAMS) await writeThroughput(mib, p);

/**
 * Chunk bytes on a real S3 server: requests per GiB ingested and served with
 * pack objects (src/blob/s3-packs.ts) against one object per chunk (the
 * layout of attic and snix's object_store), and read throughput with a cold
 * and a warm near cache (src/blob/near.ts) against local pack files (the
 * default store), all in the same run on the same blobs. Requests are
 * counted on their way to the server, by a forwarding proxy that every
 * request of the run passes (nothing is estimated). Run after `npm run
 * build`, with the server named as the tests name it (scripts/services/
 * s3-rgw-up.sh prints the lines):
 *   FETCH_CACHE_TEST_S3=http://127.0.0.1:17480 … node bench/s3-packs.mjs
 * BENCH_S3_MIB (default 256) sets the data size, BENCH_S3_PREFIX=FETCH_CACHE_TEST_SWIFT
 * measures the Swift server instead. Not part of `npm run bench` (it needs the server).
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './lib.mjs';

const dist = (p) => import(join(REPO, 'dist', p));
const { S3Client } = await dist('storage/s3.js');
const { openChunkStore } = await dist('backends/chunk-stores.js');
const { LevelBlobService } = await dist('blob/leveldb.js');
const { PackChunkStore } = await dist('blob/packs.js');
const { openMemoryKV } = await dist('backends/memory.js');

const prefix = process.env.BENCH_S3_PREFIX ?? 'FETCH_CACHE_TEST_S3';
const endpoint = process.env[prefix];
if (!endpoint) {
  console.error(
    `${prefix} is unset: start a server with scripts/services/s3-rgw-up.sh DIR and export what it prints`,
  );
  process.exit(2);
}
const region = process.env[`${prefix}_REGION`] ?? 'us-east-1';
const env = {
  AWS_ACCESS_KEY_ID: process.env[`${prefix}_ACCESS_KEY`],
  AWS_SECRET_ACCESS_KEY: process.env[`${prefix}_SECRET_KEY`],
};
const MiB = 1 << 20;
const TOTAL = Number(process.env.BENCH_S3_MIB ?? 256) * MiB;
const PER_GIB = 1024 ** 3 / TOTAL;

/** A forwarding proxy to the server that counts requests by method. */
async function countingProxy(target) {
  const to = new URL(target);
  const counts = {};
  const server = createServer((req, res) => {
    counts[req.method] = (counts[req.method] ?? 0) + 1;
    const out = request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => res.socket?.destroy());
    req.pipe(out);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    take() {
      const c = { ...counts };
      for (const k of Object.keys(counts)) delete counts[k];
      return c;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

const proxy = await countingProxy(endpoint);
const client = new S3Client({
  endpoint: proxy.endpoint,
  region,
  credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  connections: 16,
});
const bucket = `fc-bench-packs-${process.pid}`;
await client.createBucket(bucket);
const url = (p) => `s3://${bucket}/${p}?endpoint=${encodeURIComponent(proxy.endpoint)}&region=${region}`;
const dirs = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'fc-bench-s3-'));
  dirs.push(d);
  return d;
};

// Blobs of 1-16 MiB of random bytes (no dedup), TOTAL in all.
const blobs = [];
for (let left = TOTAL, i = 0; left > 0; i++) {
  const size = Math.min(left, (1 + (i % 16)) * MiB);
  blobs.push(randomBytes(size));
  left -= size;
}

/**
 * Writes every blob, each in 1 MiB pieces, with up to 32 closes pending as castore/ingest.ts keeps
 * 32 files in flight (a close resolves once its blob is durable; the next file is read meanwhile).
 */
async function ingest(service) {
  const digests = new Array(blobs.length);
  const pending = new Set();
  const start = performance.now();
  for (const [i, b] of blobs.entries()) {
    const w = service.writer();
    for (let at = 0; at < b.length; at += MiB) await w.write(b.subarray(at, at + MiB));
    const closed = w.close().then((r) => {
      digests[i] = r.digest;
      pending.delete(closed);
    });
    pending.add(closed);
    if (pending.size >= 32) await Promise.race(pending);
  }
  await Promise.all(pending);
  return { digests, seconds: (performance.now() - start) / 1000 };
}

/** Sends every blob as `serve` does a large file (fileSegments: verified segments of pack files), read with pread; MB/s. */
async function sendAll(service, digests) {
  const start = performance.now();
  let bytes = 0;
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const d of digests) {
    for await (const run of await service.readSegments(d)) {
      for (const seg of run.segments) {
        for (let at = 0; at < seg.length; ) {
          const n = readSync(seg.fd, buf, 0, Math.min(buf.length, seg.length - at), seg.offset + at);
          at += n;
          bytes += n;
        }
      }
      run.release();
    }
  }
  if (bytes !== TOTAL) throw new Error(`sent ${bytes} bytes, expected ${TOTAL}`);
  return TOTAL / MiB / ((performance.now() - start) / 1000);
}

/** Reads every blob whole (the service verifies every chunk); MB/s. */
async function readAll(service, digests) {
  const start = performance.now();
  let bytes = 0;
  for (const d of digests) for await (const p of await service.read(d)) bytes += p.length;
  if (bytes !== TOTAL) throw new Error(`read ${bytes} bytes, expected ${TOTAL}`);
  return TOTAL / MiB / ((performance.now() - start) / 1000);
}

const fmt = (c) =>
  Object.entries(c)
    .map(([m, n]) => `${m} ${Math.round(n * PER_GIB)}`)
    .join(', ') || 'none';
const rows = [];

// 1. Pack objects: ingest, then read through a fresh handle.
const kv = await openMemoryKV();
const packs = new LevelBlobService(kv, { chunkStore: await openChunkStore(url('packs'), { env }) });
proxy.take();
const ingested = await ingest(packs);
const ingestCounts = proxy.take();
rows.push(['packs: ingest', fmt(ingestCounts), `${(TOTAL / MiB / ingested.seconds).toFixed(0)} MB/s`]);
const puts = (ingestCounts.PUT ?? 0) + (ingestCounts.POST ?? 0);
const perPut = TOTAL / MiB / puts;
await packs.close();
const fresh = new LevelBlobService(kv, { chunkStore: await openChunkStore(url('packs'), { env }) });
proxy.take();
const coldPacks = await readAll(fresh, ingested.digests);
rows.push(['packs: read', fmt(proxy.take()), `${coldPacks.toFixed(0)} MB/s`]);

// 2. One object per chunk: the same chunks (as the FastCDC chunker cut them), 16 requests in flight.
const chunks = [];
for (const d of ingested.digests) for (const c of (await fresh.stat(d)).chunks) chunks.push(c.digest);
const chunkBytes = await fresh.chunkStore.getMany(chunks);
await fresh.close();
const hex = (d) => Buffer.from(d).toString('hex');
async function inFlight(n, f) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) await f(next++);
    }),
  );
}
proxy.take();
let start = performance.now();
await inFlight(chunks.length, (i) => client.putObject(bucket, `chunks/${hex(chunks[i])}`, chunkBytes[i]));
rows.push([
  'object per chunk: ingest',
  fmt(proxy.take()),
  `${(TOTAL / MiB / ((performance.now() - start) / 1000)).toFixed(0)} MB/s`,
]);
start = performance.now();
await inFlight(chunks.length, (i) => client.getObjectBytes(bucket, `chunks/${hex(chunks[i])}`));
rows.push([
  'object per chunk: read',
  fmt(proxy.take()),
  `${(TOTAL / MiB / ((performance.now() - start) / 1000)).toFixed(0)} MB/s`,
]);

// 3. Near cache, cold then warm; and local pack files (the default store) on the same blobs.
const near = new LevelBlobService(kv, {
  chunkStore: await openChunkStore(url('packs'), { env, cacheRoot: tempDir(), cacheBytes: 4 * 1024 ** 3 }),
});
proxy.take();
const cold = await readAll(near, ingested.digests);
rows.push(['near cache: cold read', fmt(proxy.take()), `${cold.toFixed(0)} MB/s`]);
await near.chunkStore.filling;
const warm = await readAll(near, ingested.digests);
rows.push(['near cache: warm read', fmt(proxy.take()), `${warm.toFixed(0)} MB/s`]);
const warmSend = await sendAll(near, ingested.digests);
rows.push(['near cache: warm segments', fmt(proxy.take()), `${warmSend.toFixed(0)} MB/s`]);
await near.close();
const localKv = await openMemoryKV();
const dir = tempDir();
const local = new LevelBlobService(localKv, { chunkStore: (index) => new PackChunkStore(index, dir) });
const localDigests = (await ingest(local)).digests;
const localRead = await readAll(local, localDigests);
rows.push(['local packs (default): read', '-', `${localRead.toFixed(0)} MB/s`]);
const localSend = await sendAll(local, localDigests);
rows.push(['local packs: segments', '-', `${localSend.toFixed(0)} MB/s`]);
await local.close();

console.log(
  `\nS3 requests per GiB (${TOTAL / MiB} MiB of random blobs of 1-16 MiB, ${chunks.length} chunks), ${prefix}`,
);
for (const [what, counts, speed] of rows) console.log(`  ${what.padEnd(28)} ${counts.padEnd(34)} ${speed}`);
console.log(`  packs: ${perPut.toFixed(1)} MiB ingested per PUT (target ≥ 16)`);
console.log(
  `  warm near / local packs, time: read ${(localRead / warm).toFixed(2)}×, segments (serve) ${(localSend / warmSend).toFixed(2)}× (target ≤ 1.2)`,
);

const keys = [];
for await (const o of client.listObjects(bucket, '')) keys.push(o.key);
await client.deleteObjects(bucket, keys);
await client.close();
await proxy.close();
await kv.close();
await localKv.close();
for (const d of dirs) rmSync(d, { recursive: true, force: true });

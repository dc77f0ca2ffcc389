/**
 * The S3 client (src/storage/s3.ts) against a real S3 server: PUT/s and GET/s
 * of 64 KiB objects with 16 requests in flight, and the client's CPU time per
 * request, in a few rounds. Run after `npm run build`, with the server named
 * as the tests name it (scripts/services/s3-rgw-up.sh prints the lines):
 *   FETCH_CACHE_TEST_S3=http://127.0.0.1:17480 FETCH_CACHE_TEST_S3_ACCESS_KEY=… \
 *   FETCH_CACHE_TEST_S3_SECRET_KEY=… FETCH_CACHE_TEST_S3_REGION=us-east-1 node bench/s3-client.mjs
 * BENCH_S3_PREFIX=FETCH_CACHE_TEST_SWIFT measures the Swift server instead.
 * Not part of `npm run bench` (it needs the server).
 */

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { REPO } from './lib.mjs';

const { S3Client } = await import(join(REPO, 'dist/storage/s3.js'));

const prefix = process.env.BENCH_S3_PREFIX ?? 'FETCH_CACHE_TEST_S3';
const endpoint = process.env[prefix];
if (!endpoint) {
  console.error(
    `${prefix} is unset: start a server with scripts/services/s3-rgw-up.sh DIR and export what it prints`,
  );
  process.exit(2);
}
const CONCURRENCY = 16;
const SIZE = 64 * 1024;
const OBJECTS = Number(process.env.BENCH_S3_OBJECTS ?? 1000);
const GETS = Number(process.env.BENCH_S3_GETS ?? 4000);
const ROUNDS = Number(process.env.BENCH_S3_ROUNDS ?? 3);

const client = new S3Client({
  endpoint,
  region: process.env[`${prefix}_REGION`] ?? 'us-east-1',
  credentials: {
    accessKeyId: process.env[`${prefix}_ACCESS_KEY`],
    secretAccessKey: process.env[`${prefix}_SECRET_KEY`],
  },
  connections: CONCURRENCY,
});
const bucket = `fc-bench-${process.pid}`;
await client.createBucket(bucket);
const body = randomBytes(SIZE);

/** `count` requests made by `CONCURRENCY` workers; requests/s and client CPU ms per request. */
async function run(count, request) {
  let next = 0;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await request(next++);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  return { perSecond: count / seconds, cpuMs: (used.user + used.system) / 1000 / count };
}

const keys = (round) => Array.from({ length: OBJECTS }, (_, i) => `r${round}/${String(i).padStart(6, '0')}`);
console.log(`S3 client at ${endpoint}: ${SIZE / 1024} KiB objects, ${CONCURRENCY} in flight`);
console.log('round  PUT/s  CPU ms/PUT   GET/s  CPU ms/GET');
for (let round = 1; round <= ROUNDS; round++) {
  const k = keys(round);
  const put = await run(k.length, (i) => client.putObject(bucket, k[i], body));
  const get = await run(GETS, async (i) => {
    const got = await client.getObjectBytes(bucket, k[(i * 7919) % k.length]);
    if (got.length !== SIZE) throw new Error(`short read: ${got.length}`);
  });
  console.log(
    `${String(round).padStart(5)}  ${put.perSecond.toFixed(0).padStart(5)}  ${put.cpuMs.toFixed(2).padStart(10)}  ${get.perSecond.toFixed(0).padStart(6)}  ${get.cpuMs.toFixed(2).padStart(10)}`,
  );
  await client.deleteObjects(bucket, k);
}
await client.close();

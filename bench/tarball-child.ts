/**
 * One tarball ingest in a fresh process, for bench/tarball.mjs: streams the archive file into an on-disk
 * cache root with `ingestTarball()`, then computes the NAR hash, and prints JSON timings.
 * Usage: node --import tsx bench/tarball-child.ts <archive> <cache-root>
 */

import { createReadStream } from 'node:fs';
import { openCache } from '../src/cache.js';
import { ingestTarball } from '../src/fetchers/tarball.js';
import { makeHash, toSRI } from '../src/nix/hash.js';

const [archive, root] = process.argv.slice(2);
if (archive === undefined || root === undefined)
  throw new TypeError('usage: tarball-child.ts <archive> <root>');
const cache = await openCache({ root });
try {
  const started = performance.now();
  const { node } = await ingestTarball(createReadStream(archive, { highWaterMark: 1 << 16 }), cache);
  const ingested = performance.now();
  const { narSha256, narSize } = await cache.narCalc.calculate(node);
  const hashed = performance.now();
  process.stderr.write(
    `${JSON.stringify({
      ingestSeconds: (ingested - started) / 1000,
      narSeconds: (hashed - ingested) / 1000,
      narHash: toSRI(makeHash('sha256', narSha256)),
      narSize,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    })}\n`,
  );
} finally {
  await cache.close();
}

/**
 * Chunk bytes in pack objects on a real S3-compatible server (blob/s3-packs.ts),
 * and read through a near cache (blob/near.ts): the blob and maintenance
 * conformance suites over both, then what the layout promises — ≤ 1 PUT per
 * 16 MiB ingested, coalesced ranged reads, rows only for durable packs (also
 * when the writer is SIGKILLed), compaction and the grace period, strays
 * found by listing, and a near cache that fills on reads, keeps its budget
 * and never answers with a damaged copy. Run per server by s3-packs.test.ts
 * (radosgw) and s3-packs-swift.test.ts (Swift's s3api).
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openLevelDb } from '../../src/backends/level-db.js';
import { decodeChunkList } from '../../src/blob/chunk-list.js';
import { DEFAULT_CHUNKER_PARAMS } from '../../src/blob/fastcdc.js';
import type { LevelBlobService } from '../../src/blob/leveldb.js';
import { decodeLocation } from '../../src/blob/packs.js';
import { ingestTarball } from '../../src/fetchers/tarball.js';
import { blake3 } from '../../src/nix/hashing.js';
import { chunked, tarArchive, tarMember } from '../helpers/archives.js';
import { flipChunkByte } from '../helpers/chunk-damage.js';
import { cliBuilt, REPO_ROOT } from '../helpers/cli.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { corruptS3Chunk, type S3Store, s3Client, s3Env, s3Stores } from '../helpers/s3-stores.js';
import { maintenanceConformance } from '../maintenance/conformance.js';
import type { S3TestServer } from '../storage/s3-suite.js';
import { blobServiceConformance, randomBytes } from './conformance.js';

const MiB = 1 << 20;

async function readAll(cache: S3Store['cache'], digest: Uint8Array): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of (await cache.blobs.read(digest))!) parts.push(p);
  return Buffer.concat(parts);
}

async function write(cache: S3Store['cache'], data: Uint8Array, piece = MiB): Promise<Uint8Array> {
  const w = cache.blobs.writer();
  for (let i = 0; i < data.length; i += piece) await w.write(data.subarray(i, i + piece));
  return (await w.close()).digest;
}

export function describeS3PackSuite(name: string, server: S3TestServer): void {
  const stores = s3Stores(server);
  const client = s3Client(server);
  afterAll(async () => {
    await stores.cleanup();
    await client.close();
  });

  for (const near of [undefined, 64 * MiB]) {
    const label = `${name}: S3 packs${near === undefined ? '' : ' + near cache'}`;
    blobServiceConformance(
      label,
      async () => {
        const s = await stores.open({ near });
        return {
          service: s.cache.blobs,
          corrupt: (digest) => corruptS3Chunk(s, client, stores.bucket, digest, 7),
          close: s.close,
        };
      },
      { chunker: DEFAULT_CHUNKER_PARAMS },
    );
    maintenanceConformance(label, async () => {
      const s = await stores.open({ near });
      return { cache: s.cache, close: s.close };
    });
  }

  describe(`${name}: pack objects`, () => {
    async function packKeys(s: S3Store): Promise<string[]> {
      const keys: string[] = [];
      for await (const o of client.listObjects(stores.bucket, `${s.prefix}/packs/`)) keys.push(o.key);
      return keys;
    }

    async function rowPacks(s: S3Store): Promise<Set<string>> {
      const packs = new Set<string>();
      for await (const v of s.packs.index.values()) packs.add(s.packs.packKey(decodeLocation(v)!.pack));
      return packs;
    }

    it('writes at most one PUT per 16 MiB ingested, each a pack the rows name', async () => {
      const s = await stores.open();
      try {
        const data = randomBytes(40 * MiB, 1);
        const digest = await write(s.cache, data);
        expect(s.packs.stats.puts).toBeLessThanOrEqual(Math.ceil(data.length / (16 * MiB)));
        const keys = await packKeys(s);
        expect(keys).toHaveLength(s.packs.stats.packs);
        expect([...(await rowPacks(s))].sort()).toEqual([...keys].sort());
        expect((await readAll(s.cache, digest)).equals(data)).toBe(true);
      } finally {
        await s.close();
      }
    });

    it('a tarball of small files fills its packs too: at most one PUT per 16 MiB of files', async () => {
      // 2,400 files of 16 KiB (one chunk each): ingested one member at a time, as an archive is read.
      // Each file's blob was once finished before the next 32 could start, so a pack held ~100 KiB.
      const s = await stores.open();
      try {
        const files = Array.from({ length: 2400 }, (_, i) => ({
          name: `src/f${i}.c`,
          body: randomBytes(16 * 1024, 100 + i),
        }));
        const tar = tarArchive(files.map((f) => tarMember({ name: f.name, content: f.body })));
        const r = await ingestTarball(chunked(tar, 64 * 1024), s.cache);
        expect(r.narSum).toBeDefined();
        const bytes = files.length * 16 * 1024;
        expect(s.packs.stats.puts).toBeLessThanOrEqual(Math.ceil(bytes / (16 * MiB)));
        // The single top-level directory is the root (as Nix unpacks it); its files read back.
        if (r.node.type !== 'directory') throw new Error('not a directory');
        const dir = (await s.cache.directories.get(r.node.digest))!;
        expect(dir.count).toBe(files.length);
        for (const i of [0, 1234, 2399]) {
          const f = dir.get(`f${i}.c`);
          if (f?.type !== 'file') throw new Error(`f${i}.c is not a file`);
          expect((await readAll(s.cache, f.digest)).equals(files[i]!.body)).toBe(true);
        }
      } finally {
        await s.close();
      }
    });

    it('sends a pack larger than the multipart threshold as a multipart upload', async () => {
      const s = await stores.open({ packBytes: 16 * MiB });
      (s.packs as unknown as { multipartBytes: number }).multipartBytes = 6 * MiB;
      (s.packs as unknown as { partBytes: number }).partBytes = 5 * MiB;
      try {
        const data = randomBytes(13 * MiB, 2);
        const digest = await write(s.cache, data, 13 * MiB);
        expect(s.packs.stats.packs).toBe(1);
        expect(s.packs.stats.puts).toBe(3);
        expect((await readAll(s.cache, digest)).equals(data)).toBe(true);
      } finally {
        await s.close();
      }
    });

    it('reads neighbouring chunks with one ranged GET, a few in flight', async () => {
      const s = await stores.open();
      try {
        const data = randomBytes(16 * MiB, 3);
        const digest = await write(s.cache, data);
        const chunks = (await s.cache.blobs.stat(digest))!.chunks.length;
        s.packs.stats.gets = 0;
        expect((await readAll(s.cache, digest)).equals(data)).toBe(true);
        expect(s.packs.stats.gets).toBeLessThanOrEqual(8);
        expect(s.packs.stats.gets * 16).toBeLessThan(chunks);
        // Offsets anywhere, and chunks asked for by many readers at once.
        for (const at of [1, 5 * MiB + 3, data.length - 1]) {
          const parts: Uint8Array[] = [];
          for await (const p of (await s.cache.blobs.read(digest, at))!) parts.push(p);
          expect(Buffer.concat(parts).equals(data.subarray(at))).toBe(true);
        }
      } finally {
        await s.close();
      }
    });

    it('an upload that fails leaves no row and no visible blob', async () => {
      const proxy = await startFaultProxy(server.endpoint);
      const s = await stores.open({ endpoint: proxy.endpoint });
      try {
        proxy.inject(...Array.from({ length: 5 }, () => ({ kind: 'reset' as const, method: 'PUT' })));
        const data = randomBytes(3 * MiB, 4);
        await expect(write(s.cache, data)).rejects.toMatchObject({ code: 'ERR_STORE_BACKEND' });
        expect(await s.cache.blobs.has(blake3(data))).toBe(false);
        const rows: Uint8Array[] = [];
        for await (const k of s.cache.maintenance.keys('chunks')) rows.push(k);
        expect(rows).toEqual([]);
        // The next write goes through.
        const digest = await write(s.cache, data);
        expect((await readAll(s.cache, digest)).equals(data)).toBe(true);
      } finally {
        await s.close();
        await proxy.close();
      }
    });

    it('compaction rewrites mostly-dead packs, moves their rows and deletes packs only after the grace period', async () => {
      const s = await stores.open({ graceMs: 60_000 });
      try {
        const keep = randomBytes(2 * MiB, 5);
        const drop = randomBytes(6 * MiB, 6);
        const w1 = s.cache.blobs.writer();
        const w2 = s.cache.blobs.writer();
        await w1.write(keep);
        await w2.write(drop);
        const [a, b] = await Promise.all([w1.close(), w2.close()]);
        expect(s.packs.stats.packs).toBe(1);
        const dead = (await s.cache.blobs.stat(b.digest))!.chunks.map((c) => c.digest);
        await s.cache.maintenance.delete('chunks', dead);
        const before = await packKeys(s);
        const r = await s.cache.maintenance.compact();
        expect(r.moved).toBeGreaterThan(0);
        expect(r.packs).toBe(0); // within the grace period
        expect((await readAll(s.cache, a.digest)).equals(keep)).toBe(true);
        const named = await rowPacks(s);
        for (const k of before) expect(named.has(k)).toBe(false);
        // The old pack is a stray now, kept until the grace period is over.
        const strays = await s.cache.maintenance.strays({ remove: true });
        expect(strays).toMatchObject({ keys: before, removed: 0 });
        expect((await packKeys(s)).sort()).toEqual([...before, ...named].sort());
        (s.packs as unknown as { graceMs: number }).graceMs = 0;
        const first = await s.cache.maintenance.strays({ remove: true }); // marked now...
        expect(first?.removed).toBe(0);
        // ...and deleted once the mark is listed and old: at once on radosgw; Swift lists a new object
        // a little later, and its listing rounds the time up to the next second.
        let removed = 0;
        for (let tries = 0; removed === 0 && tries < 50; tries++) {
          if (tries > 0) await new Promise((r) => setTimeout(r, 200));
          removed = (await s.cache.maintenance.strays({ remove: true }))?.removed ?? 0;
        }
        expect(removed).toBe(1);
        expect((await packKeys(s)).sort()).toEqual([...named].sort());
        expect((await s.cache.maintenance.strays({ remove: false }))?.keys).toEqual([]);
      } finally {
        await s.close();
      }
    });

    it.runIf(cliBuilt())(
      'a writer SIGKILLed mid-ingest leaves no row without its bytes, and only strays that gc can find',
      async () => {
        const dir = mkdtempSync(join(tmpdir(), 'fc-s3-kill-'));
        const prefix = `kill-${process.pid}`;
        try {
          for (let round = 0; round < 3; round++) {
            const db = join(dir, `db${round}`);
            const child = spawn(process.execPath, ['--input-type=module', '-e', KILLED_WRITER], {
              cwd: REPO_ROOT,
              env: {
                ...process.env,
                ...s3Env(server),
                FC_DB: db,
                FC_URL: `s3://${stores.bucket}/${prefix}?endpoint=${encodeURIComponent(server.endpoint)}&region=${server.region}`,
              },
              stdio: ['ignore', 'pipe', 'pipe'],
            });
            const closed = new Promise((r) => child.on('close', r));
            let out = '';
            let err = '';
            child.stderr.on('data', (d: Buffer) => {
              err += d.toString();
            });
            const stored = await new Promise<number>((resolve) => {
              child.stdout.on('data', (d: Buffer) => {
                out += d.toString();
                const n = out.split('\n').filter((l) => l.startsWith('stored')).length;
                if (n >= 2 + round) {
                  setTimeout(() => child.kill('SIGKILL'), 20 + round * 37);
                  resolve(n);
                }
              });
              child.on('close', () => resolve(-1));
            });
            expect(stored, err).toBeGreaterThan(0);
            await closed;
            const kv = (await openLevelDb(db))!;
            const s = await stores.open({ kv, prefix });
            try {
              const blobs = s.cache.blobs as LevelBlobService;
              const digests: Uint8Array[] = [];
              for await (const k of blobs.chunks.keys()) digests.push(k.slice());
              const got = await s.packs.getMany(digests);
              got.forEach((bytes, i) => {
                expect(bytes !== undefined && Buffer.from(blake3(bytes)).equals(digests[i]!)).toBe(true);
              });
              for await (const [k, list] of blobs.blobs.iterator()) {
                const { chunks } = decodeChunkList(list, Buffer.from(k).toString('hex'));
                const have = await blobs.chunks.hasMany(chunks.map((c) => c.digest));
                expect(have.every(Boolean)).toBe(true);
              }
              for (const line of out.split('\n').filter((l) => l.startsWith('stored '))) {
                const digest = Buffer.from(line.slice(7), 'hex');
                expect((await readAll(s.cache, digest)).length).toBeGreaterThan(0);
              }
            } finally {
              await s.close();
              await kv.close();
            }
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
      120_000,
    );
  });

  describe(`${name}: near cache`, () => {
    it('a cold read fills it, a warm read asks S3 for nothing', async () => {
      const s = await stores.open({ near: 64 * MiB });
      try {
        const data = randomBytes(6 * MiB, 11);
        const digest = await write(s.cache, data);
        s.packs.stats.gets = 0;
        expect((await readAll(s.cache, digest)).equals(data)).toBe(true);
        expect(s.packs.stats.gets).toBeGreaterThan(0);
        await settle(s);
        const cold = s.packs.stats.gets;
        expect((await readAll(s.cache, digest)).equals(data)).toBe(true);
        expect(s.packs.stats.gets).toBe(cold);
        expect(s.near!.stats.hits).toBeGreaterThan(0);
      } finally {
        await s.close();
      }
    });

    it('sends segments of near packs, fetching the misses first', async () => {
      const s = await stores.open({ near: 64 * MiB });
      try {
        const data = randomBytes(5 * MiB, 12);
        const digest = await write(s.cache, data);
        const runs = await s.cache.capabilities.fileSegments!(digest);
        expect(runs).toBeDefined();
        const parts: Buffer[] = [];
        for await (const run of runs!) {
          for (const seg of run.segments) {
            const b = Buffer.alloc(seg.length);
            readSync(seg.fd, b, 0, seg.length, seg.offset);
            parts.push(b);
          }
          run.release();
        }
        expect(Buffer.concat(parts).equals(data)).toBe(true);
        expect(s.near!.stats.misses).toBeGreaterThan(0);
      } finally {
        await s.close();
      }
    });

    it('keeps to its budget by evicting whole packs; reads stay right', async () => {
      const s = await stores.open({ near: 3 * MiB });
      try {
        const blobs = [randomBytes(4 * MiB, 13), randomBytes(4 * MiB, 14)];
        const digests = [];
        for (const b of blobs) digests.push(await write(s.cache, b));
        for (let round = 0; round < 2; round++) {
          for (const [i, d] of digests.entries()) {
            expect((await readAll(s.cache, d)).equals(blobs[i]!)).toBe(true);
            await settle(s);
          }
        }
        expect(s.near!.stats.evicted).toBeGreaterThan(0);
        const local = nearLocal(s);
        const bytes = local.packs().reduce((a, p) => a + p.bytes, 0);
        expect(bytes).toBeLessThanOrEqual(3 * MiB + 2 * MiB);
      } finally {
        await s.close();
      }
    });

    it('a damaged near copy is a miss, never an error', async () => {
      const s = await stores.open({ near: 64 * MiB });
      try {
        const data = randomBytes(1 << 20, 15);
        const digest = await write(s.cache, data);
        await readAll(s.cache, digest);
        await settle(s);
        const first = (await s.cache.blobs.stat(digest))!.chunks[0]!.digest;
        await flipChunkByte(nearLocal(s), first, 3);
        const gets = s.packs.stats.gets;
        expect((await readAll(s.cache, digest)).equals(data)).toBe(true);
        expect(s.packs.stats.gets).toBe(gets + 1); // the damaged chunk, from S3
      } finally {
        await s.close();
      }
    });
  });
}

/** Waits until the near cache has appended what was read. */
async function settle(s: S3Store): Promise<void> {
  await (s.near as unknown as { filling: Promise<void> }).filling;
}

function nearLocal(s: S3Store): import('../../src/blob/packs.js').PackChunkStore {
  return (s.near as unknown as { local: import('../../src/blob/packs.js').PackChunkStore }).local;
}

/**
 * The killed writer: LevelDB metadata at FC_DB, bytes at FC_URL, blobs of 1-6 MiB written in a
 * loop, printing `stored <digest>` after each close, until it is killed.
 */
const KILLED_WRITER = `
import { randomBytes } from 'node:crypto';
import { openLevelDb } from './dist/backends/level-db.js';
import { openChunkStore } from './dist/backends/chunk-stores.js';
import { LevelBlobService } from './dist/blob/leveldb.js';
const db = await openLevelDb(process.env.FC_DB);
const blobs = new LevelBlobService(db, {
  chunkStore: await openChunkStore(process.env.FC_URL, { s3: { packBytes: 2 << 20 } }),
});
for (;;) {
  const w = blobs.writer();
  const size = (1 + Math.floor(Math.random() * 6)) << 20;
  for (let at = 0; at < size; at += 256 << 10) await w.write(randomBytes(256 << 10));
  const { digest } = await w.close();
  console.log('stored ' + Buffer.from(digest).toString('hex'));
}
`;

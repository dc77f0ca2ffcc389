/**
 * Stores whose chunk bytes are in write-once pack objects on a real
 * S3-compatible server (blob/s3-packs.ts), with and without a near cache
 * (blob/near.ts): the metadata in memory-level, the bytes through
 * backends/chunk-stores.ts as `s3://bucket/prefix?endpoint=…` names them.
 * Each store gets a prefix of its own in one bucket per test file. The
 * server is named by `PREFIX…` variables (test/storage/s3-suite.ts).
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openChunkStore } from '../../src/backends/chunk-stores.js';
import { composeKv } from '../../src/backends/kv.js';
import { openMemoryKV } from '../../src/backends/memory.js';
import type { ChunkStore } from '../../src/blob/chunk-store.js';
import { NearChunkStore } from '../../src/blob/near.js';
import type { S3PackChunkStore } from '../../src/blob/s3-packs.js';
import type { Cache } from '../../src/cache.js';
import { MemoryCoordination } from '../../src/coordination/memory.js';
import { NarCalculator } from '../../src/nar-render/nar-calc.js';
import { DEFAULT_STORE_DIR } from '../../src/nix/store-path.js';
import type { KV } from '../../src/storage/kv.js';
import { S3Client } from '../../src/storage/s3.js';
import type { S3TestServer } from '../storage/s3-suite.js';
import { chunkStoreOf } from './chunk-damage.js';

export interface S3Store {
  readonly cache: Cache;
  /** The S3 pack store (the far one, under a near cache). */
  readonly packs: S3PackChunkStore;
  readonly near: NearChunkStore | undefined;
  readonly url: string;
  readonly prefix: string;
  close(): Promise<void>;
}

export interface S3StoreOptions {
  /** A near cache of this many bytes. */
  readonly near?: number | undefined;
  /** The S3 pack store's grace period (default 0: tests see deletions at once). */
  readonly graceMs?: number | undefined;
  readonly packBytes?: number | undefined;
  /** The metadata (default: a fresh memory-level database). */
  readonly kv?: KV | undefined;
  /** A prefix to reuse (a second handle on the same store). */
  readonly prefix?: string | undefined;
  /** Reach the server through this origin instead (a fault proxy in front of it). */
  readonly endpoint?: string | undefined;
}

/** A client on the server, for tests that look at the bucket. */
export function s3Client(server: S3TestServer): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
    backoffMs: 5,
  });
}

export function s3Env(server: S3TestServer): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey };
}

export function s3Url(server: S3TestServer, bucket: string, prefix: string): string {
  return `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(server.endpoint)}&region=${server.region}`;
}

/** Stores on `server`, each in a prefix of `bucket` (created on first use, emptied by `cleanup`). */
export function s3Stores(server: S3TestServer) {
  const bucket = `fc-packs-${process.pid}-${randomBytes(4).toString('hex')}`;
  let created: Promise<void> | undefined;
  const dirs: string[] = [];

  async function open(options: S3StoreOptions = {}): Promise<S3Store> {
    created ??= (async () => {
      const c = s3Client(server);
      try {
        await c.createBucket(bucket);
      } finally {
        await c.close();
      }
    })();
    await created;
    const prefix = options.prefix ?? `s-${randomBytes(6).toString('hex')}`;
    const url = s3Url({ ...server, endpoint: options.endpoint ?? server.endpoint }, bucket, prefix);
    let cacheRoot: string | undefined;
    if (options.near !== undefined) {
      cacheRoot = mkdtempSync(join(tmpdir(), 'fc-near-'));
      dirs.push(cacheRoot);
    }
    const chunkStore = await openChunkStore(url, {
      env: s3Env(server),
      cacheRoot,
      cacheBytes: options.near,
      s3: { graceMs: options.graceMs ?? 0, packBytes: options.packBytes },
    });
    const db = options.kv ?? (await openMemoryKV());
    const store = composeKv(db, {
      root: undefined,
      storeDir: DEFAULT_STORE_DIR,
      chunkStore,
      coordination: new MemoryCoordination(),
      database: 'memory',
      close: () => (options.kv === undefined ? db.close() : Promise.resolve()),
    });
    const cache: Cache = { ...store, narCalc: new NarCalculator(store.narSums, store) };
    const top = chunkStoreOf(cache);
    const near = top instanceof NearChunkStore ? top : undefined;
    const packs = (near === undefined ? top : farOf(near)) as S3PackChunkStore;
    return { cache, packs, near, url, prefix, close: () => cache.close() };
  }

  async function cleanup(): Promise<void> {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (created === undefined) return;
    const c = s3Client(server);
    try {
      const keys: string[] = [];
      for await (const o of c.listObjects(bucket, '')) keys.push(o.key);
      await c.deleteObjects(bucket, keys);
    } finally {
      await c.close();
    }
  }

  return { bucket, open, cleanup };
}

function farOf(near: NearChunkStore): ChunkStore {
  return (near as unknown as { far: ChunkStore }).far;
}

/** Flip a bit of byte `index` of a chunk where the S3 pack store keeps it (rewriting its pack object). */
export async function corruptS3Chunk(
  store: S3Store,
  client: S3Client,
  bucket: string,
  digest: Uint8Array,
  index: number,
): Promise<void> {
  await flipPackByte(store.packs, client, bucket, digest, index);
}

/**
 * Flip a bit of byte `index` of a chunk of an open cache whose bytes are S3 packs on `server`, under a near
 * cache or not (a near copy is checked against its digest: reads then find the far bytes damaged).
 */
export async function corruptS3CacheChunk(
  server: S3TestServer,
  cache: Cache,
  digest: Uint8Array,
  index: number,
): Promise<void> {
  const top = chunkStoreOf(cache);
  const packs = (top instanceof NearChunkStore ? farOf(top) : top) as S3PackChunkStore;
  const bucket = (packs as unknown as { bucket: string }).bucket;
  const client = s3Client(server);
  try {
    await flipPackByte(packs, client, bucket, digest, index);
  } finally {
    await client.close();
  }
}

async function flipPackByte(
  packs: S3PackChunkStore,
  client: S3Client,
  bucket: string,
  digest: Uint8Array,
  index: number,
): Promise<void> {
  const { decodeLocation } = await import('../../src/blob/packs.js');
  const row = await packs.index.get(digest);
  const loc = row === undefined ? undefined : decodeLocation(row);
  if (loc === undefined) throw new Error('no such chunk');
  const key = packs.packKey(loc.pack);
  const bytes = await client.getObjectBytes(bucket, key);
  bytes[loc.offset + (index % loc.length)]! ^= 0x01;
  await client.putObject(bucket, key, bytes);
}

/**
 * Byte stores by URL: where a store whose metadata is in a shared database
 * keeps its chunk bytes (blob/chunk-store.ts). The one place that builds a
 * chunk store from a URL:
 *
 *   file:///abs/dir                       pack files in a directory (blob/packs.ts)
 *   s3://bucket/prefix?endpoint=…&region=…  write-once pack objects (blob/s3-packs.ts),
 *                                         credentials from AWS_* (storage/s3.ts)
 *
 * With `cacheRoot` (`--cache-root DIR`), an S3 byte store is read through a
 * near cache of at most `cacheBytes` (`--cache-size`) in that directory
 * (blob/near.ts): `DIR/db` its index (sublevel `chunks` of a LevelDB any
 * number of processes on this machine share, storage/shared-db.ts) and
 * `DIR/packs/` its pack files.
 */

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChunkStore } from '../blob/chunk-store.js';
import { NearChunkStore } from '../blob/near.js';
import { PackChunkStore } from '../blob/packs.js';
import { S3PackChunkStore, type S3PackOptions } from '../blob/s3-packs.js';
import { FetchCacheError } from '../errors.js';
import { binarySublevel, type KV } from '../storage/kv.js';
import { parseS3Url, S3Client } from '../storage/s3.js';
import { openSharedDb } from '../storage/shared-db.js';
import { openLevelDb } from './level-db.js';

/** Near cache bytes when `cacheRoot` is given without `cacheBytes`. */
export const DEFAULT_CACHE_BYTES = 10 * 1024 ** 3;

export interface ChunkStoreOptions {
  /** The near cache's directory (`--cache-root`); none: reads go to the byte store itself. */
  readonly cacheRoot?: string | undefined;
  /** Bytes the near cache keeps at most (`--cache-size`; default 10 GiB). */
  readonly cacheBytes?: number | undefined;
  /** Chunk locations to remember, for a long-lived reader (`serve`); default 0. */
  readonly locationCache?: number | undefined;
  /** Where credentials are read (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Tuning of an S3 byte store (tests: a short grace period, small packs). */
  readonly s3?: Partial<Omit<S3PackOptions, 'client' | 'bucket' | 'prefix'>> | undefined;
}

/** A chunk store for the byte store at `url`, given the chunk index (what composeKv's `chunkStore` takes). */
export async function openChunkStore(
  url: string,
  options: ChunkStoreOptions = {},
): Promise<(index: KV) => ChunkStore> {
  if (url.startsWith('file:')) {
    let dir: string;
    try {
      dir = resolve(fileURLToPath(url));
    } catch {
      throw badBytesUrl(url, 'a file: byte store is a directory by its absolute path: file:///abs/dir');
    }
    mkdirSync(dir, { recursive: true });
    return (index) => new PackChunkStore(index, dir, { locationCache: options.locationCache ?? 0 });
  }
  if (!url.startsWith('s3:'))
    throw badBytesUrl(url, 'byte stores are file:///abs/dir and s3://bucket/prefix');
  const location = parseS3Url(url, options.env);
  const client = S3Client.forLocation(location, options.env);
  const far = (index: KV) =>
    new S3PackChunkStore(index, { ...options.s3, client, bucket: location.bucket, prefix: location.prefix });
  if (options.cacheRoot === undefined) return far;
  const root = resolve(options.cacheRoot);
  const near = await openNearIndex(root);
  return (index) => {
    let store: NearChunkStore | undefined;
    const bytes = options.cacheBytes ?? DEFAULT_CACHE_BYTES;
    const local = new PackChunkStore(binarySublevel(near.db, 'chunks'), join(root, 'packs'), {
      packBytes: Math.min(64 << 20, Math.max(1 << 20, Math.floor(bytes / 8))),
      locationCache: options.locationCache ?? 0,
      onLocate: (pack) => store?.used(pack),
    });
    store = new NearChunkStore({ far: far(index), local, bytes, closeLocal: () => near.close() });
    return store;
  };
}

/** The near cache's index: a LevelDB under `root`, shared by the processes of this machine that use it. */
async function openNearIndex(root: string): Promise<{ db: KV; close(): Promise<void> }> {
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    throw new FetchCacheError('ERR_IO', `cannot use '${root}' as the near cache: ${(e as Error).message}`, {
      path: root,
      cause: e,
    });
  }
  const location = join(root, 'db');
  const shared = await openSharedDb(root, {
    location,
    open: () => openLevelDb(location),
    owner: () => 'another process using the near cache',
  });
  return { db: shared.db, close: () => shared.close() };
}

function badBytesUrl(url: string, why: string): FetchCacheError {
  const shown = url.replace(/\/\/[^/?#@]*@/, '//***@');
  return new FetchCacheError('ERR_BAD_URL', `bad byte store URL '${shown}': ${why}`, { path: shown });
}

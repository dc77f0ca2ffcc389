/**
 * Byte stores by URL: where the chunk bytes of a store whose records live
 * elsewhere (a `postgres://` store) go, given as `--blob-store URL`,
 * `FETCH_CACHE_BLOB_STORE` or `StoreOptions.blobStore`. The one place that
 * knows these URLs; the store's backend hands the opened store the chunk
 * index (blob/chunk-store.ts), whose rows say where each chunk's bytes are.
 *
 *   file:///abs/dir   pack files in a directory (blob/packs.ts), shared by the
 *                     processes of one machine: a pack counts as finished
 *                     (compaction may rewrite it) when its writer's pid is not
 *                     running here, so machines must not share one directory
 *                     (over NFS, say) — across machines use object storage
 *   s3://bucket/prefix?endpoint=…&region=…
 *                     write-once pack objects (blob/s3-packs.ts), credentials
 *                     from AWS_* (storage/s3.ts)
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
import type { S3PackOptions } from '../blob/s3-packs.js';
import { FetchCacheError } from '../errors.js';
import { binarySublevel, type KV } from '../storage/kv.js';

/** Near cache bytes when `cacheRoot` is given without `cacheBytes`. */
export const DEFAULT_CACHE_BYTES = 10 * 1024 ** 3;

export interface ChunkStoreOptions {
  /** Chunk locations to remember, for a long-lived reader (`serve`); default 0. */
  readonly locationCache?: number | undefined;
  /** The near cache's directory (`--cache-root`); none: reads go to the byte store itself. */
  readonly cacheRoot?: string | undefined;
  /** Bytes the near cache keeps at most (`--cache-size`; default 10 GiB). */
  readonly cacheBytes?: number | undefined;
  /** Where credentials are read (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Tuning of an S3 byte store (tests: a short grace period, small packs). */
  readonly s3?: Partial<Omit<S3PackOptions, 'client' | 'bucket' | 'prefix'>> | undefined;
}

/** Makes the chunk store over the chunk index of the store (blob/leveldb.ts calls it once). */
export type ChunkStoreFactory = (index: KV) => ChunkStore;

interface ByteStore {
  /** The URL form, for messages. */
  readonly form: string;
  /** Throws ERR_BAD_URL unless this byte store can use `url`. */
  check(url: URL, text: string): void;
  open(url: URL, options: ChunkStoreOptions): Promise<ChunkStoreFactory>;
}

const BYTE_STORES: Readonly<Record<string, ByteStore>> = {
  'file:': {
    form: 'file:///abs/dir',
    check(url, text) {
      if (url.host !== '' || url.search !== '' || url.hash !== '' || !url.pathname.startsWith('/')) {
        throw badBlobStore(text, 'a file: blob store is a directory by its absolute path: file:///abs/dir');
      }
    },
    async open(url, options) {
      const dir = fileURLToPath(url);
      const { PackChunkStore } = await import('../blob/packs.js');
      return (index) => {
        try {
          return new PackChunkStore(index, dir, { locationCache: options.locationCache ?? 0 });
        } catch (e) {
          throw new FetchCacheError(
            'ERR_IO',
            `cannot use '${dir}' for chunk bytes: ${(e as Error).message}`,
            { path: dir, cause: e },
          );
        }
      };
    },
  },
  's3:': {
    form: 's3://bucket/prefix?endpoint=…&region=…',
    check() {
      // parseS3Url, at open, says what is wrong with an S3 URL.
    },
    async open(url, options) {
      const { parseS3Url, S3Client } = await import('../storage/s3.js');
      const { S3PackChunkStore } = await import('../blob/s3-packs.js');
      const location = parseS3Url(url.href, options.env);
      const client = S3Client.forLocation(location, options.env);
      const far = (index: KV) =>
        new S3PackChunkStore(index, {
          ...options.s3,
          client,
          bucket: location.bucket,
          prefix: location.prefix,
        });
      if (options.cacheRoot === undefined) return far;
      return nearCache(far, resolve(options.cacheRoot), options);
    },
  },
};

/** `far` read through a near cache in `root` (blob/near.ts). */
async function nearCache(
  far: ChunkStoreFactory,
  root: string,
  options: ChunkStoreOptions,
): Promise<ChunkStoreFactory> {
  const { NearChunkStore } = await import('../blob/near.js');
  const { PackChunkStore } = await import('../blob/packs.js');
  const near = await openNearIndex(root);
  return (index) => {
    let store: InstanceType<typeof NearChunkStore> | undefined;
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
  const { openSharedDb } = await import('../storage/shared-db.js');
  const { openLevelDb } = await import('./level-db.js');
  const location = join(root, 'db');
  const shared = await openSharedDb(root, {
    location,
    open: () => openLevelDb(location),
    owner: () => 'another process using the near cache',
  });
  return { db: shared.db, close: () => shared.close() };
}

/** A URL for messages: without a password. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/@]*@/i, '$1***@');
}

function badBlobStore(text: string, why: string): FetchCacheError {
  const shown = redactUrl(text);
  return new FetchCacheError('ERR_BAD_URL', `bad blob store URL '${shown}': ${why}`, { path: shown });
}

/** The blob store URL checked (ERR_BAD_URL when no byte store opens it). */
export function parseBlobStoreUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badBlobStore(
      text,
      `not a URL (${Object.values(BYTE_STORES)
        .map((b) => b.form)
        .join(', ')})`,
    );
  }
  const store = BYTE_STORES[url.protocol];
  if (store === undefined) {
    throw badBlobStore(text, `no byte store for '${url.protocol}' (${Object.keys(BYTE_STORES).join(', ')})`);
  }
  store.check(url, text);
  return url;
}

/** The chunk store at `text`, to be made over the store's chunk index. */
export async function openChunkStore(
  text: string,
  options: ChunkStoreOptions = {},
): Promise<ChunkStoreFactory> {
  const url = parseBlobStoreUrl(text);
  return BYTE_STORES[url.protocol]!.open(url, options);
}

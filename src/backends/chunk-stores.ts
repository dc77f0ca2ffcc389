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
 */

import { fileURLToPath } from 'node:url';
import type { ChunkStore } from '../blob/chunk-store.js';
import { FetchCacheError } from '../errors.js';
import type { KV } from '../storage/kv.js';

export interface ChunkStoreOptions {
  /** Chunk locations to remember, for a long-lived reader (`serve`); default 0. */
  readonly locationCache?: number | undefined;
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
};

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

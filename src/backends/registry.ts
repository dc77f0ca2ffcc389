/**
 * Backends by URL, as snix's `from_addr`: the scheme of a store URL picks
 * the module that opens it, loaded only when used. A backend turns the URL
 * and the options into every service of a store (cache.ts `StoreServices`);
 * nothing outside src/backends/ and cache.ts builds one.
 *
 *   level:///abs/root   a cache root on this machine (level.ts); the default
 *                       root and `--root DIR` mean `level://DIR`
 *   memory:             a store in this process's memory (memory.ts)
 *   postgres://user@host:port/database
 *                       records in PostgreSQL, shared by any number of
 *                       machines, chunk bytes in the blob store given beside
 *                       it (`blobStore`: chunk-stores.ts) (postgres.ts)
 *
 * A new backend (a database for metadata, an object store for chunk bytes,
 * a read-through combinator) is a module with an opener, one entry below,
 * and the conformance suites of test/ run over it (docs/architecture.md).
 */

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StoreServices } from '../cache.js';
import { FetchCacheError } from '../errors.js';
import { parseBlobStoreUrl, redactUrl } from './chunk-stores.js';

export interface StoreOptions {
  /** The store dir asked for (canonical); undefined: the one the store records, else `/nix/store`. */
  readonly storeDir?: string | undefined;
  /** How long to wait for a process that holds a local database but does not serve it (default 10 s). */
  readonly lockTimeoutMs?: number | undefined;
  /** Told once when we start waiting for another process. */
  readonly onWait?: ((owner: string) => void) | undefined;
  /** Chunk locations to remember, for a long-lived reader (`serve`); default 0. */
  readonly locationCache?: number | undefined;
  /** A near cache of a remote byte store in this directory (`--cache-root`; blob/near.ts); ignored where bytes are local. */
  readonly cacheRoot?: string | undefined;
  /** Bytes the near cache keeps at most (`--cache-size`; default 10 GiB). */
  readonly cacheBytes?: number | undefined;
  /** Rebuild a database that cannot be opened or read, keeping what it still holds (verify --repair). */
  readonly repairDatabase?: boolean | undefined;
  /** Told when the database was rebuilt (then `maintenance.reindex()` finds the chunks it lost). */
  readonly onDatabaseRepaired?: ((how: string) => void) | undefined;
  /**
   * Where chunk bytes go, for a store whose records are elsewhere (`postgres://`): a byte store URL
   * (chunk-stores.ts). Required there, refused by a store that keeps its own bytes.
   */
  readonly blobStore?: string | undefined;
  /** Where a byte store reads its settings (the S3 credentials, `AWS_*`); default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
}

interface Backend {
  /** The part of a URL that may follow the scheme, for messages. */
  readonly form: string;
  /** Throws ERR_BAD_URL unless `url` is one this backend opens. */
  check(url: URL, text: string): void;
  open(url: URL, options: StoreOptions): Promise<StoreServices>;
  /** Whether the store keeps chunk bytes in a blob store given beside it (`StoreOptions.blobStore`). */
  readonly blobStore?: boolean;
  /** Brings the store's schema up to this code's (`fetch-cache migrate`), where it has one. */
  migrate?(url: URL): Promise<{ from: number; to: number }>;
}

const postgres: Backend = {
  form: 'postgres://user@host:port/database',
  check(url, text) {
    if (url.hash !== '') throw badUrl(text, 'a postgres:// store URL has no #fragment');
  },
  blobStore: true,
  async open(url, options) {
    const { openPostgresStore } = await import('./postgres.js');
    return openPostgresStore(url.href, options);
  },
  async migrate(url) {
    const { migratePostgresStore } = await import('./postgres.js');
    return migratePostgresStore(url.href);
  },
};

const BACKENDS: Readonly<Record<string, Backend>> = {
  'level:': {
    form: 'level:///abs/root',
    check(url, text) {
      if (url.host !== '' || !url.pathname.startsWith('/') || url.search !== '' || url.hash !== '') {
        throw badUrl(text, 'a level: store is a cache root by its absolute path: level:///abs/root');
      }
    },
    async open(url, options) {
      const { openLevelStore } = await import('./level.js');
      return openLevelStore(levelRoot(url), options);
    },
  },
  'memory:': {
    form: 'memory:',
    check(url, text) {
      if (url.href !== 'memory:') throw badUrl(text, 'a memory: store takes nothing after the scheme');
    },
    async open(_url, options) {
      const { openMemoryStore } = await import('./memory.js');
      return openMemoryStore(options);
    },
  },
  'postgres:': postgres,
  'postgresql:': postgres,
};

function badUrl(text: string, why: string): FetchCacheError {
  return new FetchCacheError('ERR_BAD_URL', `bad store URL '${redactUrl(text)}': ${why}`, {
    path: redactUrl(text),
  });
}

/** The store URL of a cache root. */
export function levelUrl(root: string): string {
  return `level://${pathToFileURL(resolve(root)).pathname}`;
}

function levelRoot(url: URL): string {
  return resolve(decodeURIComponent(url.pathname));
}

/** The store URL checked against its backend (ERR_BAD_URL when no backend opens it). */
export function parseStoreUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badUrl(
      text,
      `not a URL (${Object.values(BACKENDS)
        .map((b) => b.form)
        .join(', ')})`,
    );
  }
  const backend = BACKENDS[url.protocol];
  if (backend === undefined) {
    throw badUrl(text, `no backend for '${url.protocol}' (${Object.keys(BACKENDS).join(', ')})`);
  }
  backend.check(url, text);
  return url;
}

/**
 * The store URL and the blob store URL checked together (ERR_BAD_URL): a blob store only for a
 * store that keeps its bytes in one, and then one it can open.
 */
export function checkStoreUrls(text: string, blobStore: string | undefined): URL {
  const url = parseStoreUrl(text);
  if (blobStore !== undefined) {
    if (BACKENDS[url.protocol]!.blobStore !== true) {
      throw badUrl(
        text,
        `a ${url.protocol} store keeps its own chunk bytes: no blob store (${redactUrl(blobStore)})`,
      );
    }
    parseBlobStoreUrl(blobStore);
  }
  return url;
}

/** Every service of the store at `text`, opened by its backend. */
export async function openStore(text: string, options: StoreOptions = {}): Promise<StoreServices> {
  const url = checkStoreUrls(text, options.blobStore);
  return BACKENDS[url.protocol]!.open(url, options);
}

/**
 * Brings the schema of the store at `text` up to this code's (`fetch-cache migrate`); returns the
 * versions before and after. A store without a schema (a cache root, memory) is ERR_BAD_URL.
 */
export async function migrateStore(text: string): Promise<{ from: number; to: number }> {
  const url = parseStoreUrl(text);
  const backend = BACKENDS[url.protocol]!;
  if (backend.migrate === undefined) {
    throw badUrl(text, `a ${url.protocol} store has no schema to migrate (only postgres:// stores have one)`);
  }
  return backend.migrate(url);
}

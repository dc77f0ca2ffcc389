/**
 * Backends by URL, as snix's `from_addr`: the scheme of a store URL picks
 * the module that opens it, loaded only when used. A backend turns the URL
 * and the options into every service of a store (cache.ts `StoreServices`);
 * nothing outside src/backends/ and cache.ts builds one.
 *
 *   level:///abs/root   a cache root on this machine (level.ts); the default
 *                       root and `--root DIR` mean `level://DIR`
 *   memory:             a store in this process's memory (memory.ts)
 *
 * A new backend (a database for metadata, an object store for chunk bytes,
 * a read-through combinator) is a module with an opener, one entry below,
 * and the conformance suites of test/ run over it (docs/architecture.md).
 */

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StoreServices } from '../cache.js';
import { FetchCacheError } from '../errors.js';

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
}

interface Backend {
  /** The part of a URL that may follow the scheme, for messages. */
  readonly form: string;
  /** Throws ERR_BAD_URL unless `url` is one this backend opens. */
  check(url: URL, text: string): void;
  open(url: URL, options: StoreOptions): Promise<StoreServices>;
}

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
};

function badUrl(text: string, why: string): FetchCacheError {
  return new FetchCacheError('ERR_BAD_URL', `bad store URL '${redact(text)}': ${why}`, {
    path: redact(text),
  });
}

/** A URL for messages: without a password. */
function redact(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/@]*@/i, '$1***@');
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

/** Every service of the store at `text`, opened by its backend. */
export async function openStore(text: string, options: StoreOptions = {}): Promise<StoreServices> {
  const url = parseStoreUrl(text);
  return BACKENDS[url.protocol]!.open(url, options);
}

/**
 * `openCache()`: the one composition root. Picks the store from
 * configuration (a store URL, a root, or the default root), has its backend
 * open every service of it (backends/registry.ts), and hands them out as a
 * `Cache`: services, never storage. Everything above (fetchers, lock,
 * server, gc/verify/stats) sees these interfaces only; which interface a
 * backend implements, and which suites it passes, is in
 * docs/architecture.md.
 */

import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { levelUrl, openStore } from './backends/registry.js';
import type { Capabilities } from './blob/capabilities.js';
import type { BlobService } from './blob/service.js';
import type { Coordination } from './coordination/service.js';
import type { DirectoryService } from './directory/service.js';
import type { FetchRecords } from './fetchers/fetch-index.js';
import type { Maintenance } from './maintenance/service.js';
import { NarCalculator, type NarSums } from './nar-render/nar-calc.js';
import { canonicalStoreDir } from './nix/store-path.js';
import type { PathInfoService } from './pathinfo/service.js';

export { LAYOUT_VERSION } from './backends/level.js';

/** Where `openCache` finds the store (a store URL, a root, memory) and how it opens it. */
export interface CacheOptions {
  /**
   * The store, by URL: `level:///abs/root` (a cache root), `memory:` (this process's memory), the
   * backends of backends/registry.ts. Default: `root`; else `FETCH_CACHE_STORE`; else the default root.
   */
  store?: string | undefined;
  /** A cache root, `level://<root>`; default from `FETCH_CACHE_ROOT`, then the platform cache dir. */
  root?: string | undefined;
  /**
   * Where chunk bytes go, for a store that keeps them beside its records (`postgres://`): a byte store
   * URL, `file:///abs/dir` (backends/chunk-stores.ts). Default: `FETCH_CACHE_BLOB_STORE`.
   */
  blobStore?: string | undefined;
  /**
   * The store dir (canonicalised, must be absolute); default the one the store records, else `/nix/store`.
   * A different one than the store records is ERR_STORE_DIR.
   */
  storeDir?: string | undefined;
  /** A near cache of a remote byte store in this directory (blob/near.ts); stores with local bytes ignore it. */
  cacheRoot?: string | undefined;
  /** Bytes the near cache keeps at most (default 10 GiB). */
  cacheBytes?: number | undefined;
  /** Keep everything in memory: the store `memory:` (tests, throwaway use). */
  memory?: boolean;
  /** How long to wait for a process that holds the database but does not serve it (default 10 s). */
  lockTimeoutMs?: number;
  /** Told once when we start waiting for another process. */
  onWait?: (owner: string) => void;
  /** Where settings are read (`FETCH_CACHE_*`, a byte store's credentials `AWS_*`); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Chunk locations the pack store remembers (blob/packs.ts), for a long-lived reader (`serve`); default 0. */
  locationCache?: number;
  /** Rebuild a database that cannot be opened or read, keeping what it still holds (verify --repair). */
  repairDatabase?: boolean;
  /** Told when the database was rebuilt (then the chunks it lost are indexed again: `maintenance.reindex`). */
  onDatabaseRepaired?: (how: string) => void;
}

/**
 * An open store, as `openCache` returns it: its services (blobs, directories, path infos, fetch records,
 * maintenance, coordination), never its storage. Close it when done.
 */
export interface Cache {
  /** The local cache root (git mirrors and spool files live under it), or `undefined` when there is none. */
  readonly root: string | undefined;
  readonly storeDir: string;
  readonly blobs: BlobService;
  readonly directories: DirectoryService;
  readonly pathInfos: PathInfoService;
  /** The NAR-sum cache (nar-render/nar-calc.ts). */
  readonly narSums: NarSums;
  /** NAR sums from `narSums`, computed where it has none. */
  readonly narCalc: NarCalculator;
  /** The fetch records of src/fetchers/fetch-index.ts (URL → last result, ETag) and of lock/remote-refs.ts. */
  readonly fetchIndex: FetchRecords;
  /** gc, verify, stats and repair see and change the store through this (maintenance/service.ts). */
  readonly maintenance: Maintenance;
  /**
   * What the processes using the store agree on (coordination/service.ts): gc exclusion (writers run
   * under `ingest`; reading what is stored needs nothing), use leases, last uses, the path-info change
   * stamp, pending uploads.
   */
  readonly coordination: Coordination;
  /** Fast paths the store offers beyond the service contracts (blob/capabilities.ts); callers probe them. */
  readonly capabilities: Capabilities;
  /** Writes the uses still pending, then releases the store. */
  close(): Promise<void>;
}

/** What a backend opens (backends/registry.ts): every service of a store; the cache adds `narCalc`. */
export type StoreServices = Omit<Cache, 'narCalc'>;

/** `--root` > `FETCH_CACHE_ROOT` > `$XDG_CACHE_HOME/fetch-cache` > `~/.cache/fetch-cache`. */
export function resolveRoot(root: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (root) return resolve(root);
  if (env.FETCH_CACHE_ROOT) return resolve(env.FETCH_CACHE_ROOT);
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'fetch-cache');
}

/** The store URL the options name: `store`, `memory`, `root`, then `FETCH_CACHE_STORE`, then the default root. */
export function storeUrl(options: Pick<CacheOptions, 'store' | 'root' | 'memory' | 'env'> = {}): string {
  const given = [options.store, options.memory ? 'memory:' : undefined, options.root].filter(Boolean);
  if (given.length > 1) throw new TypeError('openCache takes one of store, memory and root');
  const env = options.env ?? process.env;
  if (options.store) return options.store;
  if (options.memory) return 'memory:';
  if (!options.root && env.FETCH_CACHE_STORE) return env.FETCH_CACHE_STORE;
  return levelUrl(resolveRoot(options.root, env));
}

/**
 * Opens the store the options name (`store`, `memory`, `root`, then `FETCH_CACHE_STORE`,
 * `FETCH_CACHE_ROOT`, the default root), creating a cache root on first use. ERR_STORE_LOCKED,
 * ERR_STORE_VERSION, ERR_STORE_DIR and ERR_DB_DAMAGED when it cannot be opened as it is.
 */
export async function openCache(options: CacheOptions = {}): Promise<Cache> {
  const env = options.env ?? process.env;
  const store = await openStore(storeUrl(options), {
    blobStore: options.blobStore ?? (env.FETCH_CACHE_BLOB_STORE || undefined),
    storeDir: options.storeDir === undefined ? undefined : canonicalStoreDir(options.storeDir),
    lockTimeoutMs: options.lockTimeoutMs,
    onWait: options.onWait,
    locationCache: options.locationCache,
    cacheRoot: options.cacheRoot,
    cacheBytes: options.cacheBytes,
    repairDatabase: options.repairDatabase,
    onDatabaseRepaired: options.onDatabaseRepaired,
    env,
  });
  return { ...store, narCalc: new NarCalculator(store.narSums, store) };
}

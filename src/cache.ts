/**
 * `openCache()`: the one composition root. Resolves the cache root, checks the
 * on-disk layout version, opens the LevelDB under `<root>/db` (or an in-memory
 * database) and builds every service on its own sublevel (the fetch index
 * of the fetchers included).
 *
 * Layout (version 2): `<root>/layout.json` = `{"layout":2,"storeDir":"/nix/store"}`
 * (the store dir its paths are made for: store-dir.ts); `<root>/db` the
 * LevelDB; `<root>/packs/` the pack files holding chunk bytes (blob/packs.ts;
 * layout 1 kept them inside the database and is refused, with a hint: a cache
 * can be deleted and refilled); `<root>/pathinfo.gen` changes with every path
 * info write (coordination/change-stamp.ts); `<root>/owner.json` names the process that has the database open;
 * `<root>/db.sock` the socket over which that process serves the database to
 * the others. `<root>/tmp` holds spool files (fs/temp.ts); opening removes
 * those of processes no longer running. `<root>/reserve` is space held back for opening LevelDB on a
 * full disk (cache-db.ts, which opens the database: the one file that knows
 * the backend). LevelDB admits one opener, so every further process on the
 * same root reaches the database through the opener (storage/shared-db.ts)
 * and takes over when it exits; only when the lock is held and nobody
 * answers does it wait up to `lockTimeoutMs`, then fail with
 * ERR_STORE_LOCKED naming the owner.
 */

import { linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FETCH_SUBLEVEL, KvFetchRecords, KvNarSums, NARCALC_SUBLEVEL } from './backends/kv.js';
import type { ChunkStore } from './blob/chunk-store.js';
import { BLOBS_SUBLEVEL, CHUNKS_SUBLEVEL, LevelBlobService, LISTSUMS_SUBLEVEL } from './blob/leveldb.js';
import type { BlobService } from './blob/service.js';
import { damaged, openLevelDb } from './cache-db.js';
import { LocalCoordination } from './coordination/local.js';
import { MemoryCoordination } from './coordination/memory.js';
import type { Coordination } from './coordination/service.js';
import { DIRECTORY_SUBLEVEL, LevelDirectoryService } from './directory/leveldb.js';
import type { DirectoryService } from './directory/service.js';
import { FetchCacheError } from './errors.js';
import type { FetchRecords } from './fetchers/fetch-index.js';
import { removeStaleTempDirs } from './fs/temp.js';
import { KvMaintenance } from './maintenance/kv.js';
import type { Maintenance } from './maintenance/service.js';
import { NarCalculator, type NarSums } from './nar-render/nar-calc.js';
import { canonicalStoreDir, DEFAULT_STORE_DIR } from './nix/store-path.js';
import { LevelPathInfoService, NARHASH_SUBLEVEL, PATHINFO_SUBLEVEL } from './pathinfo/leveldb.js';
import type { PathInfoService } from './pathinfo/service.js';
import { binarySublevel, isCorruption, type KV, openMemoryKV } from './storage/kv.js';
import { openSharedDb } from './storage/shared-db.js';
import { adoptStoreDir, recordStoreDir, storeDirMismatch } from './store-dir.js';

export const LAYOUT_VERSION = 2;

export interface CacheOptions {
  /** Cache root; default from `FETCH_CACHE_ROOT`, then the platform cache dir. Ignored with `memory`. */
  root?: string | undefined;
  /**
   * The store dir (canonicalised, must be absolute); default the one the root records, else `/nix/store`.
   * A different one than the root records is ERR_STORE_DIR.
   */
  storeDir?: string | undefined;
  /** Keep everything in memory (tests, throwaway use). */
  memory?: boolean;
  /** How long to wait for a process that holds the database but does not serve it (default 10 s). */
  lockTimeoutMs?: number;
  /** Told once when we start waiting for another process. */
  onWait?: (owner: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Chunk locations the pack store remembers (blob/packs.ts), for a long-lived reader (`serve`); default 0. */
  locationCache?: number;
  /** Rebuild a database that cannot be opened or read, keeping what it still holds (cache-db.ts; verify --repair). */
  repairDatabase?: boolean;
  /** Told when the database was rebuilt (then the chunks in the packs should be indexed again: `maintenance.reindex`). */
  onDatabaseRepaired?: (how: string) => void;
}

export interface Cache {
  /** The cache root directory, or `undefined` in memory. */
  readonly root: string | undefined;
  readonly storeDir: string;
  readonly blobs: BlobService;
  /** Where the blob service keeps chunk bytes (pack files on disk), for gc, verify and stats. */
  readonly chunkStore: ChunkStore;
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
  /** The whole database, for operations over every sublevel (src/ops/: gc, verify, stats, leases). */
  readonly db: KV;
  /**
   * What the processes using the store agree on (coordination/service.ts): gc exclusion (writers run
   * under `ingest`; reading what is stored needs nothing), use leases, last uses, the path-info change
   * stamp, pending uploads.
   */
  readonly coordination: Coordination;
  /** Writes the uses still pending, then releases the store. */
  close(): Promise<void>;
}

/** `--root` > `FETCH_CACHE_ROOT` > `$XDG_CACHE_HOME/fetch-cache` > `~/.cache/fetch-cache`. */
export function resolveRoot(root: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (root) return resolve(root);
  if (env.FETCH_CACHE_ROOT) return resolve(env.FETCH_CACHE_ROOT);
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'fetch-cache');
}

export async function openCache(options: CacheOptions = {}): Promise<Cache> {
  const asked = options.storeDir === undefined ? undefined : canonicalStoreDir(options.storeDir);
  if (options.memory) {
    return compose(await openMemoryKV(), undefined, asked ?? DEFAULT_STORE_DIR, async () => {});
  }
  const root = resolveRoot(options.root, options.env);
  let layout: Record<string, unknown>;
  try {
    makeDirectory(root);
    layout = checkLayout(root, asked ?? DEFAULT_STORE_DIR);
    removeStaleTempDirs(root);
  } catch (e) {
    if (e instanceof FetchCacheError) throw e;
    const why = e instanceof Error ? e.message : String(e);
    throw new FetchCacheError('ERR_IO', `cannot use '${root}' as the cache root: ${why}`, {
      path: root,
      cause: e,
    });
  }
  const recorded = typeof layout.storeDir === 'string' ? layout.storeDir : undefined;
  if (recorded !== undefined && asked !== undefined && recorded !== asked) {
    throw storeDirMismatch(root, recorded, asked);
  }
  const storeDir = recorded ?? asked ?? DEFAULT_STORE_DIR;
  const ownerFile = join(root, 'owner.json');
  const location = join(root, 'db');
  const shared = await openSharedDb(root, {
    location,
    open: () =>
      openLevelDb(location, {
        root,
        repair: options.repairDatabase,
        onRepaired: options.onDatabaseRepaired,
      }),
    timeoutMs: options.lockTimeoutMs,
    owner: () => describeOwner(root),
    onWait: options.onWait,
    onHost: (hosting) => {
      if (hosting) {
        writeFileSync(
          ownerFile,
          JSON.stringify({ pid: process.pid, command: process.argv.slice(1).join(' ') }),
        );
      } else if (ownedByUs(ownerFile)) {
        rmSync(ownerFile, { force: true });
      }
    },
  });
  const cache = compose(shared.db, root, storeDir, () => shared.close(), {
    locationCache: options.locationCache ?? 0,
  });
  if (recorded === undefined) {
    // A root from before the store dir was recorded (store-dir.ts).
    try {
      const adopted = await adoptStoreDir(root, cache.pathInfos, asked);
      recordStoreDir(root, layout, adopted);
      if (adopted !== storeDir) throw storeDirMismatch(root, adopted, storeDir);
    } catch (e) {
      await cache.close();
      if (e instanceof FetchCacheError) throw e;
      throw new FetchCacheError(
        'ERR_IO',
        `cannot record the store dir of '${root}': ${(e as Error).message}`,
        {
          path: root,
          cause: e,
        },
      );
    }
  }
  return cache;
}

function ownedByUs(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { pid?: number }).pid === process.pid;
  } catch {
    return false;
  }
}

function compose(
  db: KV,
  root: string | undefined,
  storeDir: string,
  close: () => Promise<void>,
  packs: { locationCache: number } = { locationCache: 0 },
): Cache {
  const blobs = new LevelBlobService(db, root === undefined ? {} : { packDir: join(root, 'packs'), packs });
  const directories = new LevelDirectoryService(db);
  const coordination =
    root === undefined ? new MemoryCoordination() : new LocalCoordination(db, join(root, 'pathinfo.gen'));
  const pathInfos = new LevelPathInfoService(db, coordination.changes);
  const narSums = new KvNarSums(db);
  const narCalc = new NarCalculator(narSums, { blobs, directories });
  const s = (name: string) => binarySublevel(db, name);
  const database = root === undefined ? 'memory' : join(root, 'db');
  const maintenance = new KvMaintenance({
    kinds: {
      pathInfos: s(PATHINFO_SUBLEVEL),
      narHashIndex: s(NARHASH_SUBLEVEL),
      directories: s(DIRECTORY_SUBLEVEL),
      chunkLists: s(BLOBS_SUBLEVEL),
      listSums: s(LISTSUMS_SUBLEVEL),
      chunks: s(CHUNKS_SUBLEVEL),
      narSums: s(NARCALC_SUBLEVEL),
      fetchIndex: s(FETCH_SUBLEVEL),
    },
    chunkStore: blobs.chunkStore,
    changes: coordination.changes,
    database,
    damage: (e) =>
      root !== undefined && isCorruption(e) ? damaged(database, (e as Error).message, e) : undefined,
  });
  let closed: Promise<void> | undefined;
  return {
    root,
    storeDir,
    blobs,
    chunkStore: blobs.chunkStore,
    directories,
    pathInfos,
    narSums,
    narCalc,
    fetchIndex: new KvFetchRecords(db),
    maintenance,
    db,
    coordination,
    close: () => {
      closed ??= coordination
        .close()
        .then(() => blobs.close())
        .then(close, async (error: unknown) => {
          await close();
          throw error;
        });
      return closed;
    },
  };
}

/**
 * `mkdir -p`, by hand: Node's recursive mkdirSync loops forever where the parent exists but the child can
 * never be made (`/proc/x`). A path that exists but is no directory is ENOTDIR.
 */
function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if (statSync(dir).isDirectory()) return;
      throw Object.assign(new Error(`'${dir}' is not a directory`), { code: 'ENOTDIR' });
    }
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
    makeDirectory(parent);
    try {
      mkdirSync(dir);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST' || !statSync(dir).isDirectory()) throw again;
    }
  }
}

/**
 * `layout.json`, created for a new root (with its store dir, at once and whole: linked into place, so two
 * processes creating a root agree on one) and checked for an existing one. Returns its fields.
 */
function checkLayout(root: string, storeDir: string): Record<string, unknown> {
  const file = join(root, 'layout.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    const layout = { layout: LAYOUT_VERSION, storeDir };
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(layout)}\n`);
    try {
      linkSync(tmp, file);
      return layout;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw e2;
      text = readFileSync(file, 'utf8');
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  let fields: Record<string, unknown> = {};
  try {
    fields = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Not JSON: reported as an unknown layout below.
  }
  const version = fields?.layout;
  if (version !== LAYOUT_VERSION) {
    const hint =
      version === 1 ? ' (layout 1 kept chunk bytes inside the database; delete the root to refill it)' : '';
    throw new FetchCacheError(
      'ERR_STORE_VERSION',
      `cache root '${root}' has layout ${JSON.stringify(version ?? null)}, this fetch-cache reads layout ${LAYOUT_VERSION}${hint}`,
      { path: root },
    );
  }
  return fields;
}

function describeOwner(root: string): string {
  try {
    const o = JSON.parse(readFileSync(join(root, 'owner.json'), 'utf8')) as {
      pid?: number;
      command?: string;
    };
    return `pid ${o.pid ?? '?'} (${o.command ?? 'unknown command'})`;
  } catch {
    return 'another process';
  }
}

/**
 * `openCache()`: the one composition root. Resolves the cache root, checks the
 * on-disk layout version, opens the LevelDB under `<root>/db` (or an in-memory
 * database) and builds every service on its own sublevel (the fetch index
 * of the fetchers included).
 *
 * Layout (version 2): `<root>/layout.json` = `{"layout":2}`; `<root>/db` the
 * LevelDB; `<root>/packs/` the pack files holding chunk bytes (blob/packs.ts;
 * layout 1 kept them inside the database and is refused, with a hint: a cache
 * can be deleted and refilled); `<root>/pathinfo.gen` changes with every path
info write (pathinfo/generation.ts); `<root>/owner.json` names the process that has the database open;
 * `<root>/db.sock` the socket over which that process serves the database to
 * the others; `<root>/reserve` space held back for opening LevelDB on a
 * full disk (cache-db.ts, which opens the database: the one file that knows
 * the backend). LevelDB admits one opener, so every further process on the
 * same root reaches the database through the opener (storage/shared-db.ts)
 * and takes over when it exits; only when the lock is held and nobody
 * answers does it wait up to `lockTimeoutMs`, then fail with
 * ERR_STORE_LOCKED naming the owner.
 */

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { retireAnswers } from './answers.js';
import type { ChunkStore } from './blob/chunk-store.js';
import { LevelBlobService } from './blob/leveldb.js';
import type { BlobService } from './blob/service.js';
import { openLevelDb } from './cache-db.js';
import { LevelDirectoryService } from './directory/leveldb.js';
import type { DirectoryService } from './directory/service.js';
import { FetchCacheError } from './errors.js';
import { NarCalculator } from './nar-render/nar-calc.js';
import { DEFAULT_STORE_DIR } from './nix/store-path.js';
import { PathInfoGeneration } from './pathinfo/generation.js';
import { LevelPathInfoService } from './pathinfo/leveldb.js';
import type { PathInfoService } from './pathinfo/service.js';
import { binarySublevel, type KV, openMemoryKV } from './storage/kv.js';
import { openSharedDb } from './storage/shared-db.js';

export const LAYOUT_VERSION = 2;

/** Sublevels the cache makes itself (the services name theirs in their own files). */
export const NARCALC_SUBLEVEL = 'narcalc';
export const FETCH_SUBLEVEL = 'fetch';

export interface CacheOptions {
  /** Cache root; default from `FETCH_CACHE_ROOT`, then the platform cache dir. Ignored with `memory`. */
  root?: string | undefined;
  storeDir?: string | undefined;
  /** Keep everything in memory (tests, throwaway use). */
  memory?: boolean;
  /** How long to wait for a process that holds the database but does not serve it (default 10 s). */
  lockTimeoutMs?: number;
  /** Told once when we start waiting for another process. */
  onWait?: (owner: string) => void;
  env?: NodeJS.ProcessEnv;
  /**
   * Worker threads that read and verify long runs of chunks (blob/read-pool.ts); default 0.
   * `FETCH_CACHE_READ_WORKERS` overrides. Measured on `serve` (2 cores, 128 MiB NAR, 16 connections):
   * 2 workers serve ~30% more MB/s, but the peak RSS under 64 downloads rises from ~210 to ~280-320 MiB
   * (two more isolates, and transferred buffers freed later), past the 256 MiB target; so off by default.
   */
  readWorkers?: number;
  /** Chunk locations the pack store remembers (blob/packs.ts), for a long-lived reader (`serve`); default 0. */
  locationCache?: number;
  /** Rebuild a database that cannot be opened or read, keeping what it still holds (cache-db.ts; verify --repair). */
  repairDatabase?: boolean;
  /** Told when the database was rebuilt (then the chunks in the packs should be indexed again: ops/reindex.ts). */
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
  readonly narCalc: NarCalculator;
  /** The `fetch` sublevel: the fetch index of src/fetchers/fetch-index.ts (URL → last result, ETag). */
  readonly fetchIndex: KV;
  /** The whole database, for operations over every sublevel (src/ops/: gc, verify, stats, leases). */
  readonly db: KV;
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
  const storeDir = options.storeDir ?? DEFAULT_STORE_DIR;
  if (options.memory) return compose(await openMemoryKV(), undefined, storeDir, async () => {});
  const root = resolveRoot(options.root, options.env);
  mkdirSync(root, { recursive: true });
  checkLayout(root);
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
  const readWorkers = readWorkersFromEnv(options.env ?? process.env) ?? options.readWorkers ?? 0;
  return compose(shared.db, root, storeDir, () => shared.close(), {
    readWorkers,
    locationCache: options.locationCache ?? 0,
  });
}

/** FETCH_CACHE_READ_WORKERS as a worker count (0–64), else undefined. */
function readWorkersFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.FETCH_CACHE_READ_WORKERS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 && n <= 64 ? n : undefined;
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
  packs: { readWorkers: number; locationCache: number } = { readWorkers: 0, locationCache: 0 },
): Cache {
  const blobs = new LevelBlobService(db, root === undefined ? {} : { packDir: join(root, 'packs'), packs });
  const directories = new LevelDirectoryService(db);
  const pathInfos = new LevelPathInfoService(
    db,
    new PathInfoGeneration(root === undefined ? undefined : join(root, 'pathinfo.gen')),
    root === undefined ? undefined : () => retireAnswers(root),
  );
  const narCalc = new NarCalculator(binarySublevel(db, NARCALC_SUBLEVEL), { blobs, directories });
  let closed: Promise<void> | undefined;
  return {
    root,
    storeDir,
    blobs,
    chunkStore: blobs.chunkStore,
    directories,
    pathInfos,
    narCalc,
    fetchIndex: binarySublevel(db, FETCH_SUBLEVEL),
    db,
    close: () => {
      closed ??= blobs.close().then(close, async (error: unknown) => {
        await close();
        throw error;
      });
      return closed;
    },
  };
}

function checkLayout(root: string): void {
  const file = join(root, 'layout.json');
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    writeFileSync(file, `${JSON.stringify({ layout: LAYOUT_VERSION })}\n`);
    return;
  }
  let version: unknown;
  try {
    version = (JSON.parse(text) as { layout?: unknown }).layout;
  } catch {
    version = undefined;
  }
  if (version !== LAYOUT_VERSION) {
    const hint =
      version === 1 ? ' (layout 1 kept chunk bytes inside the database; delete the root to refill it)' : '';
    throw new FetchCacheError(
      'ERR_STORE_VERSION',
      `cache root '${root}' has layout ${JSON.stringify(version ?? null)}, this fetch-cache reads layout ${LAYOUT_VERSION}${hint}`,
      { path: root },
    );
  }
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

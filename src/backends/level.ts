/**
 * The `level:` backend (`level:///abs/root`, what `--root DIR` and the
 * default root mean): a cache root on one machine, shared by any number of
 * processes. Checks the on-disk layout version, opens the LevelDB under
 * `<root>/db` and builds the key-value store on it (kv.ts), with chunk bytes
 * in pack files and the coordination of a local root (coordination/local.ts).
 *
 * Layout (version 2): `<root>/layout.json` = `{"layout":2,"storeDir":"/nix/store"}`
 * (the store dir its paths are made for: store-dir.ts); `<root>/db` the
 * LevelDB; `<root>/packs/` the pack files holding chunk bytes (blob/packs.ts;
 * layout 1 kept them inside the database and is refused, with a hint: a cache
 * can be deleted and refilled); `<root>/pathinfo.gen` changes with every path
 * info write (coordination/change-stamp.ts); `<root>/owner.json` names the
 * process that has the database open; `<root>/db.sock` the socket over which
 * that process serves the database to the others. `<root>/tmp` holds spool
 * files (fs/temp.ts); opening removes those of processes no longer running.
 * `<root>/reserve` is space held back for opening LevelDB on a full disk
 * (level-db.ts, which opens the database). `<root>/git` holds git mirrors
 * (fetchers/git/repo-cache.ts). LevelDB admits one opener, so every further
 * process on the same root reaches the database through the opener
 * (storage/shared-db.ts) and takes over when it exits; only when the lock is
 * held and nobody answers does it wait up to `lockTimeoutMs`, then fail with
 * ERR_STORE_LOCKED naming the owner.
 */

import { linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PackChunkStore } from '../blob/packs.js';
import type { StoreServices } from '../cache.js';
import { LocalCoordination } from '../coordination/local.js';
import { FetchCacheError } from '../errors.js';
import { removeStaleTempDirs } from '../fs/temp.js';
import { DEFAULT_STORE_DIR } from '../nix/store-path.js';
import { isCorruption } from '../storage/kv.js';
import { openSharedDb } from '../storage/shared-db.js';
import { adoptStoreDir, recordStoreDir, storeDirMismatch } from '../store-dir.js';
import { composeKv } from './kv.js';
import { damaged, openLevelDb } from './level-db.js';
import type { StoreOptions } from './registry.js';

export const LAYOUT_VERSION = 2;

export async function openLevelStore(root: string, options: StoreOptions): Promise<StoreServices> {
  const asked = options.storeDir;
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
  const store = composeKv(shared.db, {
    root,
    storeDir,
    chunkStore: (index) =>
      new PackChunkStore(index, join(root, 'packs'), { locationCache: options.locationCache ?? 0 }),
    coordination: new LocalCoordination(shared.db, join(root, 'pathinfo.gen')),
    database: location,
    damage: (e) => (isCorruption(e) ? damaged(location, (e as Error).message, e) : undefined),
    close: () => shared.close(),
  });
  if (recorded === undefined) {
    // A root from before the store dir was recorded (store-dir.ts).
    try {
      const adopted = await adoptStoreDir(root, store.pathInfos, asked);
      recordStoreDir(root, layout, adopted);
      if (adopted !== storeDir) throw storeDirMismatch(root, adopted, storeDir);
    } catch (e) {
      await store.close();
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
  return store;
}

function ownedByUs(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { pid?: number }).pid === process.pid;
  } catch {
    return false;
  }
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

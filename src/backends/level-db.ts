/**
 * Opening the LevelDB of a cache root (`<root>/db`), for the `level:`
 * backend (level.ts): the one place that knows the database is
 * classic-level, and what to do when the database or its disk is in a bad
 * way.
 *
 * - A directory that holds LevelDB files is opened as it is (never
 *   `createIfMissing`): one LevelDB cannot open (CURRENT deleted, a damaged
 *   MANIFEST or table) is refused with ERR_DB_DAMAGED naming it. LevelDB
 *   would otherwise start an empty database there and delete the old
 *   tables and logs, and the next gc every pack.
 * - A database that is missing while `packs/` holds pack files is refused
 *   too: a new one would name none of their chunks.
 * - `repair` (verify --repair): a refused database is rebuilt with LevelDB's
 *   own repair, which keeps every entry it can still read from the tables
 *   and logs (what it cannot goes to `db/lost/`); a database that opens is
 *   first read through once, and repaired the same way if a read finds
 *   damage. A missing one is started afresh. The caller is told, so it can
 *   index again the chunks the packs hold (maintenance `reindex`: blob/packs.ts).
 * - A full disk: LevelDB writes while it opens (the last log replayed into a
 *   table, a new MANIFEST, log and info LOG: about the size of that log, at
 *   most around the 4 MiB write buffer). The root keeps `reserve`, 8 MiB
 *   written when the root is opened with room to spare; an open that fails
 *   for want of space deletes it and tries again, so every command can
 *   open a full root (and gc give the space back). The same holds for a
 *   database that is already open when the disk fills (`serve` hosting it
 *   for the other processes): a write that fails for want of space deletes
 *   the reserve and is tried once more, so the deletes of a gc (a few log
 *   records) go through and it can give the space back; a write that still
 *   fails is ERR_IO naming the database, never an internal error.
 */

import {
  closeSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { FetchCacheError } from '../errors.js';
import type { KV } from '../storage/kv.js';

export const RESERVE_BYTES = 8 << 20;
export const RESERVE_FILE = 'reserve';

export interface OpenDbOptions {
  /** The cache root the database belongs to: its packs are looked at and its reserve kept (none without). */
  readonly root?: string | undefined;
  /** Rebuild a database that cannot be opened or read (verify --repair). */
  readonly repair?: boolean | undefined;
  /** Told when the database was rebuilt or started afresh next to existing packs. */
  readonly onRepaired?: ((how: string) => void) | undefined;
}

type Level = ClassicLevel<Uint8Array, Uint8Array>;

/** classic-level's implementor methods (abstract-level's private API, not in its typings). */
interface LevelInternals {
  _put(key: Uint8Array, value: Uint8Array, options: unknown): Promise<void>;
  _del(key: Uint8Array, options: unknown): Promise<void>;
  _batch(operations: unknown, options: unknown): Promise<void>;
  _chainedBatch(): { _write(options: unknown): Promise<void> };
}

/**
 * The root's LevelDB: classic-level, whose writes (puts, deletes, batches and chained batches) that
 * fail for want of space release the root's reserve and are tried once more (see the header), and
 * end as ERR_IO if they fail again.
 */
function rootLevel(location: string, createIfMissing: boolean, root: string | undefined): Level {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(location, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    createIfMissing,
  });
  const spaced = async <T>(write: () => Promise<T>): Promise<T> => {
    try {
      return await write();
    } catch (e) {
      if (!noSpace(e)) throw e;
      if (root === undefined || !releaseReserve(root)) throw outOfSpace(location, e);
      try {
        return await write();
      } catch (again) {
        throw noSpace(again) ? outOfSpace(location, again) : again;
      }
    }
  };
  const internals = db as unknown as LevelInternals;
  const { _put, _del, _batch, _chainedBatch } = ClassicLevel.prototype as unknown as LevelInternals;
  internals._put = (key, value, options) => spaced(() => _put.call(db, key, value, options));
  internals._del = (key, options) => spaced(() => _del.call(db, key, options));
  internals._batch = (operations, options) => spaced(() => _batch.call(db, operations, options));
  internals._chainedBatch = () => {
    const batch = _chainedBatch.call(db);
    const write = batch._write;
    batch._write = (options) => spaced(() => write.call(batch, options));
    return batch;
  };
  return db;
}

function outOfSpace(location: string, cause: unknown): FetchCacheError {
  return new FetchCacheError(
    'ERR_IO',
    `cannot write to cache database '${location}': no space left on the device (run 'fetch-cache gc', or free space)`,
    { path: location, cause },
  );
}

/**
 * Whether `dir` holds a database: CURRENT, a table or a log. (A MANIFEST
 * alone is a creation killed before anything was stored: safe to start over.)
 */
function holdsDatabase(dir: string): boolean {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return false;
  }
  return names.some((n) => n === 'CURRENT' || /^\d+\.(ldb|sst|log)$/.test(n));
}

function packFiles(root: string): number {
  try {
    return readdirSync(join(root, 'packs')).filter((n) => n.endsWith('.pack')).length;
  } catch {
    return 0;
  }
}

function causeOf(e: unknown): { code?: string; message?: string } {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  return err.cause ?? err;
}

const noSpace = (e: unknown) => /No space left on device|ENOSPC/.test(String(causeOf(e).message ?? e));

export function damaged(location: string, why: string, cause?: unknown): FetchCacheError {
  return new FetchCacheError(
    'ERR_DB_DAMAGED',
    `cache database '${location}' is damaged (${why}): stop every process using the root, then run 'fetch-cache verify --repair' (it keeps what the database still holds), or delete the root`,
    { path: location, cause },
  );
}

/**
 * The cache root's LevelDB, opened by this process; `undefined` when another
 * process holds its lock (that process hosts it: storage/shared-db.ts).
 */
export async function openLevelDb(location: string, options: OpenDbOptions = {}): Promise<KV | undefined> {
  const root = options.root;
  let exists = holdsDatabase(location);
  if (!exists && root !== undefined) {
    const packs = packFiles(root);
    if (packs > 0 && !options.repair) {
      throw damaged(location, `it is missing, while packs/ holds ${packs} pack files`);
    }
    if (packs > 0) options.onRepaired?.('started afresh next to existing packs');
  }
  let freed = false;
  let repaired = false;
  for (;;) {
    const db = rootLevel(location, !exists, root);
    try {
      await db.open();
    } catch (e) {
      await db.close().catch(() => {});
      if (causeOf(e).code === 'LEVEL_LOCKED') return undefined;
      if (noSpace(e) && !freed && root !== undefined && releaseReserve(root)) {
        freed = true;
        continue;
      }
      const msg = causeOf(e).message ?? String(e);
      if (!exists || noSpace(e) || /Permission denied|EACCES/.test(msg)) {
        throw new FetchCacheError('ERR_IO', `cannot open cache database '${location}': ${msg}`, {
          path: location,
          cause: e,
        });
      }
      if (!options.repair || repaired) throw damaged(location, msg, e);
      await repairLevel(location, options);
      repaired = true;
      continue;
    }
    if (options.repair && !repaired) {
      const problem = await readThrough(db);
      if (problem !== undefined) {
        await db.close();
        await repairLevel(location, options);
        repaired = true;
        exists = true;
        continue;
      }
    }
    if (root !== undefined) keepReserve(root);
    return db as unknown as KV;
  }
}

async function repairLevel(location: string, options: OpenDbOptions): Promise<void> {
  await ClassicLevel.repair(location);
  options.onRepaired?.('rebuilt with LevelDB repair');
}

/** Read every entry once; the message of the first damage found, if any. */
async function readThrough(db: Level): Promise<string | undefined> {
  try {
    for await (const _ of db.iterator({ keyEncoding: 'view', valueEncoding: 'view' })) {
      // reading is the check
    }
    return undefined;
  } catch (e) {
    if (causeOf(e).code === 'LEVEL_CORRUPTION' || /Corruption/.test(String(causeOf(e).message))) {
      return causeOf(e).message ?? String(e);
    }
    throw e;
  }
}

/** Delete the reserve; whether there was one. */
function releaseReserve(root: string): boolean {
  const file = join(root, RESERVE_FILE);
  try {
    statSync(file);
  } catch {
    return false;
  }
  rmSync(file, { force: true });
  return true;
}

/** Write the reserve if it is missing (or short) and there is ample room (twice its size); never fails. */
function keepReserve(root: string): void {
  const file = join(root, RESERVE_FILE);
  try {
    if (statSync(file).size === RESERVE_BYTES) return;
  } catch {
    // missing: write it
  }
  try {
    const fs = statfsSync(root);
    if (fs.bavail * fs.bsize < 2 * RESERVE_BYTES) return;
  } catch {
    return;
  }
  const tmp = `${file}.${process.pid}`;
  // Written 1 MiB at a time from one zeroed buffer: one buffer of the whole size
  // took 14–20 ms here (its fresh pages fault in as the kernel copies them), this 3 ms.
  const zeros = Buffer.alloc(1 << 20);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (let n = 0; n < RESERVE_BYTES; )
      n += writeSync(fd, zeros, 0, Math.min(zeros.length, RESERVE_BYTES - n));
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
  }
}

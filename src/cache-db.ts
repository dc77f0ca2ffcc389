/**
 * Opening the LevelDB of a cache root (`<root>/db`), for the composition
 * root (cache.ts): the one place that knows the backend is classic-level,
 * and what to do when its disk is full.
 *
 * A full disk: LevelDB writes while it opens (the last log replayed into a
 * table, a new MANIFEST, log and info LOG: about the size of that log, at
 * most around the 4 MiB write buffer). The root keeps `reserve`, 8 MiB
 * written when the root is opened with twice that free; an open that fails
 * for want of space deletes it and tries again, so every command can
 * open a full root (and gc give the space back).
 */

import { renameSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { FetchCacheError } from './errors.js';
import type { KV } from './storage/kv.js';

export const RESERVE_BYTES = 8 << 20;
export const RESERVE_FILE = 'reserve';

export interface OpenDbOptions {
  /** The cache root the database belongs to: its reserve is kept there (none without). */
  readonly root?: string | undefined;
}

type Level = ClassicLevel<Uint8Array, Uint8Array>;

function causeOf(e: unknown): { code?: string; message?: string } {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  return err.cause ?? err;
}

const noSpace = (e: unknown) => /No space left on device|ENOSPC/.test(String(causeOf(e).message ?? e));

/**
 * The cache root's LevelDB, opened by this process; `undefined` when another
 * process holds its lock (that process hosts it: storage/shared-db.ts).
 */
export async function openLevelDb(location: string, options: OpenDbOptions = {}): Promise<KV | undefined> {
  const root = options.root;
  let freed = false;
  for (;;) {
    const db: Level = new ClassicLevel<Uint8Array, Uint8Array>(location, {
      keyEncoding: 'view',
      valueEncoding: 'view',
    });
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
      throw new FetchCacheError('ERR_IO', `cannot open cache database '${location}': ${msg}`, {
        path: location,
        cause: e,
      });
    }
    if (root !== undefined) keepReserve(root);
    return db as unknown as KV;
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
  try {
    writeFileSync(tmp, Buffer.alloc(RESERVE_BYTES));
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}

/**
 * The key-value layer the key-value services stand on: an `abstract-level`
 * database with binary keys and values. `classic-level` (LevelDB on disk)
 * for a cache root, `memory-level` for `memory:` — the same service code
 * runs on both, and the backends that open them (src/backends/) are the
 * only code that chooses one. Services receive a sublevel of their own;
 * nothing above the services sees a KV (test/boundaries.test.ts).
 */

import type { AbstractLevel } from 'abstract-level';

/** A database or sublevel (a sublevel is an AbstractLevel too) with Uint8Array keys and values. */
// biome-ignore lint/suspicious/noExplicitAny: the storage format parameter differs between backends and sublevels.
export type KV = AbstractLevel<any, Uint8Array, Uint8Array>;

const BINARY = { keyEncoding: 'view', valueEncoding: 'view' } as const;

/** A sublevel of `db` with binary keys and values. */
export function binarySublevel(db: KV, name: string): KV {
  return db.sublevel<Uint8Array, Uint8Array>(name, BINARY) as unknown as KV;
}

/**
 * Whether an error from the database is damage it found (abstract-level's
 * `LEVEL_CORRUPTION`, also as the cause of a wrapped error, or as a guest
 * receives it from the host).
 */
export function isCorruption(e: unknown): boolean {
  for (
    let err = e as { code?: unknown; message?: unknown; cause?: unknown } | undefined, i = 0;
    err && i < 4;
    i++
  ) {
    if (err.code === 'LEVEL_CORRUPTION' || /^Corruption:/.test(String(err.message ?? ''))) return true;
    err = err.cause as typeof err;
  }
  return false;
}

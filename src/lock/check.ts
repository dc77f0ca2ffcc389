/**
 * `checkLock()`: does every lockfile entry still describe real content? Per
 * pin, first the entry against itself — its `storePath` must be the
 * fixed-output path of its name and hash (a hand-edited hash shows up here
 * with no fetch at all) — then the content: fetched again by its locked URL
 * or rev (online, cached answers are revalidated upstream; offline, the
 * cache's last answer for that URL / rev is used, and a pin never fetched is
 * `missing`) and hashed. The locked hash is deliberately not passed as the
 * expected hash: the cache is content-addressed, so a forged entry naming
 * some other cached content would otherwise pass. Anything but `ok` makes the
 * lock fail the check.
 */

import { dirname } from 'node:path';
import type { Cache } from '../cache.js';
import { isFetchCacheError } from '../errors.js';
import { Fetcher, type FetcherOptions } from '../fetchers/base.js';
import type { FetchSpec } from '../fetchers/types.js';
import { toSRI } from '../nix/hash.js';
import { parseLockHash } from './hashes.js';
import { hashKind, impliedStorePath, type LockedPin, type Lockfile } from './lockfile.js';
import { DEFAULT_CONCURRENCY, mapLimited } from './pool.js';
import { lockedSpec } from './resolve.js';

export type CheckStatus = 'ok' | 'differs' | 'missing' | 'error';

/** One pin checked by `checkLock`: its status and, when not ok, why, with the expected and actual hash. */
export interface PinCheck {
  readonly name: string;
  readonly status: CheckStatus;
  /** What differs or failed, one line. */
  readonly reason?: string | undefined;
  readonly expected?: string | undefined;
  readonly actual?: string | undefined;
  /** True when the content came from the cache without network. */
  readonly cached?: boolean | undefined;
}

/** What `checkLock` found: one entry per pin, and whether all are ok. */
export interface CheckReport {
  readonly checked: number;
  readonly ok: boolean;
  readonly pins: PinCheck[];
}

export interface CheckOptions {
  readonly cache: Cache;
  readonly offline?: boolean | undefined;
  readonly concurrency?: number | undefined;
  readonly fetcher?: FetcherOptions | undefined;
}

export { impliedStorePath } from './lockfile.js';

async function checkPin(name: string, pin: LockedPin, fetcher: Fetcher, cache: Cache): Promise<PinCheck> {
  const kind = hashKind(pin);
  const implied = impliedStorePath(pin);
  if (implied !== pin.storePath) {
    return {
      name,
      status: 'differs',
      reason: `storePath does not match ${kind} ${pin[kind]}`,
      expected: implied,
      actual: pin.storePath,
    };
  }
  const recorded = parseLockHash(pin[kind]!, kind === 'narHash');
  // Not the locked hash as the expected one: the cache is keyed by content, so a forged entry would hit
  // the content it names. Fetched by URL / rev instead (the fetch index or the network answers), then compared.
  const { hash: _hash, ...unpinned } = lockedSpec(pin);
  const spec = recorded.algo === 'sha256' ? unpinned : lockedSpec(pin);
  try {
    const r = await fetcher.fetch(spec as FetchSpec);
    const actual = toSRI(kind === 'hash' ? r.hash! : r.narHash);
    if (actual !== pin[kind]) {
      return {
        name,
        status: 'differs',
        reason: `${kind} differs`,
        expected: pin[kind],
        actual,
        cached: r.cached,
      };
    }
    const got = r.path;
    if (dirname(pin.storePath) === cache.storeDir && got !== pin.storePath) {
      return {
        name,
        status: 'differs',
        reason: 'fetched a different store path',
        expected: pin.storePath,
        actual: got,
      };
    }
    if (pin.rev !== undefined && r.metadata.rev !== undefined && r.metadata.rev !== pin.rev) {
      return { name, status: 'differs', reason: 'rev differs', expected: pin.rev, actual: r.metadata.rev };
    }
    return { name, status: 'ok', cached: r.cached };
  } catch (e) {
    if (isFetchCacheError(e, 'ERR_HASH_MISMATCH')) {
      return {
        name,
        status: 'differs',
        reason: 'content hash differs',
        expected: e.expected,
        actual: e.actual,
      };
    }
    if (isFetchCacheError(e, 'ERR_OFFLINE')) return { name, status: 'missing', reason: e.message };
    if (isFetchCacheError(e)) return { name, status: 'error', reason: e.toLine() };
    throw e;
  }
}

/** Check every pin of `lock` against the cache (and the network unless offline). */
export async function checkLock(lock: Lockfile, options: CheckOptions): Promise<CheckReport> {
  // Online, every unpinned answer is revalidated upstream (a 304 keeps it cheap); offline, the cache answers.
  const fetcher = new Fetcher(options.cache, {
    ...(options.offline === true ? {} : { ttlSeconds: 0 }),
    ...options.fetcher,
    offline: options.offline === true,
  });
  const names = Object.keys(lock.pins).sort();
  const pins = await mapLimited(names, options.concurrency ?? DEFAULT_CONCURRENCY, (name) =>
    checkPin(name, lock.pins[name]!, fetcher, options.cache),
  );
  return { checked: pins.length, ok: pins.every((p) => p.status === 'ok'), pins };
}

/**
 * The persistent path-info service, in two sublevels of a KV store:
 *
 *   pathinfo: key = 20-byte store path digest
 *             value = `snix.store.v1.PathInfo` protobuf bytes (as snix's redb backend)
 *   narhash:  key = 32-byte NAR sha256 ‖ 20-byte store path digest, value = empty
 *
 * The index key carries the store path digest so that several store paths
 * with the same NAR (same contents, different names) each keep their own
 * entry; `byNarHash` returns the one with the smallest digest. A path info
 * and its index entries change together in one batch. Values read back are
 * decoded, validated and checked against their key: anything else is
 * ERR_INTEGRITY. Writes are serialised per service, so a put never races
 * another write to the same key and leaves a stale index entry or misses a
 * conflict (service.ts); across processes, each read-then-write runs under
 * the store's `pathWrite` (coordination/service.ts): a shared database's
 * lock per path. On a root on one machine, processes each have their own
 * service and LevelDB offers no compare-and-set: two that write the same new
 * path at the same instant can both find it absent. What reads a path info
 * for its content checks it again (a fetch with a hash checks the content
 * address of what it finds, `verify` all of it).
 */

import type { AbstractSublevel } from 'abstract-level';
import { bytesEqual } from '../castore/bytes.js';
import type { ChangeStamp, Coordination } from '../coordination/service.js';
import { FetchCacheError, isFetchCacheError } from '../errors.js';
import { type ContentAddress, formatContentAddress } from '../nix/content-address.js';
import { toSRI } from '../nix/hash.js';
import { encodeNix32 } from '../nix/nixbase32.js';
import { STORE_PATH_DIGEST_BYTES, storePathBaseName } from '../nix/store-path.js';
import { binarySublevel, type KV } from '../storage/kv.js';
import type { PathInfo } from './path-info.js';
import { decodePathInfo, encodePathInfo } from './proto.js';
import type { PathInfoService, PutOptions } from './service.js';

/** Names of the sublevels this service owns. */
export const PATHINFO_SUBLEVEL = 'pathinfo';
export const NARHASH_SUBLEVEL = 'narhash';

/** `binarySublevel` always returns a sublevel; batches across sublevels need that type. */
// biome-ignore lint/suspicious/noExplicitAny: as in storage/kv.ts, the format parameters differ between backends.
type Sublevel = AbstractSublevel<any, any, Uint8Array, Uint8Array>;

const NAR_SHA256_LEN = 32;
const EMPTY = new Uint8Array(0);

function checkLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new TypeError(`${what} must be ${length} bytes`);
  }
}

function indexKey(narSha256: Uint8Array, storePathDigest: Uint8Array): Uint8Array {
  const key = new Uint8Array(NAR_SHA256_LEN + STORE_PATH_DIGEST_BYTES);
  key.set(narSha256, 0);
  key.set(storePathDigest, NAR_SHA256_LEN);
  return key;
}

/** Decodes a stored value and checks it belongs under `key` (ERR_INTEGRITY otherwise). */
function verifyStored(key: Uint8Array, value: Uint8Array): PathInfo {
  let info: PathInfo;
  try {
    info = decodePathInfo(value);
  } catch (cause) {
    if (!isFetchCacheError(cause)) throw cause;
    throw new FetchCacheError('ERR_INTEGRITY', `stored path info ${encodeNix32(key)} is not valid`, {
      path: encodeNix32(key),
      cause,
    });
  }
  if (!bytesEqual(info.storePath.digest, key)) {
    throw new FetchCacheError(
      'ERR_INTEGRITY',
      `stored path info ${encodeNix32(key)} is about another store path`,
      {
        expected: encodeNix32(key),
        actual: encodeNix32(info.storePath.digest),
      },
    );
  }
  return info;
}

const sha256Hash = (digest: Uint8Array) => ({ algo: 'sha256' as const, digest });

function formatCa(ca: ContentAddress | undefined): string {
  return ca === undefined ? 'no content address' : `content address ${formatContentAddress(ca)}`;
}

/** How `next` differs in content from the stored `old` (service.ts); `undefined` for the same content. */
function contentDifference(old: PathInfo, next: PathInfo): string | undefined {
  if (!bytesEqual(old.narSha256, next.narSha256)) {
    return `NAR hash ${toSRI(sha256Hash(old.narSha256))}, not ${toSRI(sha256Hash(next.narSha256))}`;
  }
  if (old.narSize !== next.narSize) return `NAR size ${old.narSize}, not ${next.narSize}`;
  const a = old.ca === undefined ? '' : formatContentAddress(old.ca);
  const b = next.ca === undefined ? '' : formatContentAddress(next.ca);
  if (a !== b) return `${formatCa(old.ca)}, not ${formatCa(next.ca)}`;
  const refs = (i: PathInfo) => i.references.map(storePathBaseName).sort().join(' ');
  if (refs(old) !== refs(next)) return `references [${refs(old)}], not [${refs(next)}]`;
  return undefined;
}

/** `a`, then what `b` adds, each signature once. */
function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])];
}

export class LevelPathInfoService implements PathInfoService {
  private readonly db: KV;
  private readonly infos: Sublevel;
  private readonly narHashIndex: Sublevel;
  /** Tail of the write queue: puts and deletes run one at a time. */
  private writes: Promise<unknown> = Promise.resolve();
  /** Bumped after every put and delete (coordination/service.ts). */
  private readonly changes: ChangeStamp | undefined;
  private readonly pathWrite: Coordination['pathWrite'];

  /**
   * Uses the `pathinfo` and `narhash` sublevels of `db`; `coordination`: the store's path-info change
   * stamp and its lock per path (none: this service alone writes).
   */
  constructor(db: KV, coordination?: Pick<Coordination, 'changes' | 'pathWrite'>) {
    this.db = db;
    this.changes = coordination?.changes;
    this.pathWrite =
      coordination === undefined ? (_key, fn) => fn() : coordination.pathWrite.bind(coordination);
    this.infos = binarySublevel(db, PATHINFO_SUBLEVEL) as Sublevel;
    this.narHashIndex = binarySublevel(db, NARHASH_SUBLEVEL) as Sublevel;
  }

  async get(storePathDigest: Uint8Array): Promise<PathInfo | undefined> {
    checkLength(storePathDigest, STORE_PATH_DIGEST_BYTES, 'a store path digest');
    const value = await this.infos.get(storePathDigest);
    return value === undefined ? undefined : verifyStored(storePathDigest, value);
  }

  async put(info: PathInfo, options: PutOptions = {}): Promise<PathInfo> {
    // Encoding validates; decoding again returns the normalised form that was stored.
    const stored = decodePathInfo(encodePathInfo(info));
    const key = stored.storePath.digest;
    return this.serialised(key, async () => {
      const old = await this.readPrevious(key);
      let next = stored;
      if (old !== undefined) {
        const difference = contentDifference(old, stored);
        if (difference === undefined) next = { ...old, signatures: union(old.signatures, stored.signatures) };
        else if (options.replace !== true) {
          const path = storePathBaseName(stored.storePath);
          throw new FetchCacheError(
            'ERR_PATH_CONFLICT',
            `store path ${path} is stored with ${difference}: a store path never changes its content`,
            { path, expected: toSRI(sha256Hash(old.narSha256)), actual: toSRI(sha256Hash(stored.narSha256)) },
          );
        }
      }
      const value = encodePathInfo(next);
      const batch = this.db.batch();
      if (old !== undefined && !bytesEqual(old.narSha256, next.narSha256)) {
        batch.del(indexKey(old.narSha256, key), { sublevel: this.narHashIndex });
      }
      batch.put(indexKey(next.narSha256, key), EMPTY, { sublevel: this.narHashIndex });
      batch.put(key, value, { sublevel: this.infos });
      await batch.write();
      this.changes?.bump();
      return next;
    });
  }

  async *list(): AsyncIterable<PathInfo> {
    for await (const [key, value] of this.infos.iterator()) yield verifyStored(key, value);
  }

  async byNarHash(narSha256: Uint8Array): Promise<Uint8Array | undefined> {
    checkLength(narSha256, NAR_SHA256_LEN, 'a NAR sha256');
    const keys = await this.narHashIndex
      .keys({
        gte: indexKey(narSha256, new Uint8Array(STORE_PATH_DIGEST_BYTES)),
        lte: indexKey(narSha256, new Uint8Array(STORE_PATH_DIGEST_BYTES).fill(0xff)),
        limit: 1,
      })
      .all();
    const key = keys[0];
    return key === undefined ? undefined : new Uint8Array(key.subarray(NAR_SHA256_LEN));
  }

  async delete(storePathDigest: Uint8Array): Promise<void> {
    checkLength(storePathDigest, STORE_PATH_DIGEST_BYTES, 'a store path digest');
    const key = storePathDigest.slice();
    return this.serialised(key, async () => {
      const previous = await this.readPrevious(key);
      const batch = this.db.batch().del(key, { sublevel: this.infos });
      if (previous !== undefined)
        batch.del(indexKey(previous.narSha256, key), { sublevel: this.narHashIndex });
      await batch.write();
      this.changes?.bump();
    });
  }

  /**
   * The stored path info under `key`, for updating its index entry. A damaged
   * value is about to be replaced or removed, so it is treated as absent
   * rather than blocking the repair; its index entry (if any) stays behind
   * and `byNarHash` callers re-check with `get`.
   */
  private async readPrevious(key: Uint8Array): Promise<PathInfo | undefined> {
    try {
      return await this.get(key);
    } catch (e) {
      if (isFetchCacheError(e, 'ERR_INTEGRITY')) return undefined;
      throw e;
    }
  }

  /** Runs `write` (a read of `key`'s path info, then a write) after this service's others, under `pathWrite`. */
  private serialised<T>(key: Uint8Array, write: () => Promise<T>): Promise<T> {
    const locked = () => this.pathWrite(key, write);
    const run = this.writes.then(locked, locked);
    this.writes = run.catch(() => undefined);
    return run;
  }
}

/**
 * The maintenance service contract: what gc, verify, stats and repair need
 * to see and change of a store as a whole, by *kind* of record, never by
 * where a backend keeps it. Each backend implements it (kv.ts: over the
 * key-value layout of a cache root, of `memory:`, or of any store whose
 * metadata is key-value); the operations in src/ops/ are generic code over
 * it (the closure walk: reach.ts).
 *
 * Keys and values are the records as stored, in these formats (the same in
 * every backend, so the operations decode them with the codecs of
 * src/castore, src/pathinfo and src/blob):
 *
 *   pathInfos     20-byte store path digest → snix.store.v1.PathInfo protobuf (pathinfo/proto.ts)
 *   narHashIndex  32-byte NAR sha256 ‖ 20-byte store path digest → empty
 *   directories   BLAKE3 of the value → canonical snix.castore.v1.Directory protobuf
 *   chunkLists    BLAKE3 of a blob of ≥ 2 chunks → its chunk list (blob/chunk-list.ts)
 *   listSums      BLAKE3 of such a blob → the sum saying its list adds up (blob/leveldb.ts)
 *   chunks        BLAKE3 of a chunk → what the backend stores for it (read with `chunkBytes`, sized with `sizes`)
 *   narSums       the anonymous root node (castore `encodeEntry('', node)`) → NAR sha256 ‖ u64le NAR size
 *   fetchIndex    JSON text → JSON text (fetchers/fetch-index.ts), both UTF-8
 *
 * A single-chunk blob is its chunk: it has no chunk list. Last uses, leases
 * and the other records of coordination are the coordination service's
 * (coordination/service.ts).
 */

import type { FetchCacheError } from '../errors.js';

/** The kinds of records the maintenance service lists, reads and deletes. */
export type Kind =
  | 'pathInfos'
  | 'narHashIndex'
  | 'directories'
  | 'chunkLists'
  | 'listSums'
  | 'chunks'
  | 'narSums'
  | 'fetchIndex';

export const KINDS: readonly Kind[] = [
  'pathInfos',
  'narHashIndex',
  'directories',
  'chunkLists',
  'listSums',
  'chunks',
  'narSums',
  'fetchIndex',
];

export interface CompactReport {
  /** Files (or objects) of chunk bytes deleted, each after its live chunks were copied. */
  packs: number;
  /** Chunks copied. */
  moved: number;
  /** Bytes given back. */
  freedBytes: number;
}

export interface ReindexReport {
  /** Chunks given their index record back. */
  chunks: number;
  bytes: number;
}

/** Objects of chunk bytes that no chunk record names (`strays`). */
export interface StrayReport {
  /** Their keys, as the object store names them. */
  readonly keys: string[];
  readonly bytes: number;
  /** Deleted now (asked to remove, and past the store's grace period). */
  readonly removed: number;
}

/**
 * How gc, verify, stats and repair see and change a store (`cache.maintenance`): records by kind, sizes,
 * deletion, compaction, damage.
 */
export interface Maintenance {
  /** What reports call the store's database: `<root>/db`, `memory`, a database URL without secrets. */
  readonly database: string;
  /** The keys stored of a kind, in key order. */
  keys(kind: Kind): AsyncIterable<Uint8Array>;
  /** Keys and values of a kind, in key order. */
  entries(kind: Kind): AsyncIterable<[Uint8Array, Uint8Array]>;
  getMany(kind: Kind, keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  hasMany(kind: Kind, keys: readonly Uint8Array[]): Promise<boolean[]>;
  /**
   * Bytes each key stands for, `undefined` where it is not stored: the chunk's length for `chunks`,
   * the value's length for the others.
   */
  sizes(kind: Kind, keys: readonly Uint8Array[]): Promise<(number | undefined)[]>;
  /**
   * Delete these keys (absent ones are skipped), in batches of `batchSize` (default 1000) so readers
   * are served between them; the count and bytes (as `sizes`) deleted. Deleting path infos changes
   * the path-info change stamp.
   */
  delete(
    kind: Kind,
    keys: Iterable<Uint8Array>,
    options?: { batchSize?: number },
  ): Promise<{ count: number; bytes: number }>;
  /**
   * Write records as given, unchecked (for `chunks`: the backend's own record). For repair tools, and
   * for tests that damage a store on purpose; the services never read a record unverified.
   */
  put(kind: Kind, entries: readonly (readonly [Uint8Array, Uint8Array])[]): Promise<void>;
  /** The bytes of a chunk as stored, not verified (damage reports); `undefined` when missing. */
  chunkBytes(digest: Uint8Array): Promise<Uint8Array | undefined>;
  /** Give back the space of deleted chunks, where deleting their records does not (pack files). */
  compact(): Promise<CompactReport>;
  /** Bytes the stored chunks take where they are files (packs, deleted chunks included until compacted). */
  diskBytes(): number | undefined;
  /**
   * Objects of chunk bytes in a remote byte store that no chunk record names, by listing it (verify
   * --remote): never needed for correctness. With `remove`, those past the grace period are deleted
   * (others are marked for a later call). `undefined` where chunk bytes are not remote objects.
   */
  strays(options: { readonly remove: boolean }): Promise<StrayReport | undefined>;
  /** Index again chunks the byte store holds but whose records were lost (after a database rebuild). */
  reindex(): Promise<ReindexReport>;
  /**
   * When `error` (thrown by a read) means the store's database is damaged: the coded error saying so
   * (ERR_DB_DAMAGED, naming it and what to do); otherwise `undefined`.
   */
  damage(error: unknown): FetchCacheError | undefined;
}

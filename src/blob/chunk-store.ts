/**
 * Where chunk bytes live. The blob service keeps one index sublevel
 * `chunks/<BLAKE3 of the chunk>`; its keys are the stored chunks (gc, stats
 * and verify scan, test and delete them there), its values are what a
 * `ChunkStore` makes of the bytes:
 *
 *   - `InlineChunkStore`: the bytes themselves (in-memory caches, tests);
 *   - `PackChunkStore` (packs.ts): a 20-byte location in an append-only pack
 *     file beside the database (every cache root on disk);
 *   - `S3PackChunkStore` (s3-packs.ts): the same location, in a write-once
 *     pack object of an S3-compatible bucket;
 *   - `NearChunkStore` (near.ts): a remote store's values, read through a
 *     local cache of pack files.
 *
 * Why packs: LevelDB keeps values in its log and sorted tables, and chunks
 * keyed by random digests make it rewrite them again and again as it
 * compacts, several times slower than the same bytes under sequential keys;
 * appending them to a file runs at the speed of the page cache. The index
 * rows stay small (20 bytes), so LevelDB's compactions stay cheap.
 */

import type { StrayReport } from '../maintenance/service.js';
import type { Put } from '../storage/group-commit.js';
import type { KV } from '../storage/kv.js';
import type { FileSegment } from './capabilities.js';

export type { StrayReport };

/** What `ChunkStore.segments` found for one chunk. */
export type SegmentCheck =
  | { readonly kind: 'ok'; readonly segment: FileSegment }
  | { readonly kind: 'missing' }
  /** Its bytes did not hash to its digest (`actual`), or the file holds fewer than its length. */
  | { readonly kind: 'damaged'; readonly actual: Uint8Array | undefined; readonly length: number };

export interface ChunkSegments {
  readonly checks: readonly SegmentCheck[];
  /** The files stay open until this is called (once the segments are sent). Idempotent. */
  release(): void;
}

export interface ChunkStore {
  /** The index: chunk digest → stored value. Its keys are the chunks stored. */
  readonly index: KV;
  /**
   * Bytes of new chunks the blob service should gather before calling `store` (default 8 MiB): a
   * store that pays per request (an object store) asks for groups the size of its objects.
   */
  readonly groupBytes?: number | undefined;
  /**
   * How long a group below `groupBytes` waits for more chunks before `store` (default 0: one turn of
   * the event loop; storage/group-commit.ts): a store that pays per request fills its objects.
   */
  readonly groupLingerMs?: number | undefined;
  /** Bytes a blob read asks for at once (default 1 MiB): more where each request has a latency. */
  readonly readAheadBytes?: number | undefined;
  /** The bytes of a chunk, or `undefined` when it is not stored. Not verified here. */
  get(digest: Uint8Array): Promise<Uint8Array | undefined>;
  getMany(digests: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  /**
   * Where chunks lie in files, each verified against its digest (its bytes not kept), for sending
   * with sendfile(2). Only where chunks are files (pack files).
   */
  segments?(digests: readonly Uint8Array[]): Promise<ChunkSegments>;
  /**
   * A copy of the bytes of a new chunk, for a put into `index` that waits in a group commit: the
   * writer's bytes are a view it reuses at once. The store may hold it in memory it reuses once
   * the copy is given back with `release` (pack files), or keep it (inline: it is the index value).
   */
  hold(bytes: Uint8Array): Uint8Array;
  /** The group holding these copies (from `hold`) is done with them: `store` wrote what it needed. */
  release(held: readonly Uint8Array[]): void;
  /**
   * Store the bytes of new chunks (puts into `index` whose values are chunk
   * bytes) and return the index puts that make them visible. The caller
   * writes those in its batch: a chunk is never indexed before its bytes are
   * written. Called by one group commit at a time.
   */
  store(puts: readonly Put[]): Promise<Put[]>;
  /** The chunk bytes an index value stands for (gc counts what it frees with this). */
  storedSize(value: Uint8Array): number;
  /** Give back the space of deleted chunks, where deleting index rows does not (pack files). */
  compact?(): Promise<{ packs: number; moved: number; freedBytes: number }>;
  /** Bytes of the files holding chunks, where they are files. */
  diskBytes?(): number;
  /**
   * Put back the index rows of chunks the files hold but the index does not name (after the
   * database was rebuilt: backends/level-db.ts), each once its bytes hash to its digest.
   */
  reindex?(): Promise<{ chunks: number; bytes: number }>;
  /**
   * Objects of chunk bytes that no index row names (a writer killed after its upload, packs gc
   * emptied), found by listing the bucket: never needed for correctness, only to give space back.
   * With `remove`, those past the store's grace period are deleted (the others are marked, so a
   * later call may delete them). Only where chunk bytes are remote objects.
   */
  strays?(options: { readonly remove: boolean }): Promise<StrayReport>;
  /** Release files; the store is unusable afterwards. */
  close(): Promise<void>;
}

/**
 * Gets issued in one synchronous stretch go to the database as one
 * `getMany`: a NAR render reads ahead dozens of small files at once, and one
 * LevelDB get per file (a thread-pool round trip, or a socket round trip
 * through the database host) cost more than reading the files. Measured on
 * `nar` of a 20,000-file tree: `get` was the largest item of the profile.
 */
export class GetBatcher {
  private keys: Uint8Array[] = [];
  private waiters: { resolve: (v: Uint8Array | undefined) => void; reject: (e: unknown) => void }[] = [];

  /** `source`: a database (its getMany, or get for a lone key), or any batch read. */
  constructor(private readonly source: KV | ((keys: Uint8Array[]) => Promise<(Uint8Array | undefined)[]>)) {}

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    if (this.keys.length === 0) queueMicrotask(() => this.flush());
    this.keys.push(key);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private flush(): void {
    const keys = this.keys;
    const waiters = this.waiters;
    this.keys = [];
    this.waiters = [];
    const source = this.source;
    const done =
      typeof source === 'function'
        ? source(keys)
        : keys.length === 1
          ? source.get(keys[0]!).then((v) => [v])
          : source.getMany(keys);
    done.then(
      (values) => {
        for (let i = 0; i < waiters.length; i++) waiters[i]!.resolve(values[i]);
      },
      (error: unknown) => {
        for (const w of waiters) w.reject(error);
      },
    );
  }
}

/** Chunk bytes as the index values: one database holds everything. */
export class InlineChunkStore implements ChunkStore {
  private readonly batcher: GetBatcher;

  constructor(readonly index: KV) {
    this.batcher = new GetBatcher(index);
  }

  get(digest: Uint8Array): Promise<Uint8Array | undefined> {
    return this.batcher.get(digest);
  }

  getMany(digests: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return this.index.getMany(digests as Uint8Array[]);
  }

  hold(bytes: Uint8Array): Uint8Array {
    return bytes.slice();
  }

  release(): void {}

  async store(puts: readonly Put[]): Promise<Put[]> {
    return [...puts];
  }

  storedSize(value: Uint8Array): number {
    return value.length;
  }

  async close(): Promise<void> {}
}

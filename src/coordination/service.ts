/**
 * The coordination service contract: what the processes using one store
 * (and, for a shared store, the machines) must agree on beside the data
 * itself. Below the fetchers, the server and the operations, which see only
 * this interface; each backend implements it with what its store offers:
 * records, pids and a stamp file for a root on one machine (local.ts), plain
 * memory for `memory:` (memory.ts), database locks, rows that expire and
 * notifications for a shared database.
 *
 * - gc exclusion: writers run under `ingest`, gc deletes under `exclusive`;
 *   while a gc deletes, no ingest writes or reuses stored data. One gc runs
 *   at a time (`gcTurn`).
 * - use leases (`hold`) and last-use times (`recordUse`): what
 *   `gc --max-size` must not evict, and the order it evicts in.
 * - the path-info change stamp (`changes`), which lets a reader reuse what
 *   it made from path infos while none changed.
 * - pending uploads (`uploads`): NARs uploaded to the server, waiting for
 *   their narinfo (which may reach another server of the same store).
 * - path writes (`pathWrite`): one read-then-write of a path info at a time
 *   per path, across the processes of a shared store.
 *
 * A process that dies (SIGKILL) never leaves anything that blocks another:
 * its leases and records stop counting once it is gone.
 */

import type { Node } from '../castore/nodes.js';

export interface WaitOptions {
  /** Longest wait for the other side (default 10 minutes); past it, ERR_STORE_LOCKED. */
  readonly timeoutMs?: number | undefined;
  /** Told once when the wait starts. */
  readonly onWait?: ((why: string) => void) | undefined;
}

/**
 * A stamp that changes with every put and delete of a path info, in any
 * process on the store. The path-info service bumps it after each write.
 */
export interface ChangeStamp {
  /** The current stamp, opaque: equal stamps mean no path info changed in between. Cheap: no IO when watching. */
  current(): string;
  /** Record a change, after it is written. */
  bump(): void;
  /** Be told of changes instead of looking for them (a long-running reader); true when watching. */
  watch(): boolean;
  unwatch(): void;
}

/** An uploaded NAR, ingested, waiting for its narinfo. */
export interface PendingUpload {
  readonly node: Node;
  readonly narSha256: Uint8Array;
  readonly narSize: number;
  /** SHA-256 and size of the bytes as uploaded (compressed). */
  readonly fileSha256: Uint8Array;
  readonly fileSize: number;
  /** The compression of the uploaded file (`none`, `xz`, `zstd`, …). */
  readonly compression: string;
  /** When it was received, in ms since the epoch; an upload expires some time after (an hour by default). */
  readonly receivedAt: number;
}

/** Uploads waiting for their narinfo, by NAR hash; bounded in number and age. */
export interface PendingUploads {
  /** Keep `upload`, replacing one with the same NAR hash. */
  add(upload: PendingUpload): Promise<void>;
  byNarHash(narSha256: Uint8Array): Promise<PendingUpload | undefined>;
  byFileHash(fileSha256: Uint8Array): Promise<PendingUpload | undefined>;
  /** Drop `upload` (its narinfo arrived, or it cannot be used), unless another took its place meanwhile. */
  remove(upload: PendingUpload): Promise<void>;
  /** Uploads waiting now. */
  count(): Promise<number>;
}

/**
 * What the processes using one store agree on (`cache.coordination`): gc exclusion, use leases, last uses,
 * the path-info change stamp and pending uploads.
 */
export interface Coordination {
  /**
   * Run `fn`, which writes to the store or reuses what is stored, on the shared side of gc
   * exclusion: waits while a gc deletes (bounded, ERR_STORE_LOCKED), and no gc deletes until `fn`
   * is done. Re-entrant by process: while a gc waits for ingests of this handle that began before
   * it, a new ingest of this handle joins them (runs at once; the gc waits for it too), so one
   * started inside another's `fn` never waits for a gc that waits for its caller. Joined ingests let
   * no others join: once those that began before the gc end, new ones wait. (Which ingest a call is
   * inside of is not tracked: an async context on Node 20 puts a hook on every promise of the data
   * path, about 8 % of a fetch.)
   */
  ingest<T>(fn: () => Promise<T>, options?: WaitOptions): Promise<T>;
  /**
   * gc's deleting phase: ingests that start from now on wait, and this waits (bounded) for those
   * running to end. Returns the function that ends it.
   */
  exclusive(options?: WaitOptions): Promise<() => Promise<void>>;
  /** One gc at a time: waits (bounded) while another holds the turn; returns the function that gives it back. */
  gcTurn(options?: WaitOptions): Promise<() => Promise<void>>;
  /**
   * Run `fn`, a path-info service's read of the path with this store path digest and its write, while
   * no other process of the store runs one for the same path: the compare-and-set a shared database
   * does not offer, so that of two servers given other contents for one path at the same moment, one
   * finds the other's and refuses (ERR_PATH_CONFLICT). For a root on one machine and for `memory:`,
   * this process only (the path-info service serialises its own writes already).
   */
  pathWrite<T>(storePathDigest: Uint8Array, fn: () => Promise<T>): Promise<T>;
  /** Keep gc from evicting the path with this store path digest until the returned function is called. */
  hold(storePathDigest: Uint8Array): Promise<() => Promise<void>>;
  /** Store path digests (hex) held now, by any process. */
  held(): Promise<Set<string>>;
  /**
   * Note a use of the path with this store path digest at `when` (default now), for gc's
   * least-recently-used order. Neither waits nor throws: written behind the caller, batched; a
   * write that fails is dropped (a use only orders eviction).
   */
  recordUse(storePathDigest: Uint8Array, when?: number): void;
  /** Resolves once every use noted so far is written. */
  flushUses(): Promise<void>;
  /** The last recorded use of each path, ms since the epoch, by store path digest (hex). */
  lastUses(): Promise<Map<string, number>>;
  /** Forget the uses of these paths (hex digests; gc, for paths it deleted). Returns how many there were. */
  forgetUses(storePathDigests: readonly string[]): Promise<number>;
  readonly changes: ChangeStamp;
  readonly uploads: PendingUploads;
  /** Writes the uses still pending and stops watching. */
  close(): Promise<void>;
}

/**
 * Fast paths a store may offer beyond the service contracts (Cache.capabilities).
 * They are probed, never required: a caller takes the fast path where it is
 * present and the general path (`BlobService.read`) where it is not, with
 * the same bytes and the same errors either way. A store whose chunk bytes
 * are local files offers file segments (sendfile(2) from the page cache);
 * one that keeps single-chunk blobs as one record offers `readSmall`; a
 * network backend may offer neither.
 */

import type { B3Digest } from '../castore/digest.js';

/** `length` bytes at `offset` of the open file `fd`. */
export interface FileSegment {
  readonly fd: number;
  readonly offset: number;
  readonly length: number;
}

/** Consecutive bytes of a blob as segments of open files; `release()` once they are sent. */
export interface SegmentRun {
  readonly segments: readonly FileSegment[];
  release(): void;
}

/**
 * Fast paths a store may offer beyond the service contracts (`cache.capabilities`); each is optional, so
 * callers probe it and fall back to the services.
 */
export interface Capabilities {
  /**
   * The whole blob, verified, when it is stored as a single chunk; `undefined` otherwise (missing, or
   * several chunks: use `read`). Saves an async iteration per file in NAR renders of small files.
   */
  readonly readSmall?: ((digest: B3Digest) => Promise<Uint8Array | undefined>) | undefined;
  /**
   * The whole blob as runs of file segments, each chunk verified as its run is produced, for sending with
   * sendfile(2); a run's files stay open until its `release()`. `undefined` when the blob cannot be read
   * this way (missing, a single chunk, a chunk list not yet known to add up to the blob digest): use
   * `read`. A damaged or missing chunk throws ERR_INTEGRITY when its run is reached, as `read` would.
   */
  readonly fileSegments?: ((digest: B3Digest) => Promise<AsyncIterable<SegmentRun> | undefined>) | undefined;
}

/**
 * The directory service contract (snix castore DirectoryService): castore
 * `Directory` messages keyed by the BLAKE3 of their canonical encoding.
 */

import type { B3Digest } from '../castore/digest.js';
import type { Directory } from '../castore/directory.js';

export interface DirectoryPutter {
  /**
   * Queue one directory. Directories come leaves to root: every child
   * directory a directory refers to must have been put earlier in the same
   * putter (even when the store already has it), with the size the child
   * really has. Violations throw ERR_BAD_DIRECTORY here or at `close()`.
   */
  put(directory: Directory): Promise<void>;
  /**
   * Validate the closure (exactly one root, nothing unconnected, nothing
   * dangling) and write it in one batch, leaves first. Returns the root
   * digest. Nothing is visible before this resolves. Closing twice returns the
   * same digest.
   */
  close(): Promise<B3Digest>;
}

/** The directory service: castore directories by digest, verified on read (`cache.directories`). */
export interface DirectoryService {
  /**
   * The directory with this digest, re-verified against the digest after it
   * is read (ERR_INTEGRITY on mismatch); `undefined` on a miss.
   */
  get(digest: B3Digest): Promise<Directory | undefined>;
  /**
   * Store one directory whose subdirectories are already stored (ERR_BAD_DIRECTORY
   * otherwise). Idempotent; returns its digest.
   */
  put(directory: Directory): Promise<B3Digest>;
  /**
   * The closure of `root`, root to leaves (breadth first), each directory once.
   * Empty when the root is missing; a missing child is ERR_INTEGRITY (the
   * store is inconsistent).
   */
  getRecursive(root: B3Digest): AsyncIterable<Directory>;
  /** Start uploading a closure, leaves to root. */
  putter(): DirectoryPutter;
}

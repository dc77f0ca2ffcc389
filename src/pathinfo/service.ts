/**
 * The path-info service contract (snix store PathInfoService): what makes a
 * castore tree a Nix store path. Keyed by the 20-byte digest of the store
 * path; also indexed by NAR sha256 so the binary cache can find a path from a
 * `nar/<narhash>.nar` URL.
 */

import type { PathInfoGeneration } from './generation.js';
import type { PathInfo } from './path-info.js';

export interface PathInfoService {
  /** The path info of the store path with this 20-byte digest; `undefined` on a miss. */
  get(storePathDigest: Uint8Array): Promise<PathInfo | undefined>;
  /**
   * Store a path info (replacing one for the same store path) together with its
   * NAR-hash index entry, in one batch. The caller stores the tree it points to
   * first. Returns what was stored.
   */
  put(info: PathInfo): Promise<PathInfo>;
  /** Every path info, in store-path digest order. */
  list(): AsyncIterable<PathInfo>;
  /** The digest of a store path whose NAR has this sha256; `undefined` on a miss. */
  byNarHash(narSha256: Uint8Array): Promise<Uint8Array | undefined>;
  /** Remove a path info and its index entry. A miss is not an error. */
  delete(storePathDigest: Uint8Array): Promise<void>;
  /** Changes with every put and delete, in any process on the root (generation.ts); optional. */
  readonly generation?: PathInfoGeneration;
}

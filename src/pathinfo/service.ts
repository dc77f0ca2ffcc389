/**
 * The path-info service contract (snix store PathInfoService): what makes a
 * castore tree a Nix store path. Keyed by the 20-byte digest of the store
 * path; also indexed by NAR sha256 so the binary cache can find a path from a
 * `nar/<narhash>.nar` URL.
 *
 * A store path names one content for good, so the rule that a stored path
 * never changes its content lives here, in `put`, for every writer (fetches,
 * uploads, repairs) at once.
 */

import type { PathInfo } from './path-info.js';

export interface PutOptions {
  /**
   * Replace a stored path info that has other content. Only for a writer
   * that has just made `info` from the content itself, with a store path
   * made from that content's address (a fetch, `verify --repair`): the
   * stored one then cannot be right about this path.
   */
  readonly replace?: boolean | undefined;
}

/** The path-info service: path infos by store path digest and by NAR hash (`cache.pathInfos`). */
export interface PathInfoService {
  /** The path info of the store path with this 20-byte digest; `undefined` on a miss. */
  get(storePathDigest: Uint8Array): Promise<PathInfo | undefined>;
  /**
   * Store a path info together with its NAR-hash index entry, in one batch;
   * the caller stores the tree it points to first. When the store path is
   * already stored:
   * - with the same content (equal NAR sha256, NAR size, references and
   *   content address), the stored path info is kept and the signatures it
   *   lacks are added to it (deduplicated, stored ones first);
   * - with anything else, ERR_PATH_CONFLICT and nothing changes, unless
   *   `options.replace`.
   * A stored value that cannot be decoded (damage) is replaced. Returns what
   * is stored now. Puts by one service are serialised; two processes that
   * write the same new path at the same moment are not (see leveldb.ts).
   */
  put(info: PathInfo, options?: PutOptions): Promise<PathInfo>;
  /** Every path info, in store-path digest order. */
  list(): AsyncIterable<PathInfo>;
  /** The digest of a store path whose NAR has this sha256; `undefined` on a miss. */
  byNarHash(narSha256: Uint8Array): Promise<Uint8Array | undefined>;
  /** Remove a path info and its index entry. A miss is not an error. */
  delete(storePathDigest: Uint8Array): Promise<void>;
}

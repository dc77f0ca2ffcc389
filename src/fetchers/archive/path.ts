/**
 * Member paths of tar and zip archives, turned into castore path components.
 * Archives name members with raw bytes separated by `/`; we accept what Nix's
 * `CanonPath` accepts for honest archives (`./a` ≡ `a`, `a//b` ≡ `a/b`, a
 * trailing `/`) and reject what only a hostile or broken archive contains:
 * absolute paths and `..` components (where Nix 2.8's libarchive extractor
 * refused `..` with SECURE_NODOTDOT and modern Nix's CanonPath would silently
 * resolve it, we refuse both). Every component must be a valid castore name
 * (1–255 bytes, no NUL). Every failure here is ERR_BAD_ARCHIVE.
 */

import { displayBytes } from '../../castore/bytes.js';
import { nameProblem } from '../../castore/nodes.js';
import { FetchCacheError } from '../../errors.js';

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * Longest member path we accept, in bytes after normalisation (Linux
 * PATH_MAX - 1; Nix 2.8 could not extract anything longer either). Bounds the
 * tree depth, so emitting paths stays linear.
 */
export const MAX_MEMBER_PATH = 4095;

/** The one error every archive problem becomes. */
export function badArchive(message: string, path?: Uint8Array | string, cause?: unknown): FetchCacheError {
  const shown = path === undefined ? undefined : typeof path === 'string' ? path : displayBytes(path);
  return new FetchCacheError('ERR_BAD_ARCHIVE', shown === undefined ? message : `${message}: '${shown}'`, {
    ...(shown === undefined ? {} : { path: shown }),
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * The components of a member path: `.` and empty components dropped, so the
 * archive root itself (`./`, `.`) is the empty list.
 */
export function memberComponents(path: Uint8Array): Uint8Array[] {
  if (path[0] === SLASH) throw badArchive('archive member has an absolute path', path);
  const components: Uint8Array[] = [];
  let total = 0;
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path[i] !== SLASH) continue;
    const c = path.subarray(start, i);
    start = i + 1;
    if (c.length === 0 || (c.length === 1 && c[0] === DOT)) continue;
    if (c.length === 2 && c[0] === DOT && c[1] === DOT) {
      throw badArchive('archive member path contains a ".." component', path);
    }
    const problem = nameProblem(c);
    if (problem !== undefined) throw badArchive(`archive member has an invalid name (${problem})`, path);
    total += c.length + (components.length > 0 ? 1 : 0);
    if (total > MAX_MEMBER_PATH) {
      throw badArchive(`archive member path is longer than ${MAX_MEMBER_PATH} bytes`, path.subarray(0, 200));
    }
    components.push(c);
  }
  return components;
}

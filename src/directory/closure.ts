/**
 * Closure validation for directory uploads, after snix's `DirectoryGraph`
 * with the `LeavesToRootValidator` (snix `castore/src/directoryservice/directory_graph.rs`). Directories
 * arrive leaves to root: one is accepted only if every child directory it
 * names was added earlier in the same session, with the size that child
 * really has. Because children always precede their parents, no placeholder
 * nodes can exist, so `finish()` only has to check that exactly one added
 * directory is referenced by no other (the root); a second unreferenced one
 * is an unconnected extra. The write order is the insertion order without
 * repeats, which is leaves to root by construction and ends with the root.
 * Pure and synchronous: backends own the IO.
 */

import { displayBytes } from '../castore/bytes.js';
import { type B3Digest, b3ToHex } from '../castore/digest.js';
import type { Directory } from '../castore/directory.js';
import { FetchCacheError } from '../errors.js';

/**
 * What the closure keeps of an accepted directory: enough to check its parents and to write it. Not the
 * `Directory`, whose decoded entries (a name, a node and a digest each) would stay in memory for every
 * directory of the upload until it is written: 84,000 entries for the linux source tree.
 */
export interface AcceptedDirectory {
  readonly digest: B3Digest;
  readonly size: number;
  /** The canonical encoding, the bytes to store. */
  readonly encoded: Uint8Array;
}

export interface ValidatedClosure {
  /** Digest of the one directory no other directory refers to. */
  readonly root: B3Digest;
  /** Every directory once, children before parents; the root is last. */
  readonly order: readonly AcceptedDirectory[];
}

function bad(message: string, fields: { expected?: string; actual?: string; path?: string } = {}): never {
  throw new FetchCacheError('ERR_BAD_DIRECTORY', message, fields);
}

export class DirectoryClosure {
  /** Accepted directories by digest hex, in insertion order. */
  private readonly accepted = new Map<string, AcceptedDirectory>();
  /** Digests (hex) that some accepted directory refers to. */
  private readonly referenced = new Set<string>();

  /** Number of distinct directories accepted so far. */
  get size(): number {
    return this.accepted.size;
  }

  /**
   * Accepts `dir` if all its child directories were added before with
   * matching sizes (ERR_BAD_DIRECTORY otherwise; nothing is recorded then).
   * Adding a directory that is already here is a no-op. Returns its digest.
   */
  add(dir: Directory): B3Digest {
    const digest = dir.digest();
    const key = b3ToHex(digest);
    if (this.accepted.has(key)) return digest;
    const children: string[] = [];
    for (const { name, node } of dir.ofType('directory')) {
      if (node.type !== 'directory') continue;
      const childKey = b3ToHex(node.digest);
      const child = this.accepted.get(childKey);
      if (child === undefined) {
        bad(`unknown directory was referenced: '${displayBytes(name)}' points to ${childKey}`, {
          path: displayBytes(name),
          actual: childKey,
        });
      }
      if (child.size !== node.size) {
        bad(`'${displayBytes(name)}' has wrong size, specified ${node.size}, recorded ${child.size}`, {
          path: displayBytes(name),
          expected: String(child.size),
          actual: String(node.size),
        });
      }
      children.push(childKey);
    }
    this.accepted.set(key, { digest, size: dir.size, encoded: dir.encode() });
    for (const c of children) this.referenced.add(c);
    return digest;
  }

  /** Checks for exactly one root and returns it with the write order (ERR_BAD_DIRECTORY otherwise). */
  finish(): ValidatedClosure {
    const roots: string[] = [];
    for (const key of this.accepted.keys()) if (!this.referenced.has(key)) roots.push(key);
    if (roots.length === 0) bad('no directories were uploaded');
    if (roots.length > 1) {
      bad(`graph has no single root: ${roots.length} directories are not referenced by any other`, {
        expected: '1 root',
        actual: roots.join(', '),
      });
    }
    return { root: this.accepted.get(roots[0]!)!.digest, order: [...this.accepted.values()] };
  }
}

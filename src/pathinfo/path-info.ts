/**
 * PathInfo: a Nix store path, the castore root node of its contents and its
 * Nix metadata — the fields of `snix.store.v1.PathInfo`. The binary encoding
 * here is that protobuf message, so a value written by us is a valid snix
 * PathInfo (snix-reference.md §4.2).
 */

import type { Node } from '../castore/nodes.js';
import type { ContentAddress } from '../nix/content-address.js';
import type { StorePath } from '../nix/store-path.js';

export interface PathInfo {
  readonly storePath: StorePath;
  /** The root node of the tree (file, directory or symlink). */
  readonly node: Node;
  /** Store paths this one refers to, sorted by base name. */
  readonly references: readonly StorePath[];
  /** SHA-256 of the NAR serialisation. */
  readonly narSha256: Uint8Array;
  readonly narSize: number;
  /** `name:base64` signatures, as in narinfo `Sig` lines. */
  readonly signatures: readonly string[];
  /** The deriver's store path (the `.drv`), when known. */
  readonly deriver?: StorePath;
  readonly ca?: ContentAddress;
}

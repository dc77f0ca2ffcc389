/**
 * PathInfo: a Nix store path, the castore root node of its contents and its
 * Nix metadata — the fields of `snix.store.v1.PathInfo`. The binary encoding
 * here is that protobuf message, so a value written by us is a valid snix
 * PathInfo (snix `store/protos/pathinfo.proto`; docs/formats.md §10). `contentAddressProblem` is the check of
 * a path info against its own content address that needs no data.
 */

import type { Node } from '../castore/nodes.js';
import { isFetchCacheError } from '../errors.js';
import {
  type ContentAddress,
  formatContentAddress,
  storePathForContentAddress,
} from '../nix/content-address.js';
import { hashEquals, toSRI } from '../nix/hash.js';
import { formatStorePath, type StorePath, storePathEquals } from '../nix/store-path.js';

/**
 * What the cache knows about a store path (snix `PathInfo`): its root node, NAR hash and size, content
 * address, references, signatures.
 */
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

/**
 * What is wrong with the content address of `info` on its own terms, or
 * `undefined`: it must make the store path (with the references, as Nix's
 * check of a content-addressed path does), and a NAR SHA-256 one must be
 * the recorded NAR hash. Whether the stored data has that content is for
 * `verify` to find out. A path info without a content address passes.
 */
export function contentAddressProblem(info: PathInfo, storeDir: string): string | undefined {
  const ca = info.ca;
  if (ca === undefined) return undefined;
  const what = `content address ${formatContentAddress(ca)}`;
  const self = info.references.some((r) => storePathEquals(r, info.storePath));
  const others = info.references
    .filter((r) => !storePathEquals(r, info.storePath))
    .map((r) => formatStorePath(r, storeDir));
  let made: StorePath;
  try {
    made = storePathForContentAddress(info.storePath.name, ca, others, storeDir, { self });
  } catch (e) {
    if (isFetchCacheError(e, 'ERR_BAD_CA')) return `${what} cannot describe this path: ${e.message}`;
    throw e;
  }
  if (!storePathEquals(made, info.storePath)) {
    return `${what} makes ${formatStorePath(made, storeDir)}, not this path`;
  }
  const nar = { algo: 'sha256' as const, digest: info.narSha256 };
  if (ca.method === 'nar' && ca.hash.algo === 'sha256' && !hashEquals(ca.hash, nar)) {
    return `${what} is not the recorded NAR hash ${toSRI(nar)}`;
  }
  return undefined;
}

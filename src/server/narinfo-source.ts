/**
 * The narinfo text the cache serves for a path info (nix-formats.md §6.3):
 * `URL: nar/<NarHash nix32>.nar`, `Compression: none`, FileHash/FileSize equal
 * to NarHash/NarSize (so Nix shows progress), References, Deriver, the
 * signatures stored with the path plus one per configured signing key, and
 * CA, in Nix's writer order. Signing costs an Ed25519 signature per key, so
 * finished texts are kept in a small LRU keyed by hash part and checked
 * against the path info they were made from before reuse (an upload that
 * replaces the path changes NarHash or signatures and so misses).
 */

import { formatContentAddress } from '../nix/content-address.js';
import { formatNarInfoNixOrder, type NarInfoFields } from '../nix/narinfo.js';
import { encodeNix32 } from '../nix/nixbase32.js';
import { fingerprintPath, type SecretKey, signFingerprint } from '../nix/signing.js';
import { formatStorePath, storePathBaseName, storePathHashPart } from '../nix/store-path.js';
import type { PathInfo } from '../pathinfo/path-info.js';

export const NARINFO_CONTENT_TYPE = 'text/x-nix-narinfo';

/** The NAR URL of a path info, relative to the cache root. */
export function narUrl(info: Pick<PathInfo, 'narSha256'>): string {
  return `nar/${encodeNix32(info.narSha256)}.nar`;
}

/** The narinfo fields of a path info with `extraSigs` added to its stored signatures. */
export function narInfoFieldsOf(
  info: PathInfo,
  storeDir: string,
  extraSigs: readonly string[] = [],
): NarInfoFields {
  const narHash = { algo: 'sha256' as const, digest: info.narSha256 };
  return {
    storePath: formatStorePath(info.storePath, storeDir),
    url: narUrl(info),
    compression: 'none',
    fileHash: narHash,
    fileSize: info.narSize,
    narHash,
    narSize: info.narSize,
    references: info.references.map(storePathBaseName),
    ...(info.deriver === undefined ? {} : { deriver: storePathBaseName(info.deriver) }),
    sigs: [...info.signatures, ...extraSigs],
    ...(info.ca === undefined ? {} : { ca: formatContentAddress(info.ca) }),
  };
}

/** Our signatures over a path info, one per key (fingerprint of spec §7.2). */
export function signPathInfo(info: PathInfo, keys: readonly SecretKey[], storeDir: string): string[] {
  if (keys.length === 0) return [];
  const fingerprint = fingerprintPath({
    storePath: formatStorePath(info.storePath, storeDir),
    narHash: { algo: 'sha256', digest: info.narSha256 },
    narSize: info.narSize,
    references: info.references.map((r) => formatStorePath(r, storeDir)),
  });
  return keys.map((k) => signFingerprint(k, fingerprint));
}

/** What makes a cached text still right for a path info. */
function identity(info: PathInfo): string {
  return `${encodeNix32(info.narSha256)} ${info.narSize} ${info.signatures.join(' ')} ${info.references.length}`;
}

export class NarInfoSource {
  private readonly lru = new Map<string, { identity: string; text: string }>();

  constructor(
    private readonly keys: readonly SecretKey[],
    private readonly storeDir: string,
    private readonly capacity = 10_000,
  ) {}

  /** The served narinfo text of `info`. */
  text(info: PathInfo): string {
    const key = storePathHashPart(info.storePath);
    const id = identity(info);
    const hit = this.lru.get(key);
    if (hit !== undefined && hit.identity === id) {
      this.lru.delete(key);
      this.lru.set(key, hit);
      return hit.text;
    }
    const text = formatNarInfoNixOrder(
      narInfoFieldsOf(info, this.storeDir, signPathInfo(info, this.keys, this.storeDir)),
    );
    this.lru.set(key, { identity: id, text });
    if (this.lru.size > this.capacity) this.lru.delete(this.lru.keys().next().value!);
    return text;
  }

  /** Drop the cached text of a hash part (after an upload replaced the path). */
  invalidate(hashPart: string): void {
    this.lru.delete(hashPart);
  }
}

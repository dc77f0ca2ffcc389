/**
 * The narinfo text the cache serves for a path info (docs/formats.md §7):
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

/** Our signatures over a path info, one per key (fingerprint of docs/formats.md §8). */
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

/** A finished narinfo response: the body bytes and what a hit needs without the path info. */
export interface NarInfoResponse {
  readonly text: string;
  readonly body: Buffer;
  /** The store path digest (for `touchServed`). */
  readonly digest: Uint8Array;
  /** When a GET of it last recorded a use (ms); uses are recorded at most once a minute anyway. */
  touchedAt: number;
}

interface Entry extends NarInfoResponse {
  readonly identity: string;
  /** The path-info generation stamp taken before the path info was read, if any. */
  stamp: string | undefined;
}

export class NarInfoSource {
  private readonly lru = new Map<string, Entry>();

  constructor(
    private readonly keys: readonly SecretKey[],
    private readonly storeDir: string,
    private readonly capacity = 10_000,
  ) {}

  /**
   * The cached response for a hash part if it was made under generation
   * `stamp` (taken now): no path info changed since, so it is still right.
   */
  hit(hashPart: string, stamp: string | undefined): NarInfoResponse | undefined {
    if (stamp === undefined) return undefined;
    const entry = this.lru.get(hashPart);
    if (entry === undefined || entry.stamp !== stamp) return undefined;
    this.lru.delete(hashPart);
    this.lru.set(hashPart, entry);
    return entry;
  }

  /** The served narinfo response of `info`, read under generation `stamp` (taken before the read). */
  response(info: PathInfo, stamp?: string): NarInfoResponse {
    const key = storePathHashPart(info.storePath);
    const id = identity(info);
    const hit = this.lru.get(key);
    if (hit !== undefined && hit.identity === id) {
      this.lru.delete(key);
      this.lru.set(key, hit);
      hit.stamp = stamp;
      return hit;
    }
    const text = formatNarInfoNixOrder(
      narInfoFieldsOf(info, this.storeDir, signPathInfo(info, this.keys, this.storeDir)),
    );
    const entry: Entry = {
      identity: id,
      text,
      body: Buffer.from(text, 'utf8'),
      digest: info.storePath.digest,
      touchedAt: 0,
      stamp,
    };
    this.lru.set(key, entry);
    if (this.lru.size > this.capacity) this.lru.delete(this.lru.keys().next().value!);
    return entry;
  }

  /** The served narinfo text of `info`. */
  text(info: PathInfo): string {
    return this.response(info).text;
  }

  /** Drop the cached text of a hash part (after an upload replaced the path). */
  invalidate(hashPart: string): void {
    this.lru.delete(hashPart);
  }
}

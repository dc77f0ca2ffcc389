/**
 * NAR sha256 and size of a castore node, computed by streaming the render
 * through SHA-256 (the NAR itself is never stored) and cached persistently,
 * keyed by the encoded anonymous root node — a node fully determines its NAR,
 * so the cache never goes stale. snix's SimpleRenderer recomputes every time;
 * here a tree's NAR is hashed once.
 */

import { encodeEntry, type Node } from '../castore/nodes.js';
import { FetchCacheError } from '../errors.js';
import { createHasher } from '../nix/hashing.js';
import type { KV } from '../storage/kv.js';
import { type RenderServices, renderNar } from './render.js';

export interface NarSum {
  readonly narSha256: Uint8Array;
  readonly narSize: number;
}

const EMPTY_NAME = new Uint8Array(0);

/** Hash a node's NAR without consulting any cache. */
export async function computeNarSum(node: Node, services: RenderServices): Promise<NarSum> {
  const hasher = createHasher('sha256');
  let narSize = 0;
  for await (const chunk of renderNar(node, services)) {
    hasher.update(chunk);
    narSize += chunk.length;
  }
  return { narSha256: hasher.digest(), narSize };
}

export class NarCalculator {
  constructor(
    private readonly kv: KV,
    private readonly services: RenderServices,
  ) {}

  /** NAR sha256 and size of `node`, from the cache or computed (and then cached). */
  async calculate(node: Node): Promise<NarSum> {
    const key = encodeEntry(EMPTY_NAME, node);
    const cached = await this.kv.get(key);
    if (cached !== undefined) return decodeSum(cached);
    const sum = await computeNarSum(node, this.services);
    await this.remember(node, sum);
    return sum;
  }

  /** Record a sum computed elsewhere (e.g. while ingesting a NAR stream). */
  async remember(node: Node, sum: NarSum): Promise<void> {
    await this.kv.put(encodeEntry(EMPTY_NAME, node), encodeSum(sum));
  }

  /** Forget a cached sum (verify found it wrong). */
  async forget(node: Node): Promise<void> {
    await this.kv.del(encodeEntry(EMPTY_NAME, node));
  }
}

/** 32 bytes sha256, then the size as u64 little-endian. */
function encodeSum(sum: NarSum): Uint8Array {
  const out = new Uint8Array(40);
  out.set(sum.narSha256, 0);
  new DataView(out.buffer).setBigUint64(32, BigInt(sum.narSize), true);
  return out;
}

function decodeSum(bytes: Uint8Array): NarSum {
  if (bytes.length !== 40) {
    throw new FetchCacheError('ERR_INTEGRITY', `NAR sum cache entry has ${bytes.length} bytes, expected 40`);
  }
  const size = new DataView(bytes.buffer, bytes.byteOffset, 40).getBigUint64(32, true);
  return { narSha256: bytes.slice(0, 32), narSize: Number(size) };
}

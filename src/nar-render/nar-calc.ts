/**
 * NAR sha256 and size of a castore node, computed by streaming the render
 * through SHA-256 (the NAR itself is never stored) and kept in the store's
 * NAR-sum cache (`NarSums`, a service of the store: Cache.narSums), keyed by
 * the anonymous root node — a node fully determines its NAR, so the cache
 * never goes stale. snix's SimpleRenderer recomputes every time; here a
 * tree's NAR is hashed once.
 */

import type { Node } from '../castore/nodes.js';
import { createHasher } from '../nix/hashing.js';
import { type RenderServices, renderNar } from './render.js';

/** The NAR SHA-256 and size of a tree. */
export interface NarSum {
  readonly narSha256: Uint8Array;
  readonly narSize: number;
}

/** The store's NAR-sum cache (maintenance/service.ts lists it as `narSums`). */
export interface NarSums {
  /** The sum recorded for `node`; `undefined` when none is. A damaged record is ERR_INTEGRITY. */
  get(node: Node): Promise<NarSum | undefined>;
  put(node: Node, sum: NarSum): Promise<void>;
  /** Forget the sum of `node` (verify found it wrong). A miss is not an error. */
  delete(node: Node): Promise<void>;
}

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

/** NAR sums from the store's cache, computed (and recorded) where it has none. */
export class NarCalculator {
  constructor(
    private readonly sums: NarSums,
    private readonly services: RenderServices,
  ) {}

  /** NAR sha256 and size of `node`, from the cache or computed (and then cached). */
  async calculate(node: Node): Promise<NarSum> {
    const cached = await this.sums.get(node);
    if (cached !== undefined) return cached;
    const sum = await computeNarSum(node, this.services);
    await this.remember(node, sum);
    return sum;
  }

  /** Record a sum computed elsewhere (e.g. while ingesting a NAR stream). */
  async remember(node: Node, sum: NarSum): Promise<void> {
    await this.sums.put(node, sum);
  }

  /** Forget a cached sum (verify found it wrong). */
  async forget(node: Node): Promise<void> {
    await this.sums.delete(node);
  }
}

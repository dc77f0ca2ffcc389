/**
 * A read-through near cache (snix's near/far): local pack files (packs.ts)
 * with a small local index, in front of a remote chunk store (s3-packs.ts).
 * `--cache-root DIR` holds them (`DIR/db` the index, `DIR/packs/` the
 * packs: backends/chunk-stores.ts opens them), `--cache-size` bounds their
 * bytes.
 *
 * It is a cache, never the store: the index that says which chunks exist is
 * the far store's (`index`, read for every batch, so a chunk gc deleted is
 * missing here too), writes go far, and the near cache may lose anything at
 * any time. Reads ask near first (each chunk verified against its
 * digest there: a damaged or vanished near copy is a miss, never an error),
 * misses go far in one batch, and what came back is appended near behind the
 * reader. Sendfile reads (`segments`) are served from near packs, the misses
 * fetched and appended first. Over the budget, whole near packs go, least
 * recently read first, each with the near rows that name it.
 */

import { blake3 } from '../nix/hashing.js';
import type { Put } from '../storage/group-commit.js';
import type { KV } from '../storage/kv.js';
import {
  type ChunkSegments,
  type ChunkStore,
  GetBatcher,
  type SegmentCheck,
  type StrayReport,
} from './chunk-store.js';
import type { PackChunkStore } from './packs.js';

/** Fills waiting to be appended near at most; beyond, a read does not fill (the reader never waits on near). */
const MAX_PENDING_FILL = 64 << 20;

export interface NearOptions {
  /** The store of record. */
  readonly far: ChunkStore;
  /**
   * Pack files over the near cache's own index (the composition root opens them), whose `onLocate`
   * calls `used` of this store (the eviction order).
   */
  readonly local: PackChunkStore;
  /** Bytes of near packs to keep (whole packs are evicted beyond it). */
  readonly bytes: number;
  /** Releases the near index's database (after `local` is closed). */
  readonly closeLocal: () => Promise<void>;
}

export class NearChunkStore implements ChunkStore {
  readonly index: KV;
  readonly groupBytes: number | undefined;
  readonly groupLingerMs: number | undefined;
  readonly readAheadBytes: number | undefined;
  /** Near hits, misses (chunks) and evicted packs, for tests and benchmarks. */
  readonly stats = { hits: 0, misses: 0, evicted: 0 };
  private readonly far: ChunkStore;
  private readonly local: PackChunkStore;
  private readonly budget: number;
  private readonly closeLocal: () => Promise<void>;
  private readonly batcher: GetBatcher;
  /** Pack → last read (a counter): the eviction order. */
  private readonly uses = new Map<string, number>();
  private tick = 0;
  /** Appends near run one after another; `pending` bytes wait in the chain. */
  private filling: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;

  constructor(options: NearOptions) {
    this.far = options.far;
    this.local = options.local;
    this.budget = options.bytes;
    this.closeLocal = options.closeLocal;
    this.index = options.far.index;
    this.groupBytes = options.far.groupBytes;
    this.groupLingerMs = options.far.groupLingerMs;
    this.readAheadBytes = options.far.readAheadBytes;
    this.batcher = new GetBatcher((keys) => this.getMany(keys));
  }

  /** `local`'s `onLocate`: a near pack was read. */
  used(pack: string): void {
    this.uses.delete(pack);
    this.uses.set(pack, ++this.tick);
  }

  get(digest: Uint8Array): Promise<Uint8Array | undefined> {
    return this.batcher.get(digest);
  }

  async getMany(digests: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    // The far index says what is stored (gc may have deleted a chunk near still holds).
    const [stored, near] = await Promise.all([
      this.index.hasMany(digests as Uint8Array[]),
      this.local.getMany(digests),
    ]);
    const out: (Uint8Array | undefined)[] = new Array(digests.length);
    const misses: number[] = [];
    for (let i = 0; i < digests.length; i++) {
      if (!stored[i]) continue;
      const bytes = near[i]; // sparse where near has no row
      if (bytes !== undefined && bytes.length > 0 && equal(blake3(bytes), digests[i]!)) out[i] = bytes;
      else misses.push(i);
    }
    this.stats.hits += digests.length - misses.length;
    if (misses.length === 0) return out;
    this.stats.misses += misses.length;
    const got = await this.far.getMany(misses.map((i) => digests[i]!));
    const fill: Put[] = [];
    misses.forEach((i, m) => {
      const bytes = got[m];
      out[i] = bytes;
      if (bytes !== undefined && bytes.length > 0)
        fill.push({ kv: this.local.index, key: digests[i]!, value: bytes });
    });
    void this.fill(fill, false);
    return out;
  }

  /** Near segments; the misses are fetched far and appended near first. */
  async segments(digests: readonly Uint8Array[]): Promise<ChunkSegments> {
    const [stored, first] = await Promise.all([
      this.index.hasMany(digests as Uint8Array[]),
      this.local.segments(digests),
    ]);
    const checks = [...first.checks];
    const misses: number[] = [];
    checks.forEach((c, i) => {
      if (!stored[i]) checks[i] = { kind: 'missing' };
      else if (c.kind !== 'ok') misses.push(i);
    });
    this.stats.hits += digests.length - misses.length;
    if (misses.length === 0) return { checks, release: first.release };
    this.stats.misses += misses.length;
    let second: ChunkSegments | undefined;
    try {
      const wanted = misses.map((i) => digests[i]!);
      const got = await this.far.getMany(wanted);
      const fill: Put[] = [];
      const verdicts: (SegmentCheck | undefined)[] = got.map((bytes, m) => {
        if (bytes === undefined) return { kind: 'missing' };
        const actual = blake3(bytes);
        if (bytes.length === 0 || !equal(actual, wanted[m]!))
          return { kind: 'damaged', actual, length: bytes.length };
        fill.push({ kv: this.local.index, key: wanted[m]!, value: bytes });
        return undefined;
      });
      await this.fill(fill, true);
      second = await this.local.segments(wanted);
      misses.forEach((i, m) => {
        checks[i] = verdicts[m] ?? second!.checks[m]!;
      });
    } catch (e) {
      first.release();
      second?.release();
      throw e;
    }
    const both = second;
    return {
      checks,
      release: () => {
        first.release();
        both.release();
      },
    };
  }

  /**
   * Appends chunks near (after the fills before them) and writes their near rows, then evicts
   * beyond the budget. Unless `wait`, a fill is dropped when too much is pending, and its failure
   * is only a later miss.
   */
  private fill(puts: Put[], wait: boolean): Promise<void> {
    if (puts.length === 0 || this.closed) return Promise.resolve();
    let bytes = 0;
    for (const p of puts) bytes += p.value.length;
    if (!wait && this.pending + bytes > MAX_PENDING_FILL) return Promise.resolve();
    this.pending += bytes;
    const run = this.filling.then(async () => {
      try {
        const rows = await this.local.store(puts);
        await this.local.index.batch(rows.map((r) => ({ type: 'put' as const, key: r.key, value: r.value })));
        await this.evict();
      } finally {
        this.pending -= bytes;
      }
    });
    this.filling = run.catch(() => {});
    return wait ? run : this.filling;
  }

  /** Whole near packs, least recently read first, until the near bytes are within 90% of the budget. */
  private async evict(): Promise<void> {
    const packs = this.local.packs();
    let total = 0;
    for (const p of packs) total += p.bytes;
    if (total <= this.budget) return;
    const order = packs.sort((a, b) => (this.uses.get(a.pack) ?? 0) - (this.uses.get(b.pack) ?? 0));
    for (const p of order) {
      if (total <= this.budget * 0.9) break;
      if (!(await this.local.drop(p.pack))) continue;
      this.uses.delete(p.pack);
      this.stats.evicted++;
      total -= p.bytes;
    }
  }

  hold(bytes: Uint8Array): Uint8Array {
    return this.far.hold(bytes);
  }

  release(held: readonly Uint8Array[]): void {
    this.far.release(held);
  }

  store(puts: readonly Put[]): Promise<Put[]> {
    return this.far.store(puts);
  }

  storedSize(value: Uint8Array): number {
    return this.far.storedSize(value);
  }

  /** The far store's compaction (near rows name chunks by digest: what moved far is still right near). */
  async compact(): Promise<{ packs: number; moved: number; freedBytes: number }> {
    return (await this.far.compact?.()) ?? { packs: 0, moved: 0, freedBytes: 0 };
  }

  /** The far store's strays. */
  async strays(options: { readonly remove: boolean }): Promise<StrayReport> {
    return (await this.far.strays?.(options)) ?? { keys: [], bytes: 0, removed: 0 };
  }

  /** Waits for the fills under way, then closes near, then far. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.filling;
    try {
      await this.local.close();
      await this.closeLocal();
    } finally {
      await this.far.close();
    }
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

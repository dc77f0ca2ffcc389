/**
 * Recently served small NARs, whole, in memory: a tree of many small files
 * costs a database read and a verification per file to render, and serving
 * the same NAR again from memory is what nginx gets from the page cache.
 * Keyed by NAR sha256, so an entry can never be wrong for its key; whether
 * the key may be served at all is still decided in front of the cache by the
 * NAR-hash index lookup (a path gc deleted is 404, cached or not). Bounded by
 * a byte budget (least recently used out first) and an item size; renders
 * into memory at once are bounded too (`maxLoadingBytes`), and a NAR that
 * would exceed that is streamed instead. Concurrent misses of one NAR share
 * one render.
 */

import { ByteLru } from '../byte-lru.js';

export interface NarCacheOptions {
  /** Total bytes kept (default 64 MiB). */
  readonly budgetBytes?: number;
  /** Largest NAR kept (default 16 MiB, a quarter of the budget). */
  readonly maxItemBytes?: number;
  /** Bytes being rendered into memory at once (default 32 MiB). */
  readonly maxLoadingBytes?: number;
}

export class NarCache {
  readonly budgetBytes: number;
  readonly maxItemBytes: number;
  readonly maxLoadingBytes: number;
  private readonly items: ByteLru<string, Buffer>;
  private readonly loading = new Map<string, Promise<Buffer | undefined>>();
  private loadingBytes = 0;

  constructor(options: NarCacheOptions = {}) {
    this.budgetBytes = options.budgetBytes ?? 64 << 20;
    this.maxItemBytes = Math.min(options.maxItemBytes ?? 16 << 20, this.budgetBytes);
    this.maxLoadingBytes = options.maxLoadingBytes ?? 32 << 20;
    this.items = new ByteLru(this.budgetBytes, (bytes) => bytes.length);
  }

  /** Bytes held now. */
  get size(): number {
    return this.items.bytes;
  }

  get(key: string): Buffer | undefined {
    return this.items.get(key);
  }

  /**
   * The NAR under `key` from memory, or rendered by `load` (shared with any
   * concurrent miss) and kept; `undefined` when it is too large, when memory
   * for renders is used up (stream it instead), or when `load` gives nothing.
   */
  async getOrLoad(
    key: string,
    size: number,
    load: () => Promise<Buffer | undefined>,
  ): Promise<Buffer | undefined> {
    const hit = this.get(key);
    if (hit !== undefined) return hit;
    const pending = this.loading.get(key);
    if (pending !== undefined) return pending;
    if (size > this.maxItemBytes || this.loadingBytes + size > this.maxLoadingBytes) return undefined;
    this.loadingBytes += size;
    const run = load().finally(() => {
      this.loadingBytes -= size;
      this.loading.delete(key);
    });
    this.loading.set(key, run);
    const bytes = await run;
    if (bytes !== undefined) this.put(key, bytes);
    return bytes;
  }

  /** Drop everything kept (renders in flight finish and are kept). */
  clear(): void {
    this.items.clear();
  }

  private put(key: string, bytes: Buffer): void {
    // No item is larger than the budget, so the one just kept is never the one evicted.
    if (bytes.length > this.maxItemBytes || this.items.has(key)) return;
    this.items.set(key, bytes);
  }
}

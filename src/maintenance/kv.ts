/**
 * The maintenance service (service.ts) of a store whose records are in a
 * key-value database: each kind is one sublevel, named by the backend that
 * lays the store out (backends/kv.ts), and chunk bytes are wherever its
 * chunk store keeps them (blob/chunk-store.ts: inline, or pack files).
 */

import type { ChunkStore } from '../blob/chunk-store.js';
import type { ChangeStamp } from '../coordination/service.js';
import type { FetchCacheError } from '../errors.js';
import type { KV } from '../storage/kv.js';
import type { CompactReport, Kind, Maintenance, ReindexReport, StrayReport } from './service.js';

export interface KvMaintenanceOptions {
  /** The sublevel of each kind. */
  readonly kinds: Readonly<Record<Kind, KV>>;
  readonly chunkStore: ChunkStore;
  /** Bumped when path infos are deleted. */
  readonly changes?: ChangeStamp | undefined;
  readonly database: string;
  readonly damage?: ((error: unknown) => FetchCacheError | undefined) | undefined;
}

export class KvMaintenance implements Maintenance {
  readonly database: string;

  constructor(private readonly options: KvMaintenanceOptions) {
    this.database = options.database;
  }

  keys(kind: Kind): AsyncIterable<Uint8Array> {
    return this.kv(kind).keys();
  }

  entries(kind: Kind): AsyncIterable<[Uint8Array, Uint8Array]> {
    return this.kv(kind).iterator();
  }

  getMany(kind: Kind, keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return this.kv(kind).getMany(keys as Uint8Array[]);
  }

  hasMany(kind: Kind, keys: readonly Uint8Array[]): Promise<boolean[]> {
    return this.kv(kind).hasMany(keys as Uint8Array[]);
  }

  async sizes(kind: Kind, keys: readonly Uint8Array[]): Promise<(number | undefined)[]> {
    const values = await this.getMany(kind, keys);
    return values.map((v) => (v === undefined ? undefined : this.sizeOf(kind, v)));
  }

  async delete(
    kind: Kind,
    keys: Iterable<Uint8Array>,
    options: { batchSize?: number } = {},
  ): Promise<{ count: number; bytes: number }> {
    const kv = this.kv(kind);
    const batchSize = options.batchSize ?? 1000;
    let count = 0;
    let bytes = 0;
    let page: Uint8Array[] = [];
    const flush = async () => {
      if (page.length === 0) return;
      const values = await kv.getMany(page);
      const ops = [];
      for (let i = 0; i < page.length; i++) {
        const v = values[i];
        if (v === undefined) continue;
        bytes += this.sizeOf(kind, v);
        count++;
        ops.push({ type: 'del' as const, key: page[i]! });
      }
      if (ops.length > 0) {
        await kv.batch(ops);
        if (kind === 'pathInfos') this.options.changes?.bump();
      }
      page = [];
    };
    for (const key of keys) {
      page.push(key);
      if (page.length >= batchSize) await flush();
    }
    await flush();
    return { count, bytes };
  }

  async put(kind: Kind, entries: readonly (readonly [Uint8Array, Uint8Array])[]): Promise<void> {
    if (entries.length === 0) return;
    await this.kv(kind).batch(entries.map(([key, value]) => ({ type: 'put' as const, key, value })));
    if (kind === 'pathInfos') this.options.changes?.bump();
  }

  chunkBytes(digest: Uint8Array): Promise<Uint8Array | undefined> {
    return this.options.chunkStore.get(digest);
  }

  async compact(): Promise<CompactReport> {
    return (await this.options.chunkStore.compact?.()) ?? { packs: 0, moved: 0, freedBytes: 0 };
  }

  diskBytes(): number | undefined {
    return this.options.chunkStore.diskBytes?.();
  }

  async strays(options: { readonly remove: boolean }): Promise<StrayReport | undefined> {
    return await this.options.chunkStore.strays?.(options);
  }

  async reindex(): Promise<ReindexReport> {
    return (await this.options.chunkStore.reindex?.()) ?? { chunks: 0, bytes: 0 };
  }

  damage(error: unknown): FetchCacheError | undefined {
    return this.options.damage?.(error);
  }

  private kv(kind: Kind): KV {
    const kv = this.options.kinds[kind];
    if (kv === undefined) throw new TypeError(`unknown kind of record '${kind}'`);
    return kv;
  }

  private sizeOf(kind: Kind, value: Uint8Array): number {
    return kind === 'chunks' ? this.options.chunkStore.storedSize(value) : value.length;
  }
}

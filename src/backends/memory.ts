/**
 * The `memory:` backend: a store in this process's memory, gone when it is
 * closed (tests, throwaway use). The key-value store of kv.ts on
 * memory-level, chunk bytes inline, and in-process coordination
 * (coordination/memory.ts). Nothing else can open it, so it has no root, no
 * recorded store dir (the one asked for, else `/nix/store`) and no damage
 * to report.
 */

import type { StoreServices } from '../cache.js';
import { MemoryCoordination } from '../coordination/memory.js';
import { DEFAULT_STORE_DIR } from '../nix/store-path.js';
import { openMemoryKV } from '../storage/kv.js';
import { composeKv } from './kv.js';
import type { StoreOptions } from './registry.js';

export async function openMemoryStore(options: StoreOptions): Promise<StoreServices> {
  const db = await openMemoryKV();
  return composeKv(db, {
    root: undefined,
    storeDir: options.storeDir ?? DEFAULT_STORE_DIR,
    coordination: new MemoryCoordination(),
    database: 'memory',
    close: () => db.close(),
  });
}

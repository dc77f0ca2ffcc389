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
import type { KV } from '../storage/kv.js';
import { composeKv } from './kv.js';
import type { StoreOptions } from './registry.js';

/** A fresh in-memory database (memory-level loads on first use). */
export async function openMemoryKV(): Promise<KV> {
  const { MemoryLevel } = await import('memory-level');
  const db = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  return db;
}

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

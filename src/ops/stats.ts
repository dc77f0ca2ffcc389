/**
 * `fetch-cache stats`: what the store holds, read through its maintenance
 * service (maintenance/service.ts). Logical bytes are the NAR
 * sizes of all paths (what a Nix store would hold); stored bytes are what
 * their data takes here (distinct chunks, chunk lists and directories);
 * the dedup ratio is logical over stored. Values nobody reaches (left by
 * failed or killed fetches; `gc` deletes them) are counted apart, so a
 * rejected input leaves the main figures exactly as they were.
 */

import type { Cache } from '../cache.js';
import { closureOf, keyBytes, keyOf, RefCounts } from '../maintenance/reach.js';
import type { Kind, Maintenance } from '../maintenance/service.js';
import { decodeStored } from './gc.js';

/**
 * What a store holds (`fetch-cache stats --json`): paths, logical and stored bytes, dedup ratio, chunks,
 * pack bytes, and what gc would delete.
 */
export interface StoreStats {
  paths: number;
  logicalBytes: number;
  storedBytes: number;
  /** logicalBytes / storedBytes (1 for an empty store). */
  dedupRatio: number;
  /** Distinct chunks reachable from a path. */
  chunks: number;
  chunkBytes: number;
  /** Bytes of the pack files holding chunks (dead chunks included until gc compacts them); 0 where not files. */
  packBytes: number;
  directories: number;
  /** Path infos that cannot be decoded (verify reports them). */
  damagedPathInfos: number;
  /** What gc would delete. */
  unreachable: { chunks: number; chunkLists: number; directories: number; bytes: number };
}

/** What the store holds (`fetch-cache stats`), read through its maintenance service; exported as `stats`. */
export async function storeStats(cache: Cache): Promise<StoreStats> {
  const store = cache.maintenance;
  const refs = new RefCounts();
  let paths = 0;
  let logicalBytes = 0;
  let damagedPathInfos = 0;
  for await (const [key, value] of store.entries('pathInfos')) {
    const info = decodeStored(keyOf(key), value);
    if (info === undefined) {
      damagedPathInfos++;
      continue;
    }
    paths++;
    logicalBytes += info.narSize;
    refs.add(await closureOf(store, info.node));
  }
  const storedBytes = refs.storedBytes();
  let chunkBytes = 0;
  for (const size of refs.sizes.chunks.values()) chunkBytes += size;
  const chunks = await unreachable(store, 'chunks', (k) => refs.live('chunks', k));
  const lists = await unreachable(store, 'chunkLists', (k) => refs.live('lists', k));
  const dirs = await unreachable(store, 'directories', (k) => refs.live('dirs', k));
  return {
    paths,
    logicalBytes,
    storedBytes,
    dedupRatio: storedBytes === 0 ? 1 : Math.round((logicalBytes / storedBytes) * 1000) / 1000,
    chunks: refs.counts.chunks.size,
    chunkBytes,
    packBytes: store.diskBytes() ?? 0,
    directories: refs.counts.dirs.size,
    damagedPathInfos,
    unreachable: {
      chunks: chunks.count,
      chunkLists: lists.count,
      directories: dirs.count,
      bytes: chunks.bytes + lists.bytes + dirs.bytes,
    },
  };
}

/** Count and size of the records of a kind nobody reaches (sizes read only for those). */
async function unreachable(
  store: Maintenance,
  kind: Kind,
  isLive: (k: string) => boolean,
): Promise<{ count: number; bytes: number }> {
  const dead: Uint8Array[] = [];
  for await (const key of store.keys(kind)) if (!isLive(keyOf(key))) dead.push(keyBytes(keyOf(key)));
  let bytes = 0;
  for (let at = 0; at < dead.length; at += 512) {
    for (const n of await store.sizes(kind, dead.slice(at, at + 512))) bytes += n ?? 0;
  }
  return { count: dead.length, bytes };
}

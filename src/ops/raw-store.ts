/**
 * Every sublevel of a cache's database, opened raw (binary keys and values)
 * for the operations that scan the whole store: gc, verify, stats. The
 * names come from the services that own them, so this file is the one
 * place that knows the full on-disk layout:
 *
 *   pathinfo, narhash   pathinfo/leveldb.ts
 *   directories         directory/leveldb.ts
 *   blobs (chunk lists), chunks   blob/leveldb.ts (chunks: the index of
 *                       chunk bytes, which live in pack files: blob/packs.ts)
 *   narcalc, fetch      cache.ts (NAR-sum cache, fetch index)
 */

import { BLOBS_SUBLEVEL, CHUNKS_SUBLEVEL, LISTSUMS_SUBLEVEL } from '../blob/leveldb.js';
import { type Cache, FETCH_SUBLEVEL, NARCALC_SUBLEVEL } from '../cache.js';
import { DIRECTORY_SUBLEVEL } from '../directory/leveldb.js';
import { NARHASH_SUBLEVEL, PATHINFO_SUBLEVEL } from '../pathinfo/leveldb.js';
import { binarySublevel, type KV } from '../storage/kv.js';

export interface RawStore {
  readonly pathinfo: KV;
  readonly narhash: KV;
  readonly directories: KV;
  /** Chunk lists of blobs of two or more chunks, by blob digest. */
  readonly lists: KV;
  /** Their sums (blob/leveldb.ts), by blob digest. */
  readonly listSums: KV;
  /** The chunk index: keys are the chunks stored; `chunkBytes` reads one. */
  readonly chunks: KV;
  chunkBytes(digest: Uint8Array): Promise<Uint8Array | undefined>;
  readonly narcalc: KV;
  readonly fetch: KV;
}

export function rawStore(cache: Pick<Cache, 'db' | 'chunkStore'>): RawStore {
  const s = (name: string) => binarySublevel(cache.db, name);
  return {
    pathinfo: s(PATHINFO_SUBLEVEL),
    narhash: s(NARHASH_SUBLEVEL),
    directories: s(DIRECTORY_SUBLEVEL),
    lists: s(BLOBS_SUBLEVEL),
    listSums: s(LISTSUMS_SUBLEVEL),
    chunks: s(CHUNKS_SUBLEVEL),
    chunkBytes: (digest) => cache.chunkStore.get(digest),
    narcalc: s(NARCALC_SUBLEVEL),
    fetch: s(FETCH_SUBLEVEL),
  };
}

/** A byte key as a compact Map key. */
export function keyOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

export function keyBytes(key: string): Uint8Array {
  return new Uint8Array(Buffer.from(key, 'latin1'));
}

/** All raw values of a sublevel, by key. */
export async function readAll(kv: KV): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const [key, value] of kv.iterator()) out.set(keyOf(key), value);
  return out;
}

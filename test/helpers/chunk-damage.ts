/**
 * Damage the stored bytes of one chunk the way a bad disk would, whichever
 * chunk store holds them: in a pack file (flip a byte in place) or inline in
 * the index (rewrite the value). Shared by the blob, ops and storage tests.
 */

import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import type { ChunkStore } from '../../src/blob/chunk-store.js';
import type { LevelBlobService } from '../../src/blob/leveldb.js';
import { decodeLocation, PackChunkStore, packFile } from '../../src/blob/packs.js';
import type { Cache } from '../../src/cache.js';

export async function flipChunkByte(store: ChunkStore, digest: Uint8Array, index = 0): Promise<void> {
  const value = await store.index.get(digest);
  if (value === undefined) throw new Error('no such chunk');
  if (store instanceof PackChunkStore) {
    const loc = decodeLocation(value);
    if (loc === undefined) throw new Error('the index row is not a pack location');
    const at = loc.offset + (index % loc.length);
    const fd = openSync(packFile(store.dir, loc.pack), 'r+');
    try {
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] = b[0]! ^ 0x01;
      writeSync(fd, b, 0, 1, at);
    } finally {
      closeSync(fd);
    }
    return;
  }
  const damaged = new Uint8Array(value);
  damaged[index % damaged.length]! ^= 0x01;
  await store.index.put(digest, damaged);
}

/**
 * The chunk store behind an open cache's blob service: the key-value stores of backends/kv.ts write
 * chunk bytes through one (for tests that reach below the services: damage, compaction races).
 */
export function chunkStoreOf(cache: Cache): ChunkStore {
  return (cache.blobs as LevelBlobService).chunkStore;
}

/** Damage the stored bytes of a chunk of an open cache (flip a bit of byte `index`). */
export async function corruptChunk(cache: Cache, digest: Uint8Array, index = 0): Promise<void> {
  await flipChunkByte(chunkStoreOf(cache), digest, index);
}

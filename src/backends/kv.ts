/**
 * A store whose records are in one key-value database (storage/kv.ts), laid
 * out as one sublevel per kind of record: what `level:` (LevelDB under a
 * cache root) and `memory:` (memory-level) are made of, and what any
 * backend with an `abstract-level` database can reuse. This file is the one
 * place that knows the whole layout:
 *
 *   pathinfo, narhash        pathinfo/leveldb.ts
 *   directories              directory/leveldb.ts
 *   blobs (chunk lists), listsums, chunks   blob/leveldb.ts (chunks: the
 *                            index of chunk bytes, whose values the chunk
 *                            store makes: blob/chunk-store.ts, packs.ts)
 *   narcalc                  the NAR-sum cache (`KvNarSums`, below)
 *   fetch                    the fetch records (`KvFetchRecords`, below)
 *   ops, atime               coordination/local.ts (a cache root only)
 */

import type { ChunkStore } from '../blob/chunk-store.js';
import { BLOBS_SUBLEVEL, CHUNKS_SUBLEVEL, LevelBlobService, LISTSUMS_SUBLEVEL } from '../blob/leveldb.js';
import type { StoreServices } from '../cache.js';
import { encodeEntry, type Node } from '../castore/nodes.js';
import type { Coordination } from '../coordination/service.js';
import { DIRECTORY_SUBLEVEL, LevelDirectoryService } from '../directory/leveldb.js';
import { FetchCacheError } from '../errors.js';
import type { FetchRecords } from '../fetchers/fetch-index.js';
import { KvMaintenance } from '../maintenance/kv.js';
import type { NarSum, NarSums } from '../nar-render/nar-calc.js';
import { LevelPathInfoService, NARHASH_SUBLEVEL, PATHINFO_SUBLEVEL } from '../pathinfo/leveldb.js';
import { binarySublevel, type KV } from '../storage/kv.js';

export const NARCALC_SUBLEVEL = 'narcalc';
export const FETCH_SUBLEVEL = 'fetch';

const EMPTY_NAME = new Uint8Array(0);

/** NAR sums by the encoded anonymous root node: 32 bytes sha256, then the size as u64 little-endian. */
export class KvNarSums implements NarSums {
  private readonly kv: KV;

  constructor(db: KV) {
    this.kv = binarySublevel(db, NARCALC_SUBLEVEL);
  }

  async get(node: Node): Promise<NarSum | undefined> {
    const bytes = await this.kv.get(encodeEntry(EMPTY_NAME, node));
    if (bytes === undefined) return undefined;
    if (bytes.length !== 40) {
      throw new FetchCacheError(
        'ERR_INTEGRITY',
        `NAR sum cache entry has ${bytes.length} bytes, expected 40`,
      );
    }
    const size = new DataView(bytes.buffer, bytes.byteOffset, 40).getBigUint64(32, true);
    return { narSha256: bytes.slice(0, 32), narSize: Number(size) };
  }

  async put(node: Node, sum: NarSum): Promise<void> {
    const out = new Uint8Array(40);
    out.set(sum.narSha256, 0);
    new DataView(out.buffer).setBigUint64(32, BigInt(sum.narSize), true);
    await this.kv.put(encodeEntry(EMPTY_NAME, node), out);
  }

  async delete(node: Node): Promise<void> {
    await this.kv.del(encodeEntry(EMPTY_NAME, node));
  }
}

/** Fetch records as UTF-8 keys and values. */
export class KvFetchRecords implements FetchRecords {
  private readonly kv: KV;

  constructor(db: KV) {
    this.kv = binarySublevel(db, FETCH_SUBLEVEL);
  }

  async get(key: string): Promise<string | undefined> {
    const value = await this.kv.get(Buffer.from(key, 'utf8'));
    return value === undefined ? undefined : Buffer.from(value).toString('utf8');
  }

  async put(key: string, value: string): Promise<void> {
    await this.kv.put(Buffer.from(key, 'utf8'), Buffer.from(value, 'utf8'));
  }
}

export interface KvStoreOptions {
  /** The local root, where there is one (git mirrors and spool files live under it). */
  readonly root: string | undefined;
  readonly storeDir: string;
  /** Where chunk bytes go, given the chunk index (default: inline, the index values themselves). */
  readonly chunkStore?: ((index: KV) => ChunkStore) | undefined;
  readonly coordination: Coordination;
  /** What reports call the database. */
  readonly database: string;
  /** The coded error for a read that found the database damaged. */
  readonly damage?: ((error: unknown) => FetchCacheError | undefined) | undefined;
  /** Releases the database (and whatever else the backend holds), after the services are done. */
  readonly close: () => Promise<void>;
}

/** Every service of a store on the key-value database `db`, in the layout above. */
export function composeKv(db: KV, options: KvStoreOptions): StoreServices {
  const { coordination } = options;
  const blobs = new LevelBlobService(db, { chunkStore: options.chunkStore });
  const s = (name: string) => binarySublevel(db, name);
  const maintenance = new KvMaintenance({
    kinds: {
      pathInfos: s(PATHINFO_SUBLEVEL),
      narHashIndex: s(NARHASH_SUBLEVEL),
      directories: s(DIRECTORY_SUBLEVEL),
      chunkLists: s(BLOBS_SUBLEVEL),
      listSums: s(LISTSUMS_SUBLEVEL),
      chunks: s(CHUNKS_SUBLEVEL),
      narSums: s(NARCALC_SUBLEVEL),
      fetchIndex: s(FETCH_SUBLEVEL),
    },
    chunkStore: blobs.chunkStore,
    changes: coordination.changes,
    database: options.database,
    damage: options.damage,
  });
  let closed: Promise<void> | undefined;
  return {
    root: options.root,
    storeDir: options.storeDir,
    blobs,
    directories: new LevelDirectoryService(db),
    pathInfos: new LevelPathInfoService(db, coordination),
    narSums: new KvNarSums(db),
    fetchIndex: new KvFetchRecords(db),
    maintenance,
    coordination,
    capabilities: {
      readSmall: (digest) => blobs.readSmall(digest),
      // Only where chunk bytes are files (pack files): a store of inline chunks has none to send.
      fileSegments:
        blobs.chunkStore.segments === undefined ? undefined : (digest) => blobs.readSegments(digest),
    },
    close: () => {
      // Pending uses and writes first, then the database, which is released even when they fail.
      closed ??= coordination
        .close()
        .then(() => blobs.close())
        .then(options.close, async (error: unknown) => {
          await options.close();
          throw error;
        });
      return closed;
    },
  };
}

/**
 * Index again the chunks the pack files hold (blob/packs.ts), after the
 * database was rebuilt (cache-db.ts: LevelDB's repair loses the entries of
 * a damaged table, and a database started afresh names nothing): every
 * record whose digest the chunk index does not name gets its row back,
 * once its bytes hash to that digest. Paths whose path infos survived but
 * whose chunk rows were lost are whole again; chunks nothing reaches stay
 * garbage that gc deletes as usual. Records are read front to back, as
 * compaction reads them; a torn or damaged record ends the pack's scan.
 */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { encodeLocation, PACK_MAGIC, type PackChunkStore, packFile, RECORD_HEADER } from '../blob/packs.js';
import type { Cache } from '../cache.js';
import { blake3 } from '../nix/hashing.js';
import { rawStore } from './raw-store.js';

export interface ReindexReport {
  /** Chunks given their index row back. */
  chunks: number;
  bytes: number;
}

export async function reindexPacks(cache: Cache): Promise<ReindexReport> {
  const report: ReindexReport = { chunks: 0, bytes: 0 };
  const store = cache.chunkStore as Partial<PackChunkStore>;
  if (store.packs === undefined || store.dir === undefined) return report;
  const index = rawStore(cache).chunks;
  for (const { pack } of store.packs()) {
    let fd: number;
    try {
      fd = openSync(packFile(store.dir, pack), 'r');
    } catch {
      continue; // deleted meanwhile
    }
    try {
      const id = Buffer.from(pack, 'hex');
      const size = fstatSync(fd).size;
      const head = Buffer.allocUnsafe(RECORD_HEADER);
      let batch: { digest: Uint8Array; at: number; length: number }[] = [];
      const flush = async () => {
        const present = await index.hasMany(batch.map((r) => r.digest));
        const puts: { type: 'put'; key: Uint8Array; value: Uint8Array }[] = [];
        batch.forEach((r, i) => {
          if (present[i]) return;
          const bytes = Buffer.allocUnsafe(r.length);
          if (readSync(fd, bytes, 0, r.length, r.at) !== r.length) return;
          if (!Buffer.from(blake3(bytes)).equals(r.digest)) return;
          puts.push({ type: 'put', key: r.digest, value: encodeLocation(id, r.at, r.length) });
          report.chunks++;
          report.bytes += r.length;
        });
        if (puts.length > 0) await index.batch(puts);
        batch = [];
      };
      let at = PACK_MAGIC.length;
      while (at + RECORD_HEADER <= size) {
        if (readSync(fd, head, 0, RECORD_HEADER, at) !== RECORD_HEADER) break;
        const length = head.readUInt32LE(0);
        if (at + RECORD_HEADER + length > size) break;
        batch.push({
          digest: new Uint8Array(head.subarray(4, RECORD_HEADER)),
          at: at + RECORD_HEADER,
          length,
        });
        at += RECORD_HEADER + length;
        if (batch.length >= 1024) await flush();
      }
      await flush();
    } finally {
      closeSync(fd);
    }
  }
  return report;
}

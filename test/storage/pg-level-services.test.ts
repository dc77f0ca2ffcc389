/**
 * The services run unchanged on PgLevel: the directory, path-info and blob
 * conformance suites (test/{directory,pathinfo,blob}/conformance.ts) over
 * the same service classes as on LevelDB, each test on a fresh PgLevel (a
 * schema of its own) on the real PostgreSQL. The blob service keeps chunk
 * bytes in the index values here (InlineChunkStore): a PostgreSQL store
 * keeps them in S3, this only shows the KV carries the service. Skipped
 * without FETCH_CACHE_TEST_POSTGRES (pg-level.test.ts fails in CI then).
 */

import { describe, it } from 'vitest';
import { DEFAULT_CHUNKER_PARAMS } from '../../src/blob/fastcdc.js';
import { LevelBlobService } from '../../src/blob/leveldb.js';
import type { B3Digest } from '../../src/castore/digest.js';
import { LevelDirectoryService } from '../../src/directory/leveldb.js';
import { LevelPathInfoService } from '../../src/pathinfo/leveldb.js';
import type { KV } from '../../src/storage/kv.js';
import { blobServiceConformance } from '../blob/conformance.js';
import { directoryServiceConformance } from '../directory/conformance.js';
import { pgLevelsForFile } from '../helpers/pg-level.js';
import { TEST_POSTGRES } from '../helpers/postgres.js';
import { pathInfoServiceConformance } from '../pathinfo/conformance.js';

if (TEST_POSTGRES === undefined) {
  describe('services on PgLevel', () => {
    it.skip('skipped: FETCH_CACHE_TEST_POSTGRES is unset (scripts/services/pg-up.sh)', () => {});
  });
} else {
  const levels = await pgLevelsForFile();
  const open = async (): Promise<KV> => {
    const level = levels.make();
    await level.open();
    return level as unknown as KV;
  };

  directoryServiceConformance('PgLevel', async () => {
    const db = await open();
    return { service: new LevelDirectoryService(db), close: () => db.close() };
  });

  pathInfoServiceConformance('PgLevel', async () => {
    const db = await open();
    return { service: new LevelPathInfoService(db), close: () => db.close() };
  });

  blobServiceConformance(
    'LevelBlobService on PgLevel (chunk bytes inline)',
    async () => {
      const db = await open();
      const service = new LevelBlobService(db);
      return {
        service,
        corrupt: async (d: B3Digest) => {
          const value = await service.chunks.get(d);
          if (value === undefined) throw new Error('nothing stored under that key');
          const damaged = new Uint8Array(value);
          damaged[7 % damaged.length]! ^= 0x01;
          await service.chunks.put(d, damaged);
        },
        close: async () => {
          await service.close();
          await db.close();
        },
      };
    },
    { chunker: DEFAULT_CHUNKER_PARAMS },
  );
}

/**
 * Every registered backend, as the conformance suites run over it
 * (test/backends/conformance.test.ts): opened through the registry by URL,
 * like any user opens a store, each on a fresh store. A backend that cuts
 * blobs with our FastCDC declares it (`chunker`), so the blob suite checks
 * chunk boundaries for it only. Where a store can be used by several
 * processes at once, `other` is a second handle on it (a cache root: the
 * second opener reaches the database through the first, as a second
 * process does, storage/shared-db.ts), and the handle under test may be
 * that second one.
 *
 * A new backend adds its entry here; docs/architecture.md says what it must
 * pass. `postgres://` runs on the real PostgreSQL named by
 * FETCH_CACHE_TEST_POSTGRES (scripts/services/pg-up.sh), each store a schema
 * of its own with its chunk bytes in a directory (`file://`), or in pack
 * objects under a prefix of its own on the real S3 server named by
 * FETCH_CACHE_TEST_S3 (scripts/services/s3-rgw-up.sh), read directly or
 * through near caches (`cacheRoot`: each handle its own, as two machines
 * have). Without its servers an entry is left out, except in CI (CI=true),
 * where it stays and fails.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { levelUrl } from '../../src/backends/registry.js';
import { type ChunkerParams, DEFAULT_CHUNKER_PARAMS } from '../../src/blob/fastcdc.js';
import { type Cache, openCache } from '../../src/cache.js';
import { s3TestServer } from '../storage/s3-suite.js';
import { corruptChunk } from './chunk-damage.js';
import { TEST_POSTGRES } from './postgres.js';
import { postgresStore } from './postgres-store.js';
import { corruptS3CacheChunk } from './s3-stores.js';

export interface OpenedBackend {
  readonly cache: Cache;
  /** Another handle on the same store, where the store can be shared. */
  readonly other?: Cache | undefined;
  close(): Promise<void>;
}

export interface BackendUnderTest {
  readonly name: string;
  /** The FastCDC parameters the store cuts blobs with, when it declares ours. */
  readonly chunker?: ChunkerParams | undefined;
  open(): Promise<OpenedBackend>;
  /** Damage the stored bytes of a chunk (flip a bit of byte `index`), where the test can reach them. */
  corrupt?(cache: Cache, digest: Uint8Array, index: number): Promise<void>;
}

const TEST_S3 = s3TestServer('FETCH_CACHE_TEST_S3');
/** Whether entries that need these servers run: when they are there, and always in CI (where they fail without). */
const runs = (...servers: unknown[]) => process.env.CI === 'true' || servers.every((s) => s !== undefined);

/** A `postgres://` store whose chunk bytes are S3 packs, each handle through a near cache of its own if `near`. */
function postgresS3(near: boolean): BackendUnderTest {
  return {
    name: near ? 'postgres:// + s3:// + near cache (--cache-root)' : 'postgres:// + s3://',
    chunker: DEFAULT_CHUNKER_PARAMS,
    async open() {
      if (TEST_S3 === undefined)
        throw new Error('FETCH_CACHE_TEST_S3 is unset: start scripts/services/s3-rgw-up.sh');
      const s = await postgresStore({ s3: TEST_S3 });
      const roots: { root: string; remove(): void }[] = [];
      const handle = () => {
        let cacheRoot: string | undefined;
        if (near) {
          const r = tempRoot();
          roots.push(r);
          cacheRoot = r.root;
        }
        return openCache({
          store: s.store,
          blobStore: s.blobStore,
          env: { ...process.env, ...s.env },
          cacheRoot,
        });
      };
      const cache = await handle();
      const other = await handle();
      return {
        cache,
        other,
        close: async () => {
          await other.close();
          await cache.close();
          await s.remove();
          for (const r of roots) r.remove();
        },
      };
    },
    corrupt: (cache, digest, index) => corruptS3CacheChunk(TEST_S3!, cache, digest, index),
  };
}

function tempRoot(): { root: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'fc-backend-'));
  return { root: join(dir, 'root'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const BACKENDS: readonly BackendUnderTest[] = [
  {
    name: 'level: (a cache root)',
    chunker: DEFAULT_CHUNKER_PARAMS,
    async open() {
      const { root, remove } = tempRoot();
      const cache = await openCache({ store: levelUrl(root) });
      const other = await openCache({ store: levelUrl(root) });
      return {
        cache,
        other,
        close: async () => {
          await other.close();
          await cache.close();
          remove();
        },
      };
    },
    corrupt: corruptChunk,
  },
  {
    name: 'level: as a second process sees it (a guest of the root)',
    chunker: DEFAULT_CHUNKER_PARAMS,
    async open() {
      const { root, remove } = tempRoot();
      const host = await openCache({ store: levelUrl(root) });
      const cache = await openCache({ store: levelUrl(root) });
      return {
        cache,
        other: host,
        close: async () => {
          await cache.close();
          await host.close();
          remove();
        },
      };
    },
    corrupt: corruptChunk,
  },
  {
    name: 'memory:',
    chunker: DEFAULT_CHUNKER_PARAMS,
    async open() {
      const cache = await openCache({ store: 'memory:' });
      return { cache, close: () => cache.close() };
    },
    corrupt: corruptChunk,
  },
  ...(!runs(TEST_POSTGRES)
    ? []
    : [
        {
          name: 'postgres:// + file:// blob store',
          chunker: DEFAULT_CHUNKER_PARAMS,
          async open() {
            const s = await postgresStore();
            const cache = await openCache({ store: s.store, blobStore: s.blobStore });
            const other = await openCache({ store: s.store, blobStore: s.blobStore });
            return {
              cache,
              other,
              close: async () => {
                await other.close();
                await cache.close();
                await s.remove();
              },
            };
          },
          corrupt: corruptChunk,
        },
      ]),
  ...(runs(TEST_POSTGRES, TEST_S3) ? [postgresS3(false), postgresS3(true)] : []),
];

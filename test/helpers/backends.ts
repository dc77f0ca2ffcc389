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
 * of its own with its chunk bytes in a directory (`file://`); without the
 * server it is left out, except in CI (CI=true), where it stays and fails.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { levelUrl } from '../../src/backends/registry.js';
import { type ChunkerParams, DEFAULT_CHUNKER_PARAMS } from '../../src/blob/fastcdc.js';
import { type Cache, openCache } from '../../src/cache.js';
import { corruptChunk } from './chunk-damage.js';
import { TEST_POSTGRES } from './postgres.js';
import { postgresStore } from './postgres-store.js';

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
  ...(TEST_POSTGRES === undefined && process.env.CI !== 'true'
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
];

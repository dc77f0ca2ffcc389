/**
 * KvMaintenance (maintenance/kv.ts): the conformance suite on the two
 * key-value stores, a cache root (LevelDB and pack files) and memory.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCache } from '../../src/cache.js';
import { maintenanceConformance } from './conformance.js';

maintenanceConformance('a cache root', async () => {
  const root = mkdtempSync(join(tmpdir(), 'fc-maint-root-'));
  const cache = await openCache({ root });
  return {
    cache,
    close: async () => {
      await cache.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
});

maintenanceConformance('memory', async () => {
  const cache = await openCache({ memory: true });
  return { cache, close: () => cache.close() };
});

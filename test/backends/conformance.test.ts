/**
 * Every conformance suite over every registered backend (test/helpers/backends.ts),
 * each store opened through the registry by URL: blob, directory, path info,
 * maintenance (with gc, verify and stats run on it) and coordination. This
 * is what a new backend must pass (docs/architecture.md).
 */

import { blobServiceConformance } from '../blob/conformance.js';
import { coordinationConformance } from '../coordination/conformance.js';
import { directoryServiceConformance } from '../directory/conformance.js';
import { BACKENDS } from '../helpers/backends.js';
import { maintenanceConformance } from '../maintenance/conformance.js';
import { PATH_INFO_FILE, pathInfoServiceConformance } from '../pathinfo/conformance.js';

for (const backend of BACKENDS) {
  blobServiceConformance(
    backend.name,
    async () => {
      const b = await backend.open();
      const corrupt = backend.corrupt;
      return {
        service: b.cache.blobs,
        ...(corrupt === undefined ? {} : { corrupt: (digest: Uint8Array) => corrupt(b.cache, digest, 7) }),
        close: b.close,
      };
    },
    { chunker: backend.chunker },
  );

  directoryServiceConformance(backend.name, async () => {
    const b = await backend.open();
    return { service: b.cache.directories, close: b.close };
  });

  pathInfoServiceConformance(backend.name, async () => {
    const b = await backend.open();
    return { service: b.cache.pathInfos, close: b.close };
  });

  maintenanceConformance(backend.name, () => backend.open());

  coordinationConformance(backend.name, async () => {
    const b = await backend.open();
    return {
      coordination: b.cache.coordination,
      other: b.other?.coordination,
      pathInfos: b.cache.pathInfos,
      sample: PATH_INFO_FILE,
      close: b.close,
    };
  });
}

/**
 * The default window of the one-pass NAR hash (src/fetchers/archive/tree-nar.ts): a tree smaller than
 * it is hashed once, at the end, whatever the order of its members. An npm pack lists a large file
 * before a small one that sorts first; with a window smaller than the file, the file was hashed as it
 * passed, the guess failed at the small one, and everything was hashed again. SHA-256 is counted by
 * wrapping `createHasher` (src/nix/hashing.ts, the one place that makes hashers).
 */

import { describe, expect, it, vi } from 'vitest';
import { openCache } from '../../src/cache.js';
import { ingestTarball } from '../../src/fetchers/tarball.js';
import { computeNarSum } from '../../src/nar-render/nar-calc.js';
import { chunked, tarArchive, tarMember } from '../helpers/archives.js';
import { prngBytes } from '../helpers/trees.js';

const sha256Bytes = vi.hoisted(() => ({ n: 0 }));

vi.mock('../../src/nix/hashing.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/nix/hashing.js')>();
  return {
    ...original,
    createHasher(algo: Parameters<typeof original.createHasher>[0]) {
      const h = original.createHasher(algo);
      if (algo !== 'sha256') return h;
      return {
        update(data: Uint8Array | string) {
          sha256Bytes.n += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
          h.update(data);
        },
        digest: () => h.digest(),
      };
    },
  };
});

describe('the NAR hash window', () => {
  // 40 MiB first, then a name that sorts before it: larger than the old 24 MiB window, well inside 128.
  const archive = tarArchive([
    tarMember({ name: 'package/', type: '5', mode: 0o755 }),
    tarMember({ name: 'package/z-binary', content: prngBytes(3, 40 * 1024 * 1024), mode: 0o755 }),
    tarMember({ name: 'package/CHANGELOG.md', content: '# changes\n' }),
  ]);

  const hashed = async (narHoldBytes?: number) => {
    const cache = await openCache({ memory: true });
    try {
      sha256Bytes.n = 0;
      const r = await ingestTarball(chunked(archive, 256 * 1024), cache, { narHoldBytes });
      const bytes = sha256Bytes.n;
      expect(r.narSum).toBeDefined();
      expect(r.narSum).toEqual(await computeNarSum(r.node, cache));
      return { bytes, narSize: r.narSum!.narSize };
    } finally {
      await cache.close();
    }
  };

  it('hashes a tree smaller than the default window once, though its order is not the NAR order', async () => {
    const { bytes, narSize } = await hashed();
    expect(bytes).toBe(narSize);
  }, 60_000);

  it('hashes the large file twice with a window smaller than it (what the default avoids)', async () => {
    const { bytes, narSize } = await hashed(24 * 1024 * 1024);
    // The first pass hashed the file, bar what the NAR encoder still gathered when the guess failed.
    expect(bytes).toBeGreaterThan(narSize + 39 * 1024 * 1024);
  }, 60_000);
});

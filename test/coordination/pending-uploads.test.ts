/**
 * The pending uploads every local store keeps in memory (coordination/memory.ts;
 * the conformance suite of MemoryCoordination runs on `memory:` stores:
 * test/backends/conformance.test.ts): an upload expires after its time to
 * live, the oldest goes past the capacity.
 */

import { describe, expect, it } from 'vitest';
import { MemoryPendingUploads } from '../../src/coordination/memory.js';
import type { PendingUpload } from '../../src/coordination/service.js';

function upload(n: number, receivedAt: number): PendingUpload {
  return {
    node: { type: 'file', digest: new Uint8Array(32).fill(n), size: n, executable: false },
    narSha256: new Uint8Array(32).fill(n),
    narSize: n,
    fileSha256: new Uint8Array(32).fill(100 + n),
    fileSize: n,
    compression: 'none',
    receivedAt,
  };
}

describe('MemoryPendingUploads', () => {
  it('drops an upload once its time to live has passed, and the oldest past the capacity', async () => {
    let now = 1_000;
    const u = new MemoryPendingUploads(2, 500, () => now);
    await u.add(upload(1, now));
    now += 300;
    await u.add(upload(2, now));
    expect(await u.count()).toBe(2);
    now += 300; // the first is 600 ms old
    expect(await u.byNarHash(upload(1, 0).narSha256)).toBeUndefined();
    expect(await u.count()).toBe(1);
    await u.add(upload(3, now));
    await u.add(upload(4, now));
    expect(await u.count()).toBe(2);
    expect(await u.byNarHash(upload(2, 0).narSha256)).toBeUndefined();
    expect((await u.byFileHash(upload(4, 0).fileSha256))?.narSize).toBe(4);
  });
});

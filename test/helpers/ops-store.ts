/**
 * Small stores for the operations tests (gc, verify, stats): trees written
 * to a temp dir and added with the fetcher base, so path infos, blobs,
 * chunk lists and directories are exactly what real fetches write.
 * `corruptChunk` and friends damage a store the way a bad disk would.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cache } from '../../src/cache.js';
import { addPath } from '../../src/fs/add.js';
import type { Kind } from '../../src/maintenance/service.js';
import type { PathInfo } from '../../src/pathinfo/path-info.js';

export { corruptChunk } from './chunk-damage.js';

const made: string[] = [];

export function tempDir(prefix = 'fc-ops-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Deterministic bytes: `size` bytes from seed (xorshift32). */
export function bytes(seed: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  return out;
}

/** Write `files` (relative path → contents) under a fresh dir called `name` and add it. */
export async function addTree(
  cache: Cache,
  name: string,
  files: Record<string, Uint8Array | string>,
): Promise<PathInfo> {
  const dir = join(tempDir(), name);
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  mkdirSync(dir, { recursive: true });
  return addPath(cache, dir);
}

/** Keys of every record of a kind (maintenance/service.ts), hex. */
export async function storedKeys(cache: Cache, kind: Kind): Promise<string[]> {
  const out: string[] = [];
  for await (const k of cache.maintenance.keys(kind)) out.push(Buffer.from(k).toString('hex'));
  return out;
}

/** Digests of every chunk stored, hex. */
export function chunkKeys(cache: Cache): Promise<string[]> {
  return storedKeys(cache, 'chunks');
}

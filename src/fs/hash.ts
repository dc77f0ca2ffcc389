/**
 * Hashes of local paths as Nix computes them: `hashPath` is the hash of the
 * path's NAR serialisation (`nix hash path`, `nix-hash`), `hashFile` the flat
 * hash of a file's bytes (`nix hash file`, `nix-hash --flat`).
 */

import { open } from 'node:fs/promises';
import type { Hash } from '../nix/hash.js';
import { createHasher, type HashAlgo } from '../nix/hashing.js';
import { dumpPath, ioError } from './dump.js';

export interface PathHash {
  hash: Hash;
  narSize: number;
}

/** NAR hash of a local path (file, directory or symlink; symlinks not followed). */
export async function hashPath(path: string, algo: HashAlgo = 'sha256'): Promise<PathHash> {
  const hasher = createHasher(algo);
  const narSize = await dumpPath(path, (chunk) => hasher.update(chunk));
  return { hash: { algo, digest: hasher.digest() }, narSize };
}

/** Flat hash of a file's contents (follows symlinks, like `nix hash file`). */
export async function hashFile(path: string, algo: HashAlgo = 'sha256'): Promise<Hash> {
  const hasher = createHasher(algo);
  const handle = await open(path, 'r').catch((e: unknown) => {
    throw ioError(e, path);
  });
  try {
    const size = 1 << 20;
    const bufs = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
    let turn = 0;
    let pending = handle.read(bufs[0]!, 0, size, null);
    for (;;) {
      const { bytesRead } = await pending.catch((e: unknown) => {
        throw ioError(e, path);
      });
      if (bytesRead === 0) break;
      const buf = bufs[turn]!;
      turn ^= 1;
      pending = handle.read(bufs[turn]!, 0, size, null);
      hasher.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return { algo, digest: hasher.digest() };
}

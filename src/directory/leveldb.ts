/**
 * The persistent directory service: castore `Directory` messages in their own
 * sublevel of a KV store, like snix's redb backend (snix `castore/src/directoryservice/`).
 *
 *   key   = 32-byte BLAKE3 digest of the value
 *   value = canonical `snix.castore.v1.Directory` protobuf bytes
 *
 * Every read re-verifies `blake3(value) == key` and decodes with
 * `{ canonical: true }`; a damaged store surfaces as ERR_INTEGRITY, never as
 * a wrong directory. Closures are validated in memory by `DirectoryClosure`
 * and written in one batch at `close()`, so a half-uploaded closure is never
 * visible. The same class runs on `memory-level` for tests and throwaway
 * caches.
 */

import { bytesEqual, displayBytes } from '../castore/bytes.js';
import { B3_LEN, type B3Digest, b3ToHex } from '../castore/digest.js';
import { Directory } from '../castore/directory.js';
import type { DirectoryNode } from '../castore/nodes.js';
import { FetchCacheError, isFetchCacheError } from '../errors.js';
import { blake3 } from '../nix/hashing.js';
import { binarySublevel, type KV } from '../storage/kv.js';
import { DirectoryClosure } from './closure.js';
import type { DirectoryPutter, DirectoryService } from './service.js';

/** Name of the sublevel holding directories. */
export const DIRECTORY_SUBLEVEL = 'directories';

function checkDigest(digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== B3_LEN) {
    throw new TypeError(`a directory digest is ${B3_LEN} bytes`);
  }
}

/** Directories read in one getMany while walking a level of a tree. */
const LEVEL_BATCH = 512;

export class LevelDirectoryService implements DirectoryService {
  private readonly kv: KV;

  /** Uses the `directories` sublevel of `db`. */
  constructor(db: KV) {
    this.kv = binarySublevel(db, DIRECTORY_SUBLEVEL);
  }

  async get(digest: B3Digest): Promise<Directory | undefined> {
    checkDigest(digest);
    const value = await this.kv.get(digest);
    return value === undefined ? undefined : verifyStored(digest, value);
  }

  async put(directory: Directory): Promise<B3Digest> {
    for (const { name, node } of directory.ofType('directory')) {
      if (node.type !== 'directory') continue;
      const child = await this.get(node.digest);
      const label = displayBytes(name);
      if (child === undefined) {
        throw new FetchCacheError(
          'ERR_BAD_DIRECTORY',
          `'${label}' refers to directory ${b3ToHex(node.digest)}, which is not stored`,
          { path: label, actual: b3ToHex(node.digest) },
        );
      }
      if (child.size !== node.size) {
        throw new FetchCacheError(
          'ERR_BAD_DIRECTORY',
          `'${label}' has wrong size, specified ${node.size}, recorded ${child.size}`,
          { path: label, expected: String(child.size), actual: String(node.size) },
        );
      }
    }
    const digest = directory.digest();
    await this.kv.put(digest, directory.encode());
    return digest;
  }

  async *getRecursive(root: B3Digest): AsyncIterable<Directory> {
    const rootDir = await this.get(root);
    if (rootDir === undefined) return;
    // Breadth first, a level at a time: one getMany per level of the tree
    // (a getMany per directory was most of a 1,100-directory render's
    // wait). `seen` holds every digest already queued, so shared
    // subdirectories are sent once, after the first directory naming them.
    const seen = new Set<string>([b3ToHex(root)]);
    let level: Directory[] = [rootDir];
    while (level.length > 0) {
      const edges: DirectoryNode[] = [];
      for (let i = 0; i < level.length; i++) {
        const dir = level[i]!;
        level[i] = Directory.EMPTY; // let sent directories be collected
        yield dir;
        for (const { node } of dir.ofType('directory')) {
          if (node.type !== 'directory' || seen.has(b3ToHex(node.digest))) continue;
          seen.add(b3ToHex(node.digest));
          edges.push(node);
        }
      }
      const next: Directory[] = [];
      for (let at = 0; at < edges.length; at += LEVEL_BATCH) {
        const page = edges.slice(at, at + LEVEL_BATCH);
        const values = await this.kv.getMany(page.map((e) => e.digest));
        page.forEach((edge, j) => {
          const key = b3ToHex(edge.digest);
          const value = values[j];
          if (value === undefined) {
            throw new FetchCacheError('ERR_INTEGRITY', `directory ${key} does not exist, but is referenced`, {
              expected: key,
            });
          }
          const child = verifyStored(edge.digest, value);
          if (child.size !== edge.size) {
            throw new FetchCacheError(
              'ERR_INTEGRITY',
              `directory ${key} has size ${child.size}, but is referenced with size ${edge.size}`,
              { expected: String(edge.size), actual: String(child.size) },
            );
          }
          next.push(child);
        });
      }
      level = next;
    }
  }

  putter(): DirectoryPutter {
    return new LevelDirectoryPutter(this.kv);
  }
}

/** Checks stored bytes against their key and decodes them (ERR_INTEGRITY on any mismatch). */
function verifyStored(key: Uint8Array, value: Uint8Array): Directory {
  const actual = blake3(value);
  if (!bytesEqual(actual, key)) {
    throw new FetchCacheError('ERR_INTEGRITY', `stored directory ${b3ToHex(key)} has the wrong digest`, {
      expected: b3ToHex(key),
      actual: b3ToHex(actual),
    });
  }
  try {
    // A plain copy: backends may hand out Buffers, whose `slice` shares memory.
    return Directory.decode(new Uint8Array(value), { canonical: true });
  } catch (cause) {
    if (!isFetchCacheError(cause)) throw cause;
    throw new FetchCacheError('ERR_INTEGRITY', `stored directory ${b3ToHex(key)} is not a valid directory`, {
      expected: b3ToHex(key),
      cause,
    });
  }
}

class LevelDirectoryPutter implements DirectoryPutter {
  private readonly closure = new DirectoryClosure();
  /** The first validation error; once set, the upload can only fail. */
  private failure: unknown;
  private closing: Promise<B3Digest> | undefined;

  constructor(private readonly kv: KV) {}

  async put(directory: Directory): Promise<void> {
    if (this.closing !== undefined) throw new TypeError('DirectoryPutter.put() called after close()');
    if (this.failure !== undefined) throw this.failure;
    try {
      this.closure.add(directory);
    } catch (e) {
      this.failure = e;
      throw e;
    }
  }

  close(): Promise<B3Digest> {
    this.closing ??= this.write();
    return this.closing.then((d) => d.slice());
  }

  private async write(): Promise<B3Digest> {
    if (this.failure !== undefined) throw this.failure;
    const { root, order } = this.closure.finish();
    const present = await this.kv.getMany(order.map((d) => d.digest));
    const ops = [];
    for (let i = 0; i < order.length; i++) {
      // A stored value is only skipped if it is intact; damaged entries get rewritten.
      const stored = present[i];
      const dir = order[i]!;
      if (stored !== undefined && bytesEqual(blake3(stored), dir.digest)) continue;
      ops.push({ type: 'put' as const, key: dir.digest, value: dir.encoded });
    }
    if (ops.length > 0) await this.kv.batch(ops);
    return root;
  }
}

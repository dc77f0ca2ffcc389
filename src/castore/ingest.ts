/**
 * `ingestEntries()`: the one funnel every source goes through. A neutral
 * stream of entries (local files, tar members, git objects, NAR nodes) becomes
 * blobs, directories and one root node.
 *
 * Order contract: children before parents. Every entry's parent directory
 * entry comes after all of its children; the root (empty path) comes last and
 * ends the stream. Paths are the entry's location below the root as raw bytes
 * with `/` between components (no leading or trailing `/`).
 *
 * This is the one castore module that does IO, and only through the blob and
 * directory service contracts it is given. File contents are uploaded with
 * bounded concurrency (at most `concurrency` files being read, each streaming
 * in bounded chunks; the blobs they become close while later files are read,
 * bounded by closing.ts), so memory stays bounded; tree metadata (names,
 * digests) is kept until each directory closes.
 */

import type { BlobService, BlobWriter } from '../blob/service.js';
import type { DirectoryService } from '../directory/service.js';
import { FetchCacheError } from '../errors.js';
import { ClosingBlobs } from './closing.js';
import type { B3Digest } from './digest.js';
import { Directory } from './directory.js';
import { fileNode, type NamedNode, type Node, symlinkNode, validateName } from './nodes.js';

/**
 * One entry of a tree given to `ingestEntries`: a directory, a file (its bytes, streamed or in memory) or a symlink,
 * by its path in the tree.
 */
export type IngestEntry =
  | { readonly type: 'directory'; readonly path: Uint8Array }
  | {
      readonly type: 'file';
      readonly path: Uint8Array;
      readonly executable: boolean;
      /**
       * The bytes, streamed (consumed exactly once; a chunk may be reused by its source once the next
       * is asked for, so it is written before that) or in memory.
       */
      readonly contents: AsyncIterable<Uint8Array> | Uint8Array;
    }
  | {
      readonly type: 'file';
      readonly path: Uint8Array;
      readonly executable: boolean;
      /** A blob the source already stored. */
      readonly blob: { readonly digest: B3Digest; readonly size: number };
    }
  | { readonly type: 'symlink'; readonly path: Uint8Array; readonly target: Uint8Array };

export interface IngestServices {
  readonly blobs: BlobService;
  readonly directories: DirectoryService;
}

export interface IngestOptions {
  /** Files read at once (default 32). */
  readonly concurrency?: number;
}

/**
 * 32 files read at once: enough to keep the disk and the hasher busy (4
 * made ~8× more database writes). Their blobs close beside later reads
 * (closing.ts), so the blob service's group commit puts thousands of small
 * files in one batch or pack. Memory: at most 32 files' current read
 * buffers, plus what closing.ts and the blob service let wait.
 */
const DEFAULT_CONCURRENCY = 32;

const SLASH = 0x2f;

/** Latin-1 keeps every byte, so it is a lossless map key for byte paths. */
function key(path: Uint8Array): string {
  return Buffer.from(path.buffer, path.byteOffset, path.byteLength).toString('latin1');
}

/**
 * The parent's key and the name, a copy: the path may be a view of one of Node's shared 8 KiB pools
 * (Buffer.concat, readdir), and a name kept until the ingest ends would keep its whole pool alive,
 * with whatever else was read into it (file contents: 20 MiB at 20,000 files).
 */
function splitPath(path: Uint8Array): { parent: string; name: Uint8Array } {
  const i = path.lastIndexOf(SLASH);
  return i < 0
    ? { parent: '', name: new Uint8Array(path) }
    : { parent: key(path.subarray(0, i)), name: new Uint8Array(path.subarray(i + 1)) };
}

/** Ingest an entry stream; returns the root node. */
export async function ingestEntries(
  entries: AsyncIterable<IngestEntry> | Iterable<IngestEntry>,
  services: IngestServices,
  options: IngestOptions = {},
): Promise<Node> {
  const limit = new Semaphore(options.concurrency ?? DEFAULT_CONCURRENCY);
  const closing = new ClosingBlobs(services.blobs.closingBlobs);
  const pending = new Map<string, Promise<NamedNode>[]>();
  const putter = services.directories.putter();
  let root: Promise<Node> | undefined;
  // What is still running, so that a failure waits for it. Settled promises leave the set: kept, they
  // held every node and name of the tree until the end (167,000 promises for the linux source tree).
  const inFlight = new Set<Promise<unknown>>();
  // The first failure of any upload; checked between entries so a failed
  // upload stops the ingest early. Every promise gets a handler at once so no
  // rejection goes unhandled while it waits to be awaited.
  let failure: { error: unknown } | undefined;
  const track = <T>(p: Promise<T>): Promise<T> => {
    inFlight.add(p);
    p.then(
      () => inFlight.delete(p),
      (error: unknown) => {
        failure ??= { error };
        inFlight.delete(p);
      },
    );
    return p;
  };

  try {
    for await (const entry of entries) {
      if (root !== undefined) throw badEntry('entries after the root', entry.path);
      // Backpressure: do not read further entries while `concurrency` files are read, or while
      // too many blobs are closing.
      if (entry.type === 'file' && !('blob' in entry)) {
        await limit.acquire();
        await closing.room();
      }
      if (failure) throw failure.error;
      const node = track(nodeOf(entry, pending, services, putter, { limit, closing }));
      if (entry.path.length === 0) {
        root = node;
      } else {
        const { parent, name } = splitPath(entry.path);
        validatePathName(name, entry.path);
        const siblings = pending.get(parent) ?? [];
        siblings.push(track(node.then((n) => ({ name, node: n }))));
        pending.set(parent, siblings);
      }
    }
    if (root === undefined) throw badEntry('the entry stream ended without a root', new Uint8Array());
    const rootNode = await root;
    if (pending.size > 0) {
      const orphan = [...pending.keys()][0]!;
      throw badEntry('an entry has no parent directory', Buffer.from(orphan, 'latin1'));
    }
    if (rootNode.type === 'directory') await putter.close();
    return rootNode;
  } finally {
    // Never leave uploads running after a failure.
    await Promise.allSettled(inFlight);
  }
}

function nodeOf(
  entry: IngestEntry,
  pending: Map<string, Promise<NamedNode>[]>,
  services: IngestServices,
  putter: ReturnType<DirectoryService['putter']>,
  bounds: { readonly limit: Semaphore; readonly closing: ClosingBlobs },
): Promise<Node> {
  switch (entry.type) {
    case 'symlink':
      return Promise.resolve(symlinkNode(entry.target));
    case 'file': {
      if ('blob' in entry)
        return Promise.resolve(fileNode(entry.blob.digest, entry.blob.size, entry.executable));
      // The slot was acquired by the caller; it is given back once the bytes are written. Only the
      // flag is kept for the node: the entry (its contents) is not held while the blob closes.
      const executable = entry.executable;
      return uploadBlob(services.blobs, entry.contents, bounds).then(({ digest, size }) =>
        fileNode(digest, size, executable),
      );
    }
    case 'directory': {
      const k = key(entry.path);
      const children = pending.get(k) ?? [];
      pending.delete(k);
      return Promise.all(children).then(async (named) => {
        const dir = Directory.fromEntries(named);
        await putter.put(dir);
        return dir.toNode();
      });
    }
  }
}

/**
 * Stream bytes into a new blob. With `bounds`, the read slot (acquired by the caller) is released once
 * the bytes are written, and the close is counted in `bounds.closing`; nothing of the source (its
 * read buffers) stays reachable while the blob closes.
 */
export function uploadBlob(
  blobs: BlobService,
  contents: AsyncIterable<Uint8Array> | Uint8Array,
  bounds?: { readonly limit: Semaphore; readonly closing: ClosingBlobs },
): Promise<{ digest: B3Digest; size: number }> {
  return writeContents(blobs.writer(), contents, bounds?.limit).then(({ writer, size }) =>
    bounds === undefined ? writer.close() : bounds.closing.add(size, writer.close()),
  );
}

/**
 * Writes `contents` into `writer` (aborted if that fails; `limit` released afterwards, also on
 * failure); the writer, still to be closed, and the byte count.
 */
export async function writeContents(
  writer: BlobWriter,
  contents: AsyncIterable<Uint8Array> | Uint8Array,
  limit?: Semaphore,
): Promise<{ writer: BlobWriter; size: number }> {
  let size = 0;
  try {
    if (contents instanceof Uint8Array) {
      size = contents.length;
      await writer.write(contents);
    } else
      for await (const chunk of contents) {
        size += chunk.length;
        await writer.write(chunk);
      }
  } catch (e) {
    await writer.abort();
    throw e;
  } finally {
    limit?.release();
  }
  return { writer, size };
}

function validatePathName(name: Uint8Array, path: Uint8Array): void {
  try {
    validateName(name);
  } catch {
    throw badEntry('invalid file name', path);
  }
}

function badEntry(message: string, path: Uint8Array): FetchCacheError {
  const p = Buffer.from(path).toString('utf8');
  return new FetchCacheError('ERR_BAD_DIRECTORY', `${message}${p ? `: '${p}'` : ''}`, { path: p });
}

/** A counting semaphore: `acquire` waits for a free slot, `release` frees one. */
export class Semaphore {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(n: number) {
    if (!(n >= 1)) throw new TypeError('concurrency must be at least 1');
    this.free = n;
  }

  async acquire(): Promise<void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }
}

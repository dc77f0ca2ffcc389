/**
 * The blob service contract: content-addressed byte strings keyed by the
 * BLAKE3-256 digest of their content (snix castore BlobService). Blobs are
 * stored as content-defined chunks, each keyed by its own BLAKE3, so similar
 * files share storage and reads can start at any offset. Fast paths beyond
 * this contract are capabilities of the store (capabilities.ts).
 */

import type { B3Digest } from '../castore/digest.js';

/** One chunk of a blob: BLAKE3 of the chunk bytes and their length. */
export interface ChunkMeta {
  readonly digest: B3Digest;
  readonly size: number;
}

/** What a blob is made of; the chunks concatenated are the blob. */
export interface BlobStat {
  readonly size: number;
  readonly chunks: readonly ChunkMeta[];
}

export interface BlobWriterOptions {
  /**
   * The blob digest, computed by the caller (say on another thread); the writer then hashes only
   * chunks, and refuses to close with a digest that is not the bytes'.
   */
  readonly digest?: Promise<B3Digest>;
}

export interface BlobWriter {
  /**
   * Append bytes. Backpressure: await each call. The bytes may be reused by the
   * caller once the promise resolves.
   */
  write(data: Uint8Array): Promise<void>;
  /**
   * Finish the blob and return its digest and size. Only after `close()`
   * resolves is the blob visible to `has`/`stat`/`read`; its chunks are stored
   * before its chunk list, so a crash never leaves a blob pointing at missing
   * chunks. Closing twice returns the same result.
   */
  close(): Promise<{ digest: B3Digest; size: number }>;
  /** Abandon the blob. Chunks already written stay until gc. */
  abort(): Promise<void>;
}

/**
 * The blob service: file contents by BLAKE3 digest, stored as chunks and verified on every read
 * (`cache.blobs`).
 */
export interface BlobService {
  /** True iff the blob is completely stored. A miss is `false`, never a throw. */
  has(digest: B3Digest): Promise<boolean>;
  /** The blob's size and chunk list from metadata alone; `undefined` on a miss. */
  stat(digest: B3Digest): Promise<BlobStat | undefined>;
  /**
   * Read the blob starting at byte `offset` (default 0) without reading the
   * chunks before it; `undefined` on a miss. Every chunk is verified against its
   * digest as it is read, and a full read (offset 0) also verifies the blob
   * digest at the end (an implementation may do that once per chunk list it
   * has checked, since verified chunks of a checked list add up to the
   * digest): a mismatch throws ERR_INTEGRITY with expected/actual.
   * An offset beyond the size is a RangeError.
   */
  read(digest: B3Digest, offset?: number): Promise<AsyncIterable<Uint8Array> | undefined>;
  /**
   * Start writing a new blob. Identical concurrent writes are harmless. `options.digest`: the blob's
   * BLAKE3, which the caller computes itself over exactly the bytes it writes (a large file hashed on a
   * worker thread: src/fs/worker-hasher.ts); the writer then hashes only the chunks. An implementation
   * may ignore it and hash the bytes itself.
   */
  writer(options?: BlobWriterOptions): BlobWriter;
  /**
   * How many blobs a writer of many small ones (an archive, a tree) should let close at once
   * (castore/closing.ts; default 256): a store that gathers writes into large objects asks for more,
   * so that small files fill them. A hint; any number is correct.
   */
  readonly closingBlobs?: number | undefined;
}

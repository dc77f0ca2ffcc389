/**
 * A large regular file into the blob service, with its NAR sha256 (and, for
 * a flat add, its own hash) computed on the way in by a worker thread
 * (worker-hasher.ts) that also computes the blob's BLAKE3: the main thread
 * only reads, chunks, hashes chunks and writes packs.
 *
 * The file is read into a few buffers, one read ahead of the chunker. Once
 * the chunker has copied a buffer's bytes, the buffer is lent (moved, not
 * copied) to the worker, which hashes it and hands it back to be read into
 * again. The bytes hashed are therefore exactly the bytes stored. (Buffers
 * on a SharedArrayBuffer, hashed in place, made the chunker's copy much
 * slower.) A file that grows or shrinks while it is read is ERR_IO, as in
 * import.ts.
 */

import { open } from 'node:fs/promises';
import type { BlobService } from '../blob/service.js';
import type { B3Digest } from '../castore/digest.js';
import type { NarSum } from '../nar-render/nar-calc.js';
import type { HashAlgo } from '../nix/hashing.js';
import { NarEncoder } from '../nix/nar/encoder.js';
import { ioError } from './dump.js';
import { changed } from './import.js';
import { WorkerHasher } from './worker-hasher.js';

/** From this size on a worker pays for its start (~30 ms; SHA-256 + BLAKE3 of 64 MiB take ~50 ms here). */
export const WORKER_HASH_MIN_SIZE = 64 << 20;
const BUFFER = 1 << 20;
const BUFFERS = 4;

export interface LargeFileResult {
  readonly blob: { readonly digest: B3Digest; readonly size: number };
  readonly narSum: NarSum;
  /** The file's own `flatAlgo` hash, when asked for. */
  readonly flat?: Uint8Array;
}

/**
 * Store the file at `path` (`size` bytes, from its stat) as one blob; `undefined` when no worker
 * thread can be started here (the caller then hashes on its own thread).
 */
export async function addLargeFile(
  blobs: BlobService,
  path: string,
  size: number,
  executable: boolean,
  flatAlgo?: HashAlgo,
): Promise<LargeFileResult | undefined> {
  // Hashers: 0 the NAR sha256 (framing and bytes), 1 the blob BLAKE3, 2 the flat hash (bytes).
  const hasher = WorkerHasher.start(
    flatAlgo === undefined ? ['sha256', 'blake3'] : ['sha256', 'blake3', flatAlgo],
  );
  if (hasher === undefined) return undefined;
  const contentTo = flatAlgo === undefined ? [1] : [1, 2];
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  // Buffers here, or lent to the worker (a promise that gives them back once hashed).
  const free: ArrayBuffer[] = Array.from({ length: BUFFERS - 1 }, () => new ArrayBuffer(BUFFER));
  const lent: Promise<ArrayBuffer>[] = [];
  const take = async (): Promise<ArrayBuffer> => free.pop() ?? (await lent.shift()!);
  let reading: Promise<{ bytesRead: number; buffer: Uint8Array }> | undefined;
  let digestsReady!: { resolve(d: B3Digest): void; reject(e: unknown): void };
  const blobDigest = new Promise<B3Digest>((resolve, reject) => {
    digestsReady = { resolve, reject };
  });
  const writer = blobs.writer({ digest: blobDigest });
  try {
    handle = await open(path, 'r').catch((e: unknown) => {
      throw ioError(e, path);
    });
    const h = handle;
    let narSize = 0;
    let current: Uint8Array | undefined;
    let passed = false;
    const enc = new NarEncoder((c) => {
      narSize += c.length;
      // The file bytes as they are go to the worker with the buffer; framing (and a tail the encoder
      // copied) is copied into its own message.
      if (current !== undefined && c.buffer === current.buffer) passed = true;
      else hasher.update([0], c);
    });
    enc.regular(executable, size);
    const readInto = (buf: ArrayBuffer, pos: number) => {
      const p = h.read(new Uint8Array(buf), 0, BUFFER, pos);
      p.catch(() => {});
      return p;
    };
    reading = readInto(new ArrayBuffer(BUFFER), 0);
    let pos = 0;
    for (;;) {
      const { bytesRead, buffer } = await reading;
      reading = undefined;
      if (bytesRead === 0) break;
      pos += bytesRead;
      if (pos > size) throw changed(path);
      const next = await take();
      reading = readInto(next, pos);
      const view = buffer.subarray(0, bytesRead);
      current = view;
      passed = false;
      enc.contents(view); // the NAR hash's update: a view this size passes the encoder as it is
      current = undefined;
      await writer.write(view); // copied into the chunker before it resolves
      lent.push(hasher.lend(passed ? [0, ...contentTo] : contentTo, view.buffer as ArrayBuffer, bytesRead));
    }
    if (pos !== size) throw changed(path);
    enc.finish();
    const d = await hasher.digests();
    digestsReady.resolve(d[1]!);
    const blob = await writer.close();
    return {
      blob,
      narSum: { narSha256: d[0]!, narSize },
      ...(flatAlgo === undefined ? {} : { flat: d[2]! }),
    };
  } catch (e) {
    digestsReady.reject(e);
    await writer.abort();
    throw e;
  } finally {
    await reading?.catch(() => {});
    await Promise.allSettled(lent);
    await handle?.close();
    void hasher.close();
  }
}

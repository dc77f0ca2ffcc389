/**
 * `ingestTarball()`: the bytes of a downloaded archive (`builtins.fetchTarball`
 * semantics, docs/formats.md §5) → castore blobs and directories → one root
 * node and `lastModified`. Compression (gzip, bzip2, xz, zstd or none) is
 * sniffed by `decompress()`; the decompressed bytes are a tar stream, or a zip
 * when they start with `PK\x03\x04` (or `PK\x05\x06`, an empty zip).
 *
 * Nothing is extracted to the filesystem (a zip is spooled to a temp file
 * only because its index is at the end). A tar's NAR hash is computed as its
 * members stream in (archive/tree-nar.ts), so the stored tree is not read
 * back to hash it. Members are collected into an
 * `ArchiveTree` as they stream (contents already stored as blobs), and only
 * when the whole archive has been read and validated is the tree handed to
 * `ingestEntries()`; so an archive that fails, for any reason, leaves at most
 * orphan blobs (removed by gc) and never a directory or a path.
 *
 * Modern Nix (≥ 2.21) semantics, where they differ from the reference Nix
 * 2.8 (see tree.ts): a single top-level directory is the root, otherwise the
 * archive root is (2.8 demanded exactly one top-level entry and made even a
 * file the root), and `lastModified` is the newest mtime of any member (2.8:
 * that of the top-level entry).
 *
 * A tar is read as libarchive (Nix) reads it: up to its first all-zero
 * header block (archive/tar-reader.ts); the compressed unit that block is in
 * (gzip member, bzip2 stream; for zstd and xz all that is left) is read to its
 * end and checked, and whatever follows it is ignored (decompress.ts).
 *
 * Every archive problem is ERR_BAD_ARCHIVE; errors of the source itself
 * (ERR_HTTP, a socket error …) come out unchanged. Zero bytes are refused as
 * a broken download (libarchive's "empty" format would make them an empty
 * tree); a tar of only end-of-archive blocks is an empty directory.
 */

import { type IngestServices, ingestEntries } from '../castore/ingest.js';
import type { Node } from '../castore/nodes.js';
import { FetchCacheError } from '../errors.js';
import type { NarSum } from '../nar-render/nar-calc.js';
import { ByteBudget, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_UNPACKED_BYTES } from './archive/budget.js';
import { badArchive } from './archive/path.js';
import { readTar } from './archive/tar.js';
import { ArchiveTree } from './archive/tree.js';
import { decompress } from './decompress.js';

export interface TarballOptions {
  /**
   * Cap on the decompressed archive (for tar: the whole tar stream, headers
   * included; for zip: the spooled file and, separately, the members'
   * contents). Default 16 GiB; crossing it stops unpacking at once.
   */
  readonly maxUnpackedBytes?: number;
  /** Cap on entries in the tree, implied parent directories included. Default 1,000,000. */
  readonly maxEntries?: number;
  /** The cache root, whose `tmp/` holds the zip spool and the NAR hash's (default: the OS temp dir). */
  readonly root?: string | undefined;
  /**
   * Bytes of file contents a tar's one-pass NAR hash keeps in its spool, unhashed, while they wait for
   * their turn in NAR order (archive/tree-nar.ts; default 128 MiB). Less disk, more archives whose hash
   * is written ahead on a guess that then fails.
   */
  readonly narHoldBytes?: number | undefined;
}

export interface TarballResult {
  readonly node: Node;
  /** The NAR sum, when it was computed while the members streamed in (archive/tree-nar.ts). */
  readonly narSum: NarSum | undefined;
  /** Newest member mtime, seconds since the epoch (0 for an empty archive). */
  readonly lastModified: number;
}

const ZIP_MAGICS = [
  [0x50, 0x4b, 0x03, 0x04],
  [0x50, 0x4b, 0x05, 0x06],
];

export async function ingestTarball(
  source: AsyncIterable<Uint8Array>,
  services: IngestServices,
  opts: TarballOptions = {},
): Promise<TarballResult> {
  const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const budget = new ByteBudget(opts.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES, 'unpacked archive');
  const tree = new ArchiveTree(maxEntries);
  const failures: { source?: unknown } = {};
  const decoded = decompress(watched(source, failures));
  let narSum: NarSum | undefined;
  try {
    const { head, chunks } = await peek(decoded, 4);
    if (head.length === 0) throw badArchive('archive is empty');
    if (ZIP_MAGICS.some((m) => m.every((b, i) => head[i] === b))) {
      const { readZip } = await import('./archive/zip.js'); // yauzl, loaded only for a zip
      await readZip(chunks, tree, services.blobs, budget, maxEntries, opts.root);
    } else {
      narSum = await readTar(chunks, tree, services.blobs, budget, {
        holdBytes: opts.narHoldBytes,
        root: opts.root,
      });
    }
    // A tar ends at its end-of-archive block: check the compressed unit it ended in, ignore what follows.
    await decoded.finish();
  } catch (e) {
    await decoded.close().catch(() => {});
    throw classify(e, failures.source);
  }
  const node = await ingestEntries(tree.entries(), services);
  return { node, narSum, lastModified: tree.lastModified };
}

/** Remember an error the source itself threw, so it is not mistaken for an archive problem. */
async function* watched(
  source: AsyncIterable<Uint8Array>,
  failures: { source?: unknown },
): AsyncGenerator<Uint8Array> {
  try {
    yield* source;
  } catch (e) {
    failures.source = e;
    throw e;
  }
}

/** The source's own error unchanged; any other non-FetchCacheError is an archive problem. */
function classify(e: unknown, sourceError: unknown): unknown {
  if (sourceError !== undefined) {
    for (let c: unknown = e; c !== undefined && c !== null; c = (c as { cause?: unknown }).cause) {
      if (c === sourceError) return sourceError;
    }
  }
  if (e instanceof FetchCacheError) return e;
  return badArchive(`cannot unpack archive (${e instanceof Error ? e.message : String(e)})`, undefined, e);
}

/** The first `n` bytes (fewer if the stream is shorter) and a stream that still yields everything. */
async function peek(
  source: AsyncIterable<Uint8Array>,
  n: number,
): Promise<{ head: Uint8Array; chunks: AsyncIterable<Uint8Array> }> {
  const it = source[Symbol.asyncIterator]();
  const buffered: Uint8Array[] = [];
  let length = 0;
  let ended = false;
  while (length < n) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    buffered.push(r.value);
    length += r.value.length;
  }
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      yield* buffered;
      if (ended) return;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    } finally {
      await it.return?.();
    }
  }
  return { head: Buffer.concat(buffered).subarray(0, n), chunks: chunks() };
}

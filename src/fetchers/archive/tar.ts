/**
 * Tar members → the archive tree. The (already decompressed) bytes stream
 * through tar-stream, which handles ustar, GNU (long names and long links)
 * and pax headers; regular file contents go straight into blob writers, one
 * member at a time, never to disk and never whole in memory.
 *
 * Member types, as modern Nix's `unpackTarfileToSink` treats them: regular
 * (and contiguous) files are executable iff the owner-x bit is set; symlinks
 * are kept with their target bytes; hard links become regular files with
 * their target's content and mode; directories are recorded (and merged);
 * character and block devices, FIFOs and any other type are ERR_BAD_ARCHIVE
 * (Nix: "file '…' in tarball has unsupported file type"). GNU sparse members
 * are refused too: their data is not the file's content.
 *
 * Names: ustar/GNU header names are taken as raw bytes (decoded latin1, which
 * maps bytes one to one); pax `path`/`linkpath` are UTF-8 by definition.
 *
 * The archive ends at its first all-zero header block, as libarchive reads it
 * (tar-end.ts): members and junk after it are never read.
 */

import tarStream from 'tar-stream';
import type { BlobService } from '../../blob/service.js';
import { FetchCacheError } from '../../errors.js';
import type { ByteBudget } from './budget.js';
import { badArchive, memberComponents } from './path.js';
import { TarEnd } from './tar-end.js';
import type { ArchiveTree } from './tree.js';
import { BlobUploads } from './uploads.js';

type Header = Omit<tarStream.Header, 'type' | 'pax'> & {
  // tar-stream reports unknown type flags as null.
  readonly type: tarStream.Header['type'] | null;
  readonly pax?: Record<string, string> | null;
};
type Member = AsyncIterable<Uint8Array> & { readonly header: tarStream.Header };
type ExtractOptions = { filenameEncoding: BufferEncoding; allowUnknownFormat: boolean };

/** Read a whole tar stream into `tree`; `budget` counts the decompressed bytes. */
export async function readTar(
  chunks: AsyncIterable<Uint8Array>,
  tree: ArchiveTree,
  blobs: BlobService,
  budget: ByteBudget,
): Promise<void> {
  // v7 archives (no ustar magic) are still tar; libarchive reads them too.
  const options: ExtractOptions = { filenameEncoding: 'latin1', allowUnknownFormat: true };
  const extract = tarStream.extract(options as object);
  // Take the iterator first: it installs the error listener the feeder relies on.
  const members = extract[Symbol.asyncIterator]();
  // The extractor's failure (bad header, truncation, or one the feeder put there) also reaches us through
  // a member's data stream; remember it so it is told apart from a failure of the blob service.
  let extractError: unknown;
  extract.on('error', (e: unknown) => {
    extractError ??= e;
  });
  const feeding = feed(extract, chunks, budget);
  const uploads = new BlobUploads(blobs);
  let finished = false;
  try {
    for (;;) {
      const next = await members.next().catch((e: unknown) => {
        throw asArchiveError(e);
      });
      if (next.done) break;
      await readMember(next.value as Member, tree, uploads, budget).catch((e: unknown) => {
        throw e === extractError ? asArchiveError(e) : e;
      });
    }
    await uploads.settle();
    finished = true;
  } finally {
    if (!finished) extract.destroy();
    await feeding;
    await uploads.settle().catch(() => {});
  }
}

async function readMember(
  entry: Member,
  tree: ArchiveTree,
  uploads: BlobUploads,
  budget: ByteBudget,
): Promise<void> {
  const header = entry.header as unknown as Header;
  const rawPath = headerBytes(header.name, header.pax?.path);
  const path = memberComponents(rawPath);
  tree.touch(mtimeOf(header));
  switch (header.type) {
    case 'file':
    case 'contiguous-file': {
      budget.check(header.size);
      const blob = await uploads.upload(entry);
      tree.addFile(path, blob, (header.mode & 0o100) !== 0);
      return;
    }
    case 'directory':
      await drain(entry);
      tree.addDirectory(path);
      return;
    case 'symlink':
      await drain(entry);
      tree.addSymlink(path, headerBytes(header.linkname ?? '', header.pax?.linkpath));
      return;
    case 'link': {
      await drain(entry);
      const target = headerBytes(header.linkname ?? '', header.pax?.linkpath);
      tree.addHardLink(path, memberComponents(target));
      return;
    }
    default:
      throw badArchive(`archive member has unsupported type ${describeType(header)}`, rawPath);
  }
}

/** Raw name bytes: a pax value is UTF-8; a header field was decoded latin1, byte for byte. */
function headerBytes(field: string, pax: string | undefined): Uint8Array {
  return pax !== undefined ? Buffer.from(pax, 'utf8') : Buffer.from(field, 'latin1');
}

/** Seconds; pax `mtime` (may be fractional or beyond the octal field) wins over the header field. */
function mtimeOf(header: Header): number {
  const pax = header.pax?.mtime;
  if (pax !== undefined && Number.isFinite(Number.parseFloat(pax))) return Math.floor(Number.parseFloat(pax));
  return Math.floor(header.mtime.getTime() / 1000);
}

function describeType(header: Header): string {
  return header.type ?? 'unknown';
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entry) {
    // Link and directory members normally have no data; skip any they carry.
  }
}

/**
 * Feed the extractor with backpressure, up to the end-of-archive block (tar-end.ts); nothing after it is
 * read (the stream is left open for the caller). Failures go into the extractor, never out of here.
 */
async function feed(
  extract: tarStream.Extract,
  chunks: AsyncIterable<Uint8Array>,
  budget: ByteBudget,
): Promise<void> {
  const end = new TarEnd();
  const it = chunks[Symbol.asyncIterator]();
  try {
    while (!end.ended) {
      const next = await it.next();
      if (next.done) break;
      if (extract.destroyed) return;
      const chunk = end.take(next.value);
      budget.take(chunk.length);
      if (!extract.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
        await drainedOrClosed(extract);
      }
    }
    if (!extract.destroyed) extract.end(undefined);
  } catch (e) {
    extract.destroy(e instanceof Error ? e : new Error(String(e)));
  }
}

function drainedOrClosed(extract: tarStream.Extract): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      extract.off('drain', done);
      extract.off('close', done);
      resolve();
    };
    extract.on('drain', done);
    extract.on('close', done);
  });
}

/** tar-stream's own errors (bad checksum, truncation) are archive problems; ours pass through. */
function asArchiveError(e: unknown): unknown {
  if (e instanceof FetchCacheError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return badArchive(`not a valid tar archive (${message})`, undefined, e);
}

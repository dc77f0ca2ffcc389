/**
 * Zip archives → the archive tree. Zip keeps its index (the central
 * directory) at the end, so yauzl needs random access: the bytes are spooled
 * to a private temp file first, as Nix does for zip since 2.21.1, under the
 * cache root (fs/temp.ts), and the file is deleted afterwards whatever happens. Member contents still stream into
 * blob writers; the CRC-32 of each member is checked (yauzl checks sizes only).
 *
 * Member types follow libarchive: a name ending in `/` is a directory; with a
 * Unix "version made by" (host 3) the upper 16 bits of the external
 * attributes are `st_mode`, giving symlinks (content = target), directories,
 * regular files (executable iff owner-x) and anything else, which is
 * ERR_BAD_ARCHIVE; other hosts give plain non-executable files. Names are
 * raw bytes (no CP437 decoding), validated like tar names. mtime: the Info-ZIP
 * "UT" or NTFS extra field, else the DOS time read as local time (libarchive).
 */

import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import type { BlobService } from '../../blob/service.js';
import { uploadBlob } from '../../castore/ingest.js';
import { MAX_TARGET_LEN } from '../../castore/nodes.js';
import { FetchCacheError } from '../../errors.js';
import { withTempDir } from '../../fs/temp.js';
import { ByteBudget } from './budget.js';
import { badArchive, memberComponents } from './path.js';
import type { ArchiveTree } from './tree.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const HOST_UNIX = 3;

/**
 * Spool `chunks` (capped at `budget.limit` bytes) to a temp file under `<root>/tmp` (fs/temp.ts; the OS temp
 * dir without a root) and read it as a zip into `tree`.
 */
export async function readZip(
  chunks: AsyncIterable<Uint8Array>,
  tree: ArchiveTree,
  blobs: BlobService,
  budget: ByteBudget,
  maxEntries: number,
  root: string | undefined,
): Promise<void> {
  await withTempDir(root, 'fetch-cache-zip', async (dir) => {
    const file = join(dir, 'archive.zip');
    const spooled = new ByteBudget(budget.limit, 'zip archive');
    await pipeline(Readable.from(counted(chunks, spooled)), createWriteStream(file, { mode: 0o600 }));
    let zip: yauzl.ZipFile;
    try {
      zip = await yauzl.openPromise(file, { lazyEntries: true, decodeStrings: false, autoClose: false });
    } catch (e) {
      throw asArchiveError(e);
    }
    try {
      if (zip.entryCount > maxEntries) throw badArchive(`archive has more than ${maxEntries} entries`);
      const entries = zip.eachEntry();
      for (;;) {
        const next = await entries.next().catch((e: unknown) => {
          throw asArchiveError(e);
        });
        if (next.done) break;
        await readMember(zip, next.value, tree, blobs, budget);
      }
    } finally {
      zip.close();
    }
  });
}

async function readMember(
  zip: yauzl.ZipFile,
  entry: yauzl.Entry,
  tree: ArchiveTree,
  blobs: BlobService,
  budget: ByteBudget,
): Promise<void> {
  // With decodeStrings off, yauzl hands out the raw name bytes.
  const rawPath = entry.fileName as unknown as Buffer;
  const path = memberComponents(rawPath);
  tree.touch(entry.getLastModDate().getTime() / 1000);
  const mode = entry.versionMadeBy >>> 8 === HOST_UNIX ? entry.externalFileAttributes >>> 16 : 0;
  const type = mode & S_IFMT;
  if (rawPath[rawPath.length - 1] === 0x2f || type === S_IFDIR) {
    tree.addDirectory(path);
    return;
  }
  if (type !== 0 && type !== S_IFREG && type !== S_IFLNK) {
    throw badArchive(`archive member has unsupported file type (mode ${mode.toString(8)})`, rawPath);
  }
  if (type === S_IFLNK) {
    if (entry.uncompressedSize > MAX_TARGET_LEN)
      throw badArchive('archive symlink target is too long', rawPath);
    const parts: Buffer[] = [];
    for await (const chunk of checked(await open(zip, entry), entry, budget)) parts.push(Buffer.from(chunk));
    tree.addSymlink(path, Buffer.concat(parts));
    return;
  }
  budget.check(entry.uncompressedSize);
  const blob = await uploadBlob(blobs, checked(await open(zip, entry), entry, budget));
  tree.addFile(path, { value: blob }, (mode & 0o100) !== 0);
}

async function open(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<AsyncIterable<Uint8Array>> {
  try {
    return await zip.openReadStreamPromise(entry);
  } catch (e) {
    throw asArchiveError(e, entry.fileName as unknown as Buffer);
  }
}

/** Member bytes, counted against the budget and checked against the stored CRC-32 at the end. */
async function* checked(
  stream: AsyncIterable<Uint8Array>,
  entry: yauzl.Entry,
  budget: ByteBudget,
): AsyncGenerator<Uint8Array> {
  const name = entry.fileName as unknown as Buffer;
  let crc = 0;
  try {
    for await (const chunk of stream) {
      budget.take(chunk.length);
      crc = crc32(chunk, crc);
      yield chunk;
    }
  } catch (e) {
    throw asArchiveError(e, name);
  }
  if (crc >>> 0 !== entry.crc32 >>> 0) {
    throw badArchive(`archive member fails its CRC-32 check`, name);
  }
}

async function* counted(chunks: AsyncIterable<Uint8Array>, budget: ByteBudget): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    budget.take(chunk.length);
    yield chunk;
  }
}

/** yauzl's errors (bad signatures, size mismatches, encryption) are archive problems. */
function asArchiveError(e: unknown, path?: Uint8Array): unknown {
  if (e instanceof FetchCacheError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return badArchive(`not a valid zip archive (${message})`, path, e);
}

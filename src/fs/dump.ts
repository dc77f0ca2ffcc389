/**
 * Serialise a local path as a NAR, exactly like `nix-store --dump`, without
 * ever holding a whole file or the whole NAR in memory. Used by `hash path`.
 *
 * Rules (docs/formats.md §1): regular files are executable iff the owner-x bit
 * is set; symlinks are never followed (a symlink root gives a symlink NAR);
 * directory entries are sorted bytewise by their raw names (read as Buffers so
 * non-UTF-8 names survive); anything else is ERR_UNSUPPORTED_FILE_TYPE.
 *
 * When the native addon is built (src/native/nar-dump.ts) the same walk runs in C++
 * on a worker thread; this file is its reference and its fallback.
 *
 * Trees of many small files cost mostly system calls, so the walk makes as
 * few as it can, synchronously (a libuv round trip per call would cost more
 * than the call): directory entries come typed from readdir, so directories
 * and symlinks need no stat; files are opened without following links and
 * stat'ed on the descriptor, so size, mode and bytes belong together. Large
 * files are read with double-buffered asynchronous reads, so reading the next
 * chunk overlaps with hashing this one. (Reading small files in worker
 * threads was tried and measured slower on a 2-core machine under load: the
 * messages cost more than the reads.)
 */

import {
  closeSync,
  constants,
  type Dirent,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  type Stats,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { FetchCacheError } from '../errors.js';
import { narDump } from '../native/index.js';
import { nativeDumpPath } from '../native/nar-dump.js';
import { NarEncoder } from '../nix/nar/encoder.js';

/** Files up to this size are read in one synchronous call into a reused buffer. */
const SMALL_FILE = 1 << 20;
/** Chunk size for large files. */
const CHUNK = 1 << 20;
const NO_FOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;
const SLASH = Buffer.from('/');

/**
 * Write the NAR of `path` to `sink`, chunk by chunk, and return the NAR size.
 * `sink` must consume each chunk synchronously: buffers are reused after it returns.
 */
export async function dumpPath(path: string, sink: (chunk: Uint8Array) => void): Promise<number> {
  const native = narDump();
  if (native !== undefined) return nativeDumpPath(native, path, sink, { io: ioError, unsupported, changed });
  return dumpPathJs(path, sink);
}

/** The JavaScript walk: the reference for the native addon, and its fallback. */
export async function dumpPathJs(path: string, sink: (chunk: Uint8Array) => void): Promise<number> {
  let size = 0;
  const enc = new NarEncoder(
    (chunk) => {
      size += chunk.byteLength;
      sink(chunk);
    },
    // Hashed only, never parsed: any depth, as `nix hash path` (Nix 2.8) allows.
    { lendBuffer: true, maxDepth: Number.POSITIVE_INFINITY },
  );
  const root = Buffer.from(path);
  const dumper = new Dumper(enc);
  const st = statOrThrow(root);
  if (st.isSymbolicLink()) enc.symlink(readLink(root));
  else if (st.isFile()) await dumper.file(root);
  else if (st.isDirectory()) await dumper.directory(root);
  else throw unsupported(root);
  enc.finish();
  return size;
}

class Dumper {
  private readonly small = Buffer.allocUnsafe(SMALL_FILE + 1);
  constructor(private readonly enc: NarEncoder) {}

  async directory(path: Buffer): Promise<void> {
    const enc = this.enc;
    enc.directory();
    let entries: Dirent<Buffer>[];
    try {
      entries = readdirSync(path, { encoding: 'buffer', withFileTypes: true });
    } catch (e) {
      throw ioError(e, path);
    }
    entries.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const e of entries) {
      const child = Buffer.concat([path, SLASH, e.name]);
      enc.entry(e.name);
      if (e.isFile()) await this.file(child);
      else if (e.isDirectory()) await this.directory(child);
      else if (e.isSymbolicLink()) enc.symlink(readLink(child));
      else if (e.isBlockDevice() || e.isCharacterDevice() || e.isFIFO() || e.isSocket())
        throw unsupported(child);
      else {
        // The file system did not say (DT_UNKNOWN): ask.
        const st = statOrThrow(child);
        if (st.isFile()) await this.file(child);
        else if (st.isDirectory()) await this.directory(child);
        else if (st.isSymbolicLink()) enc.symlink(readLink(child));
        else throw unsupported(child);
      }
    }
    enc.end();
  }

  async file(path: Buffer): Promise<void> {
    let fd: number;
    try {
      fd = openSync(path, NO_FOLLOW);
    } catch (e) {
      // ELOOP: the file became a symlink since the directory was read.
      throw (e as NodeJS.ErrnoException).code === 'ELOOP' ? changed(path) : ioError(e, path);
    }
    let size: number;
    let executable: boolean;
    try {
      const st = fstatSync(fd);
      size = st.size;
      executable = (st.mode & 0o100) !== 0;
      if (size <= SMALL_FILE) {
        // Read one byte more than expected to notice a file that grew.
        let got = 0;
        while (got <= size) {
          const n = readSync(fd, this.small, got, size + 1 - got, null);
          if (n === 0) break;
          got += n;
        }
        if (got !== size) throw changed(path);
        this.enc.regular(executable, size);
        if (size > 0) this.enc.contents(this.small.subarray(0, size));
        return;
      }
    } catch (e) {
      throw e instanceof FetchCacheError ? e : ioError(e, path);
    } finally {
      closeSync(fd);
    }
    this.enc.regular(executable, size);
    await dumpLarge(path, size, this.enc);
  }
}

async function dumpLarge(path: Buffer, expected: number, enc: NarEncoder): Promise<void> {
  const handle = await open(path, NO_FOLLOW).catch((e: unknown) => {
    throw ioError(e, path);
  });
  try {
    // Two buffers: while the encoder (and the hash behind it) consumes one, the
    // thread pool fills the other.
    const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    let pos = 0;
    let turn = 0;
    let pending = handle.read(bufs[0]!, 0, CHUNK, 0);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const buf = bufs[turn]!;
      pos += bytesRead;
      if (pos > expected) throw changed(path);
      turn ^= 1;
      pending = handle.read(bufs[turn]!, 0, CHUNK, pos);
      enc.contents(buf.subarray(0, bytesRead));
    }
    if (pos !== expected) throw changed(path);
  } finally {
    await handle.close();
  }
}

function statOrThrow(path: Buffer): Stats {
  try {
    return lstatSync(path);
  } catch (e) {
    throw ioError(e, path);
  }
}

function readLink(path: Buffer): Buffer {
  try {
    return readlinkSync(path, { encoding: 'buffer' });
  } catch (e) {
    throw ioError(e, path);
  }
}

function unsupported(path: Buffer): FetchCacheError {
  return new FetchCacheError(
    'ERR_UNSUPPORTED_FILE_TYPE',
    `file '${path.toString()}' has an unsupported type`,
    {
      path: path.toString(),
    },
  );
}

function changed(path: Buffer): FetchCacheError {
  return new FetchCacheError('ERR_IO', `file '${path.toString()}' changed while it was being read`, {
    path: path.toString(),
  });
}

/** Map a Node fs error to a one-line FetchCacheError. */
export function ioError(e: unknown, path: Buffer | string): FetchCacheError {
  const p = path.toString();
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT')
    return new FetchCacheError('ERR_NOT_FOUND', `path '${p}' does not exist`, { path: p, cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new FetchCacheError('ERR_IO', `cannot read '${p}': ${msg}`, { path: p, cause: e });
}

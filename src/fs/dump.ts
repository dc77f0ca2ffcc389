/**
 * Serialise a local path as a NAR, exactly like `nix-store --dump`, without
 * ever holding a whole file or the whole NAR in memory. Used by `hash path`.
 *
 * Rules (nix-formats.md §1.5): regular files are executable iff the owner-x bit
 * is set; symlinks are never followed (a symlink root gives a symlink NAR);
 * directory entries are sorted bytewise by their raw names (read as Buffers so
 * non-UTF-8 names survive); anything else is ERR_UNSUPPORTED_FILE_TYPE.
 *
 * The walk and small files use synchronous fs calls: for trees of many small
 * files the per-call cost of the libuv thread pool would dominate. Large files
 * are read with double-buffered asynchronous reads so that reading the next
 * chunk overlaps with hashing the current one.
 */

import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { FetchCacheError } from '../errors.js';
import { NarEncoder } from '../nix/nar/encoder.js';

/** Files up to this size are read in one synchronous call. */
const SMALL_FILE = 1 << 20;
/** Chunk size for large files. */
const CHUNK = 1 << 20;

const SLASH = Buffer.from('/');

/**
 * Write the NAR of `path` to `sink`, chunk by chunk, and return the NAR size.
 * `sink` must consume each chunk synchronously: buffers are reused after it returns.
 */
export async function dumpPath(path: string, sink: (chunk: Uint8Array) => void): Promise<number> {
  let size = 0;
  const encoder = new NarEncoder((chunk) => {
    size += chunk.byteLength;
    sink(chunk);
  });
  const small = Buffer.allocUnsafe(SMALL_FILE);
  await dumpNode(Buffer.from(path), statOrThrow(Buffer.from(path)), encoder, small);
  encoder.finish();
  return size;
}

function statOrThrow(path: Buffer): Stats {
  try {
    return lstatSync(path);
  } catch (e) {
    throw ioError(e, path);
  }
}

async function dumpNode(path: Buffer, st: Stats, enc: NarEncoder, small: Buffer): Promise<void> {
  if (st.isSymbolicLink()) {
    enc.symlink(readlinkSync(path, { encoding: 'buffer' }));
  } else if (st.isFile()) {
    await dumpFile(path, st, enc, small);
  } else if (st.isDirectory()) {
    enc.directory();
    let names: Buffer[];
    try {
      names = readdirSync(path, { encoding: 'buffer' });
    } catch (e) {
      throw ioError(e, path);
    }
    names.sort(Buffer.compare);
    for (const name of names) {
      const child = Buffer.concat([path, SLASH, name]);
      enc.entry(name);
      await dumpNode(child, statOrThrow(child), enc, small);
    }
    enc.end();
  } else {
    throw new FetchCacheError(
      'ERR_UNSUPPORTED_FILE_TYPE',
      `file '${path.toString()}' has an unsupported type`,
      {
        path: path.toString(),
      },
    );
  }
}

async function dumpFile(path: Buffer, st: Stats, enc: NarEncoder, small: Buffer): Promise<void> {
  const executable = (st.mode & 0o100) !== 0;
  const expected = st.size;
  enc.regular(executable, expected);
  if (expected <= SMALL_FILE) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw ioError(e, path);
    }
    try {
      let got = 0;
      // Read one byte more than expected to detect a file that grew.
      while (got <= expected) {
        const n = readSync(fd, small, got, Math.min(small.length - got, expected + 1 - got), null);
        if (n === 0) break;
        got += n;
      }
      if (got !== expected) throw changed(path);
      if (expected > 0) enc.contents(small.subarray(0, expected));
    } finally {
      closeSync(fd);
    }
    return;
  }
  const handle = await open(path, 'r').catch((e: unknown) => {
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

/**
 * A local path as an entry stream for `ingestEntries()`: the `nix-store --add`
 * view of the file system. Regular files (executable iff owner-x), symlinks
 * kept as symlinks (the root too), directories; anything else is
 * ERR_UNSUPPORTED_FILE_TYPE. Entries come children before parents. Small
 * files are read at once; large ones stream in 1 MiB reads when the ingest
 * gets to them, so memory stays bounded by the ingest's concurrency.
 */

import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import type { IngestEntry } from '../castore/ingest.js';
import { FetchCacheError } from '../errors.js';
import type { NarEncoder } from '../nix/nar/encoder.js';
import { NAR_MAX_DEPTH } from '../nix/nar/wire.js';
import { ioError } from './dump.js';

const SMALL_FILE = 256 * 1024;
const CHUNK = 1 << 20;
const SLASH = Buffer.from('/');

/**
 * Where the walk also writes the tree's NAR, as it reads it (names sorted
 * bytewise, as NAR wants them): the bytes a file, symlink or listing is
 * stored with are the bytes hashed, so the NAR hash needs no second pass over
 * the store. Only while every file is small (read whole during the walk);
 * a large file streams later, out of NAR order, so the walk then stops
 * writing and sets `gaveUp` (the caller renders the NAR from the store).
 */
export interface WalkNar {
  readonly enc: NarEncoder;
  gaveUp: boolean;
}

/** Entries of the tree at `path`, children before parents, the root last. */
export function* localEntries(path: string, nar?: WalkNar): Generator<IngestEntry> {
  const root = Buffer.from(path);
  yield* walk(root, Buffer.alloc(0), stat(root), nar);
  if (nar !== undefined && !nar.gaveUp) nar.enc.finish();
}

function stat(path: Buffer): Stats {
  try {
    return lstatSync(path);
  } catch (e) {
    throw ioError(e, path);
  }
}

function* walk(
  abs: Buffer,
  rel: Buffer,
  st: Stats,
  nar: WalkNar | undefined,
  depth = 0,
): Generator<IngestEntry> {
  const enc = nar === undefined || nar.gaveUp ? undefined : nar.enc;
  if (st.isSymbolicLink()) {
    const target = readlinkSync(abs, { encoding: 'buffer' });
    enc?.symlink(target);
    yield { type: 'symlink', path: rel, target };
  } else if (st.isFile()) {
    const executable = (st.mode & 0o100) !== 0;
    if (st.size <= SMALL_FILE) {
      const contents = readSmall(abs, st.size);
      enc?.regular(executable, contents.length);
      if (contents.length > 0) enc?.contents(contents);
      yield { type: 'file', path: rel, executable, contents };
    } else {
      if (nar !== undefined) nar.gaveUp = true;
      yield { type: 'file', path: rel, executable, contents: readLarge(abs, st.size) };
    }
  } else if (st.isDirectory()) {
    let names: Buffer[];
    try {
      names = readdirSync(abs, { encoding: 'buffer' });
    } catch (e) {
      throw ioError(e, abs);
    }
    if (names.length > 0 && depth + 1 >= NAR_MAX_DEPTH) throw tooDeep(abs);
    if (enc !== undefined) {
      names.sort(Buffer.compare);
      enc.directory();
    }
    for (const name of names) {
      const childAbs = Buffer.concat([abs, SLASH, name]);
      const childRel = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
      if (nar !== undefined && !nar.gaveUp) nar.enc.entry(name);
      yield* walk(childAbs, childRel, stat(childAbs), nar, depth + 1);
    }
    if (nar !== undefined && !nar.gaveUp) nar.enc.end();
    yield { type: 'directory', path: rel };
  } else {
    throw new FetchCacheError(
      'ERR_UNSUPPORTED_FILE_TYPE',
      `file '${abs.toString()}' has an unsupported type`,
      {
        path: abs.toString(),
      },
    );
  }
}

/**
 * Nix 2.8 stores such a tree, but the NAR it makes is one modern Nix (and our
 * parser) refuses to read, so it could never be substituted: refused here.
 * (`hash path` still hashes it, as `nix hash path` does.)
 */
function tooDeep(path: Buffer): FetchCacheError {
  return new FetchCacheError(
    'ERR_UNSUPPORTED_FILE_TYPE',
    `directory '${path.toString()}' is nested ${NAR_MAX_DEPTH} levels deep, deeper than a NAR may be`,
    { path: path.toString() },
  );
}

function readSmall(path: Buffer, size: number): Uint8Array {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw ioError(e, path);
  }
  if (data.length !== size) throw changed(path);
  return data;
}

/**
 * A large file's bytes, read ahead: while the consumer handles one buffer the next read fills the
 * other. So each chunk is only valid until the next one is asked for (the blob writer, the one
 * consumer, lets the caller reuse bytes once `write` resolves). Two buffers for the whole file
 * instead of a fresh one per read also spare the GC a gigabyte of garbage per gigabyte added.
 */
async function* readLarge(path: Buffer, size: number): AsyncGenerator<Uint8Array> {
  const handle = await open(path, 'r').catch((e: unknown) => {
    throw ioError(e, path);
  });
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const readInto = (buf: Buffer, pos: number) => {
    const p = handle.read(buf, 0, CHUNK, pos);
    p.catch(() => {}); // awaited below, or abandoned with the generator
    return p;
  };
  let pending = readInto(buffers[0]!, 0);
  try {
    let pos = 0;
    for (let k = 0; ; k ^= 1) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      pos += bytesRead;
      if (pos > size) throw changed(path);
      pending = readInto(buffers[k ^ 1]!, pos);
      yield buffers[k]!.subarray(0, bytesRead);
    }
    if (pos !== size) throw changed(path);
  } finally {
    await pending.catch(() => {});
    await handle.close();
  }
}

/** ERR_IO: the file at `path` is not the size its stat said while it was read. */
export function changed(path: Buffer | string): FetchCacheError {
  return new FetchCacheError('ERR_IO', `file '${path.toString()}' changed while it was being read`, {
    path: path.toString(),
  });
}

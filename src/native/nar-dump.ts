/**
 * The NAR of a local path through the addon's dump capability (nar-dump.cc,
 * loaded by index.ts), for `dumpPath` (src/fs/dump.ts), which falls back to
 * its JavaScript walk without it; both produce the same bytes and the same
 * errors (tested on every tree case).
 *
 * Measured on the 2-core dev machine (bench/hash-path.mjs): the JavaScript walk
 * spends about three quarters of a 20,000-small-file hash in binding calls
 * (five per file) on the thread that also hashes; the addon makes the system
 * calls on another core and hands over 1 MiB at a time.
 */

import { lstatSync, readdirSync } from 'node:fs';
import { getSystemErrorMap } from 'node:util';
import type { FetchCacheError } from '../errors.js';
import { encodeStr, TOK_DIR, TOK_ENT, TOK_NAR, TOK_PAR } from '../nix/nar/wire.js';
import type { NarDump, NarDumpFailure, NarDumpHandle } from './index.js';

const SLASH = Buffer.from('/');

/** Bytes a worker thread fills per round trip. */
const FILL = 1 << 20;
/**
 * Subtrees of the root dumped at once (libuv runs 4 fills at a time), and buffers each may fill ahead:
 * 4 MiB ahead rides out the reads that miss the page cache while the consumer hashes a large file
 * (SHA-256 is the bound there: with 2 buffers the hashing thread sat idle ~40 ms per GiB, with 4 ~20).
 */
const WINDOW = 4;
const AHEAD = 4;

const NODE = encodeStr('node');

interface ErrorMakers {
  io(e: unknown, path: Buffer): FetchCacheError;
  unsupported(path: Buffer): FetchCacheError;
  changed(path: Buffer): FetchCacheError;
}

/**
 * One native dump with up to AHEAD filled buffers waiting for the consumer,
 * so a part of the NAR can be produced before its turn comes.
 */
class Part {
  private readonly handle: NarDumpHandle;
  /** Buffers this part holds (filled, being filled, or lent to the consumer); at most AHEAD. */
  private held = 0;
  private readonly filled: { buf: Buffer; n: number }[] = [];
  private inFlight: Promise<void> | undefined;
  private ended = false;
  private failure: unknown;
  private wake: (() => void) | undefined;

  constructor(
    private readonly native: NarDump,
    path: string | Buffer,
    nodeOnly: boolean,
    private readonly pool: Buffer[],
  ) {
    this.handle = native.open(path, nodeOnly);
    this.pump();
  }

  private pump(): void {
    if (this.inFlight !== undefined || this.ended || this.failure !== undefined) return;
    if (this.held === AHEAD) return;
    this.held++;
    const buf = this.pool.pop() ?? Buffer.allocUnsafe(FILL);
    this.inFlight = this.native.fill(this.handle, buf).then(
      (n) => {
        this.inFlight = undefined;
        if (n === 0) {
          this.ended = true;
          this.release(buf);
        } else this.filled.push({ buf, n });
        this.pump();
        this.wake?.();
      },
      (e: unknown) => {
        this.inFlight = undefined;
        this.failure = e;
        this.held--;
        this.wake?.();
      },
    );
  }

  /** The next filled buffer (give it back with `release`), or undefined at the end. */
  async next(): Promise<{ buf: Buffer; n: number } | undefined> {
    for (;;) {
      const got = this.filled.shift();
      if (got !== undefined) return got;
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  /** Gives a buffer back to the dump's pool, where the next fill of any part takes it. */
  release(buf: Buffer): void {
    this.held--;
    this.pool.push(buf);
    this.pump();
  }

  /** Waits for a running fill (never close under one), then closes. */
  async close(): Promise<void> {
    this.ended = true;
    if (this.inFlight !== undefined) await this.inFlight;
    this.native.close(this.handle);
  }
}

/**
 * The NAR of `path` through the addon, chunk by chunk into `sink` (which must
 * consume synchronously: buffers are reused); returns the NAR size. A root
 * directory with several entries is dumped WINDOW entries at a time, each on
 * its own worker thread, and written in order with the framing between them,
 * so both cores make system calls; anything else is one dump. `errors`
 * builds the same FetchCacheErrors as the JavaScript walk, and the error
 * reported is the first one in NAR order, as there.
 */
export async function nativeDumpPath(
  native: NarDump,
  path: string,
  sink: (chunk: Uint8Array) => void,
  errors: ErrorMakers,
): Promise<number> {
  const root = Buffer.from(path);
  const names = rootEntries(root);
  const parts: (Part | undefined)[] = [];
  // Fill buffers, shared by the parts: a part takes one per fill (at most AHEAD), gives it back once consumed.
  const pool: Buffer[] = [];
  let size = 0;
  const emit = (chunk: Uint8Array) => {
    size += chunk.byteLength;
    sink(chunk);
  };
  const drain = async (part: Part) => {
    for (;;) {
      const got = await part.next();
      if (got === undefined) return;
      emit(got.buf.subarray(0, got.n));
      part.release(got.buf);
    }
  };
  try {
    if (names === undefined || names.length < 2) {
      const whole = new Part(native, root, false, pool);
      parts.push(whole);
      await drain(whole);
      return size;
    }
    const child = (i: number) => Buffer.concat([root, SLASH, names[i]!]);
    for (let i = 0; i < Math.min(WINDOW, names.length); i++)
      parts[i] = new Part(native, child(i), true, pool);
    emit(Buffer.concat([TOK_NAR, TOK_DIR]));
    for (let i = 0; i < names.length; i++) {
      emit(Buffer.concat([TOK_ENT, encodeStr(names[i]!), NODE]));
      await drain(parts[i]!);
      emit(TOK_PAR);
      await parts[i]!.close();
      parts[i] = undefined;
      if (i + WINDOW < names.length) parts[i + WINDOW] = new Part(native, child(i + WINDOW), true, pool);
    }
    emit(TOK_PAR);
    return size;
  } catch (e) {
    if (!isFailure(e)) throw e;
    if (e.kind === 'unsupported') throw errors.unsupported(e.path);
    if (e.kind === 'changed') throw errors.changed(e.path);
    throw errors.io(systemError(e), e.path);
  } finally {
    for (const part of parts) await part?.close().catch(() => {});
  }
}

/**
 * The root's entry names, sorted bytewise, when it is a directory (read as
 * the JavaScript walk reads it); undefined otherwise, and when it cannot be
 * read (the single dump then reports why, as the walk would).
 */
function rootEntries(root: Buffer): Buffer[] | undefined {
  try {
    if (!lstatSync(root).isDirectory()) return undefined;
    return readdirSync(root, { encoding: 'buffer' }).sort(Buffer.compare);
  } catch {
    return undefined;
  }
}

function isFailure(e: unknown): e is NarDumpFailure {
  return typeof e === 'object' && e !== null && 'kind' in e && 'errno' in e && 'path' in e;
}

/** An Error shaped like Node's own fs errors (`ENOENT: no such file or directory, open '…'`). */
function systemError(f: NarDumpFailure): NodeJS.ErrnoException {
  const [code, description] = getSystemErrorMap().get(-f.errno) ?? [`E${f.errno}`, 'unknown error'];
  const p = f.path.toString();
  const e: NodeJS.ErrnoException = new Error(`${code}: ${description}, ${f.syscall} '${p}'`);
  e.code = code;
  e.errno = -f.errno;
  e.syscall = f.syscall;
  e.path = p;
  return e;
}

/**
 * The optional native addon (src/native/, built by `npm ci` through
 * scripts/build-native.mjs): a NAR dump of a local path on a libuv worker
 * thread. `dumpPath` uses it when it loaded and falls back to the JavaScript
 * walk otherwise; both produce the same bytes and the same errors (tested on
 * every tree case). `FETCH_CACHE_NO_NATIVE=1` turns the addon off.
 *
 * Measured on the 2-core dev machine (bench/hash-path.mjs): the JavaScript walk
 * spends about three quarters of a 20,000-small-file hash in binding calls
 * (five per file) on the thread that also hashes; the addon makes the system
 * calls on another core and hands over 1 MiB at a time.
 */

import { createRequire } from 'node:module';
import { getSystemErrorMap } from 'node:util';
import { FetchCacheError } from '../errors.js';

export type Handle = { readonly __nativeDump: unique symbol };

export interface NativeAddon {
  open(path: string): Handle;
  fill(handle: Handle, buffer: Buffer): Promise<number>;
  close(handle: Handle): void;
}

interface NativeFailure {
  kind: 'io' | 'unsupported' | 'changed';
  errno: number;
  syscall: string;
  path: Buffer;
}

let addon: NativeAddon | null | undefined;

/** The addon, or undefined when it is not built or turned off. */
export function nativeAddon(env: NodeJS.ProcessEnv = process.env): NativeAddon | undefined {
  if (env.FETCH_CACHE_NO_NATIVE === '1') return undefined;
  if (addon === undefined) {
    try {
      addon = createRequire(import.meta.url)('../../build/Release/fetch_cache_native.node') as NativeAddon;
    } catch {
      addon = null;
    }
  }
  return addon ?? undefined;
}

/** Bytes the worker thread fills per round trip. */
const FILL = 1 << 20;

/**
 * The NAR of `path` through the addon, chunk by chunk into `sink` (which must
 * consume synchronously: buffers are reused); returns the NAR size.
 * `errors` builds the same FetchCacheErrors as the JavaScript walk.
 */
export async function nativeDumpPath(
  native: NativeAddon,
  path: string,
  sink: (chunk: Uint8Array) => void,
  errors: {
    io(e: unknown, path: Buffer): FetchCacheError;
    unsupported(path: Buffer): FetchCacheError;
    changed(path: Buffer): FetchCacheError;
  },
): Promise<number> {
  const handle = native.open(path);
  const bufs = [Buffer.allocUnsafe(FILL), Buffer.allocUnsafe(FILL)];
  let turn = 0;
  let size = 0;
  let pending: Promise<number> | undefined = native.fill(handle, bufs[0]!);
  try {
    for (;;) {
      const n: number = await pending;
      pending = undefined;
      if (n === 0) break;
      const buf = bufs[turn]!;
      turn ^= 1;
      pending = native.fill(handle, bufs[turn]!);
      size += n;
      sink(buf.subarray(0, n));
    }
    return size;
  } catch (e) {
    if (e instanceof FetchCacheError || !isFailure(e)) throw e;
    if (e.kind === 'unsupported') throw errors.unsupported(e.path);
    if (e.kind === 'changed') throw errors.changed(e.path);
    throw errors.io(systemError(e), e.path);
  } finally {
    // Never close under a running fill: wait for it (its result no longer matters).
    if (pending !== undefined) await pending.catch(() => {});
    native.close(handle);
  }
}

function isFailure(e: unknown): e is NativeFailure {
  return typeof e === 'object' && e !== null && 'kind' in e && 'errno' in e && 'path' in e;
}

/** An Error shaped like Node's own fs errors (`ENOENT: no such file or directory, open '…'`). */
function systemError(f: NativeFailure): NodeJS.ErrnoException {
  const [code, description] = getSystemErrorMap().get(-f.errno) ?? [`E${f.errno}`, 'unknown error'];
  const p = f.path.toString();
  const e: NodeJS.ErrnoException = new Error(`${code}: ${description}, ${f.syscall} '${p}'`);
  e.code = code;
  e.errno = -f.errno;
  e.syscall = f.syscall;
  e.path = p;
  return e;
}

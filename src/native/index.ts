/**
 * The one loader of the optional native addon (src/native/*.cc, built by `npm ci` through
 * scripts/build-native.mjs). Every feature that has native code asks here for its capability, a
 * typed set of functions, and falls back to its JavaScript when it gets `undefined`:
 *
 *   - `narDump()`     a NAR dump of a local path on a libuv worker thread (nar-dump.cc, nar-dump.ts);
 *   - `gitPack()`     `git index-pack` of a received pack, and exact inflate of one pack object
 *                     (git-pack.cc; present where Node's headers carry zlib and OpenSSL);
 *   - `fileSending()` sendfile(2) and writability waits (send-file.cc; Linux only), used through
 *                     send-file.ts and src/fs/fd-sink.ts.
 *
 * A capability is `undefined` when the addon is not built, when `FETCH_CACHE_NO_NATIVE=1`, and when
 * the addon was built without that feature. Nothing else loads the addon.
 */

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Where node-gyp puts the addon: two levels above this module, from src/native/ as from dist/native/.
 */
export const ADDON_PATH = fileURLToPath(
  new URL('../../build/Release/fetch_cache_native.node', import.meta.url),
);

export type NarDumpHandle = { readonly __nativeDump: unique symbol };

/** src/native/nar-dump.cc. A failure rejects with a `NarDumpFailure`. */
export interface NarDump {
  /** `nodeOnly`: without the leading `nix-archive-1` (a part of a larger NAR). */
  open(path: string | Buffer, nodeOnly?: boolean): NarDumpHandle;
  /** Bytes written into `buffer`; 0 once the NAR is complete. */
  fill(handle: NarDumpHandle, buffer: Buffer): Promise<number>;
  /** Closes its descriptors; never while a fill runs. */
  close(handle: NarDumpHandle): void;
}

export interface NarDumpFailure {
  kind: 'io' | 'unsupported' | 'changed';
  errno: number;
  syscall: string;
  path: Buffer;
}

/** src/native/git-pack.cc. */
export interface GitPack {
  /** Throws an Error with code ERR_GIT_PACK (or ERR_GIT_DELTA) for a corrupt pack. */
  indexGitPack(
    pack: Buffer,
    external: (oid: string) => { type: string; data: Uint8Array } | undefined,
  ): { idx: Buffer; commits: (string | Buffer)[] };
  /** The zlib stream at the start of `data` when it inflates to exactly `size` bytes, else undefined. */
  inflateExact(data: Uint8Array, size: number): Buffer | undefined;
}

export type Poller = { readonly __nativePoller: unique symbol };

/** src/native/send-file.cc. */
export interface FileSending {
  /** Watch a dup of the socket descriptor `socketFd`. */
  pollWritable(socketFd: number): Poller;
  waitWritable(poller: Poller, callback: (status: number, events: number) => void): void;
  closePoller(poller: Poller): void;
  /** Bytes sent (> 0), or -errno (-EAGAIN: the output is full); 0 at the end of the input file. */
  sendFile(out: Poller | number, inFd: number, offset: number, length: number): number;
  /** Block until `fd` is writable: poll(2)'s revents, or -errno. */
  pollOut(fd: number): number;
}

const CAPABILITIES = {
  narDump: ['open', 'fill', 'close'],
  gitPack: ['indexGitPack', 'inflateExact'],
  fileSending: ['pollWritable', 'waitWritable', 'closePoller', 'sendFile', 'pollOut'],
} as const;

let loaded: Record<string, unknown> | null | undefined;

/** The addon's exports when it loads and is not turned off. */
function addon(env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  if (env.FETCH_CACHE_NO_NATIVE === '1') return undefined;
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(ADDON_PATH) as Record<string, unknown>;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

function capability<T>(name: keyof typeof CAPABILITIES, env: NodeJS.ProcessEnv): T | undefined {
  const a = addon(env);
  if (a === undefined || !CAPABILITIES[name].every((f) => typeof a[f] === 'function')) return undefined;
  return a as T;
}

export function narDump(env: NodeJS.ProcessEnv = process.env): NarDump | undefined {
  return capability<NarDump>('narDump', env);
}

export function gitPack(env: NodeJS.ProcessEnv = process.env): GitPack | undefined {
  return capability<GitPack>('gitPack', env);
}

export function fileSending(env: NodeJS.ProcessEnv = process.env): FileSending | undefined {
  return capability<FileSending>('fileSending', env);
}

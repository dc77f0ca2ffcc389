/**
 * The shape of a CLI sub-command and the pieces every command shares: the
 * global options of docs/cli.md, usage errors (exit 2) and output helpers. Commands
 * validate and normalise arguments, call the library and format the result;
 * they hold no logic of their own.
 */

import type { ParseArgsConfig } from 'node:util';
import type { Cache, CacheOptions } from '../cache.js';
import { parseByteCount } from '../fetchers/download-limits.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Options every command accepts, before or after the sub-command. */
export const GLOBAL_OPTIONS = {
  store: { type: 'string' },
  'blob-store': { type: 'string' },
  root: { type: 'string' },
  'store-dir': { type: 'string' },
  'cache-root': { type: 'string' },
  'cache-size': { type: 'string' },
  json: { type: 'boolean' },
  offline: { type: 'boolean' },
  quiet: { type: 'boolean' },
  'stalled-download-timeout': { type: 'string' },
  'max-download-size': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export interface GlobalOptions {
  /** The store URL (`--store`, else `FETCH_CACHE_STORE` unless `--root` is given). */
  store: string | undefined;
  /** Where a `postgres://` store keeps chunk bytes (`--blob-store`, else `FETCH_CACHE_BLOB_STORE`). */
  blobStore: string | undefined;
  /** The cache root (`--root`, else `FETCH_CACHE_ROOT`), when no store URL is given. */
  root: string | undefined;
  /** `--store-dir`, canonical; undefined: the one the root records. */
  storeDir: string | undefined;
  /** `--cache-root`: a near cache in front of a remote byte store (blob/near.ts). */
  cacheRoot?: string | undefined;
  /** `--cache-size`: its byte budget. */
  cacheBytes?: number | undefined;
  json: boolean;
  offline: boolean;
  quiet: boolean;
}

export interface CommandContext {
  globals: GlobalOptions;
  /** Positional arguments after the command words. */
  args: string[];
  /** Parsed option values (global and command options). */
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** The command words, e.g. `['hash', 'path']`. */
  words: string[];
  usage: string;
  summary: string;
  options: OptionSpec;
  run(ctx: CommandContext): Promise<void>;
}

/** Bad usage: unknown option, missing argument. The CLI exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function writeLine(stream: NodeJS.WritableStream, line: string): void {
  stream.write(`${line}\n`);
}

export function writeJson(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(`${JSON.stringify(value)}\n`);
}

export function stringOption(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`option --${name} needs a value`);
  return v;
}

/** A byte count option: `500000000`, `500M`, `2G`, `1TiB` (powers of 1024). */
export function byteCount(text: string, option: string): number {
  try {
    return parseByteCount(text);
  } catch {
    throw new UsageError(`--${option} takes a byte count like 500000000, 500M or 2G`);
  }
}

export function expectArgs(ctx: CommandContext, count: number, names: string): string[] {
  if (ctx.args.length !== count) throw new UsageError(`expected ${names}`);
  return ctx.args;
}

/** The store and blob store URLs of the global options, checked: a bad one is bad usage. */
export async function checkStoreOptions(ctx: CommandContext): Promise<void> {
  const { store, blobStore } = ctx.globals;
  if (store === undefined) {
    if (blobStore !== undefined) {
      const from = ctx.values['blob-store'] === undefined ? 'FETCH_CACHE_BLOB_STORE' : '--blob-store';
      throw new UsageError(
        `${from}: a blob store is for a postgres:// store (--store URL), not a cache root`,
      );
    }
    return;
  }
  const { checkStoreUrls } = await import('../backends/registry.js');
  try {
    checkStoreUrls(store, blobStore);
  } catch (e) {
    const message = (e as Error).message;
    const from = message.startsWith('bad blob store')
      ? ctx.values['blob-store'] === undefined
        ? 'FETCH_CACHE_BLOB_STORE'
        : '--blob-store'
      : ctx.values.store === undefined
        ? 'FETCH_CACHE_STORE'
        : '--store';
    throw new UsageError(`${from}: ${message}`);
  }
}

/**
 * Open the cache named by the global options, run `fn`, and always close it.
 * The store modules (and LevelDB's native addon) load only here, so commands
 * that need no store, like `hash path`, start fast. A store URL no backend
 * opens is bad usage.
 */
export async function withCache<T>(
  ctx: CommandContext,
  fn: (cache: Cache) => Promise<T>,
  options: Pick<CacheOptions, 'locationCache' | 'repairDatabase' | 'onDatabaseRepaired'> = {},
): Promise<T> {
  const { openCache } = await import('../cache.js');
  const { store, blobStore } = ctx.globals;
  await checkStoreOptions(ctx);
  const cache = await openCache({
    ...options,
    store,
    blobStore,
    root: store === undefined ? ctx.globals.root : undefined,
    storeDir: ctx.globals.storeDir,
    cacheRoot: ctx.globals.cacheRoot,
    cacheBytes: ctx.globals.cacheBytes,
    env: ctx.env,
    onWait: (owner) => {
      if (!ctx.globals.quiet) writeLine(ctx.stderr, `waiting for the cache root to be released by ${owner}…`);
    },
  });
  try {
    return await fn(cache);
  } catch (e) {
    // A read that found the database damaged: a coded error naming it (and what to do), not a crash.
    throw cache.maintenance.damage(e) ?? e;
  } finally {
    await cache.close();
  }
}

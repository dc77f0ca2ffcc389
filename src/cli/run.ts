/**
 * The `fetch-cache` command line (contract: docs/cli.md). Finds the sub-command,
 * parses global and command options together (globals may stand before or
 * after the sub-command), runs it, and maps failures to exit codes:
 * 1 for a FetchCacheError (one stderr line `CODE: message`), 2 for bad usage.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FetchCacheError } from '../errors.js';
import {
  MAX_DOWNLOAD_SIZE_ENV,
  parseByteCount,
  parseStalledDownloadTimeout,
  STALLED_DOWNLOAD_TIMEOUT_ENV,
} from '../fetchers/download-limits.js';
import { canonicalStoreDir } from '../nix/store-path.js';
import { type Command, type CommandContext, GLOBAL_OPTIONS, UsageError, writeLine } from './command.js';

// The commands of each module under commands/, loaded on first use.
const hash = async () => {
  const m = await import('./commands/hash.js');
  return [m.hashPathCommand, m.hashFileCommand];
};
const store = async () => {
  const m = await import('./commands/store.js');
  return [m.addCommand, m.narCommand, m.exportCommand, m.pathInfoCommand];
};
const fetch = async () => (await import('./commands/fetch.js')).FETCH_COMMANDS;
const keygen = async () => [(await import('./commands/keygen.js')).keygenCommand];
const lock = async () => {
  const m = await import('./commands/lock.js');
  return [m.lockCommand, m.updateCommand];
};
const serve = async () => [(await import('./commands/serve.js')).serveCommand];
const ops = async () => (await import('./commands/ops.js')).OPS_COMMANDS;

/**
 * Each command's first word, in the order of the usage text, and the module that holds the commands it
 * starts. Only the module of the command that runs is loaded: a fetch does not parse the server, `lock`
 * or `gc` (16 ms of a small fetch's 180 ms).
 */
export const COMMAND_WORDS: ReadonlyMap<string, () => Promise<readonly Command[]>> = new Map([
  ['hash', hash],
  ['add', store],
  ['fetch', fetch],
  ['nar', store],
  ['export', store],
  ['path-info', store],
  ['keygen', keygen],
  ['lock', lock],
  ['update', lock],
  ['serve', serve],
  ['gc', ops],
  ['verify', ops],
  ['stats', ops],
  ['migrate', ops],
]);

/** The commands that start with `word`. */
async function commandsOf(word: string): Promise<Command[]> {
  const load = COMMAND_WORDS.get(word);
  return load === undefined ? [] : (await load()).filter((c) => c.words[0] === word);
}

/** Every command, in the order of the usage text. */
export async function allCommands(): Promise<Command[]> {
  const all: Command[] = [];
  for (const word of COMMAND_WORDS.keys()) all.push(...(await commandsOf(word)));
  return all;
}

/** Global options that take a value, so their value is not mistaken for a command word. */
const VALUE_GLOBALS = new Set([
  '--store',
  '--blob-store',
  '--root',
  '--store-dir',
  '--cache-root',
  '--cache-size',
  '--stalled-download-timeout',
  '--max-download-size',
]);

/**
 * The download limits (src/fetchers/http.ts): a flag sets its variable for this run (every download client
 * reads it there), a bad value in either is bad usage.
 */
function applyDownloadLimits(values: CommandContext['values'], env: NodeJS.ProcessEnv): void {
  const limits = [
    ['stalled-download-timeout', STALLED_DOWNLOAD_TIMEOUT_ENV, parseStalledDownloadTimeout],
    ['max-download-size', MAX_DOWNLOAD_SIZE_ENV, parseByteCount],
  ] as const;
  for (const [flag, name, parse] of limits) {
    const given = values[flag];
    if (typeof given === 'string') env[name] = given;
    const v = env[name];
    if (v === undefined || v === '') continue;
    try {
      parse(v);
    } catch (e) {
      throw new UsageError(`${typeof given === 'string' ? `--${flag}` : name}: ${(e as Error).message}`);
    }
  }
}

async function findCommand(argv: string[]): Promise<{ command: Command; rest: string[] } | undefined> {
  const words: number[] = [];
  for (let i = 0; i < argv.length && words.length < 2; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (VALUE_GLOBALS.has(a)) i++;
    else if (!a.startsWith('-')) words.push(i);
  }
  if (words.length === 0) return undefined;
  for (const command of await commandsOf(argv[words[0]!]!)) {
    const n = command.words.length;
    if (words.length < n) continue;
    if (command.words.every((w, k) => argv[words[k]!] === w)) {
      const drop = new Set(words.slice(0, n));
      return { command, rest: argv.filter((_, i) => !drop.has(i)) };
    }
  }
  return undefined;
}

/** The package's version, from the package.json two levels above this file (src/cli/ and dist/cli/ alike). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  if (typeof pkg.version !== 'string') throw new TypeError('package.json has no version');
  return pkg.version;
}

async function usageText(): Promise<string> {
  const lines = [
    'usage: fetch-cache [--version] [--store URL [--blob-store URL]|--root DIR] [--store-dir DIR] [--cache-root DIR [--cache-size SIZE]] [--json] [--offline] [--quiet]',
    '                   [--stalled-download-timeout SECONDS] [--max-download-size BYTES] COMMAND …',
    '',
  ];
  for (const c of await allCommands()) lines.push(`  ${c.usage}`, `      ${c.summary}`);
  return lines.join('\n');
}

/**
 * A reader that went away (`path-info --all | head -1`): the command ends at once, quietly, with status 0
 * (a shell tool dies of SIGPIPE; Node gets EPIPE instead, which unhandled was a stack trace). Another
 * failure of stdout is one ERR_IO line, status 1. `nar` watches its own output and reports a cut NAR itself.
 */
function endOnClosedOutput(io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }): void {
  io.stderr.on('error', () => {});
  io.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (io.stdout.listenerCount('error') > 1) return;
    if (e.code === 'EPIPE') process.exit(0);
    io.stderr.write(`ERR_IO: cannot write to stdout: ${e.code ?? e.message}\n`);
    process.exit(1);
  });
}

/**
 * The store: `--store URL` or `--root DIR` (not both), else `FETCH_CACHE_STORE`, else `FETCH_CACHE_ROOT`
 * (else the default root). `--root DIR` is the store `level://DIR`. `--blob-store URL`, else
 * `FETCH_CACHE_BLOB_STORE`: where a `postgres://` store keeps chunk bytes.
 */
function storeOptions(
  values: CommandContext['values'],
  env: NodeJS.ProcessEnv,
): { store: string | undefined; root: string | undefined; blobStore: string | undefined } {
  const store = values.store as string | undefined;
  const root = values.root as string | undefined;
  const blobStore = (values['blob-store'] as string | undefined) ?? (env.FETCH_CACHE_BLOB_STORE || undefined);
  if (store !== undefined && root !== undefined) throw new UsageError('give --store or --root, not both');
  if (store !== undefined) return { store, root: undefined, blobStore };
  if (root !== undefined) return { store: undefined, root, blobStore };
  if (env.FETCH_CACHE_STORE) return { store: env.FETCH_CACHE_STORE, root: undefined, blobStore };
  return { store: undefined, root: env.FETCH_CACHE_ROOT, blobStore };
}

/** `--cache-root DIR` and `--cache-size SIZE` (a byte count: 500M, 20G); a size needs a root. */
function nearCacheOptions(values: CommandContext['values']): {
  cacheRoot: string | undefined;
  cacheBytes: number | undefined;
} {
  const cacheRoot = values['cache-root'] as string | undefined;
  const size = values['cache-size'] as string | undefined;
  if (size !== undefined && cacheRoot === undefined) throw new UsageError('--cache-size needs --cache-root');
  let cacheBytes: number | undefined;
  try {
    cacheBytes = size === undefined ? undefined : parseByteCount(size);
  } catch (e) {
    throw new UsageError(`--cache-size: ${(e as Error).message}`);
  }
  return { cacheRoot: cacheRoot === undefined ? undefined : resolve(cacheRoot), cacheBytes };
}

/**
 * `--store-dir`: absolute (else bad usage), canonical as Nix makes it (`/nix/store/` is `/nix/store`);
 * none given: the one the root records.
 */
function storeDirOption(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    return canonicalStoreDir(value);
  } catch (e) {
    throw new UsageError(`--store-dir: ${(e as Error).message}`);
  }
}

export async function main(
  argv: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; env: NodeJS.ProcessEnv },
): Promise<number> {
  endOnClosedOutput(io);
  const found = await findCommand(argv);
  if (found === undefined) {
    if (argv.includes('--version') && argv.every((a) => a === '--version' || a === '--json')) {
      const version = packageVersion();
      writeLine(io.stdout, argv.includes('--json') ? JSON.stringify({ version }) : `fetch-cache ${version}`);
      return 0;
    }
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      writeLine(io.stdout, await usageText());
      return argv.length === 0 ? 2 : 0;
    }
    writeLine(
      io.stderr,
      `fetch-cache: unknown command '${argv.filter((a) => !a.startsWith('-')).join(' ')}'`,
    );
    writeLine(io.stderr, await usageText());
    return 2;
  }
  const { command, rest } = found;
  try {
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...GLOBAL_OPTIONS, ...command.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message.split('\n')[0]! : String(e));
    }
    const values = parsed.values as CommandContext['values'];
    if (values.help) {
      writeLine(io.stdout, `usage: fetch-cache ${command.usage}\n\n${command.summary}`);
      return 0;
    }
    applyDownloadLimits(values, io.env);
    const ctx: CommandContext = {
      globals: {
        ...storeOptions(values, io.env),
        storeDir: storeDirOption(values['store-dir'] as string | undefined),
        ...nearCacheOptions(values),
        json: values.json === true,
        offline: values.offline === true,
        quiet: values.quiet === true,
      },
      args: parsed.positionals,
      values,
      stdout: io.stdout,
      stderr: io.stderr,
      env: io.env,
    };
    await command.run(ctx);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      writeLine(io.stderr, `fetch-cache ${command.words.join(' ')}: ${e.message}`);
      writeLine(io.stderr, `usage: fetch-cache ${command.usage}`);
      return 2;
    }
    if (e instanceof FetchCacheError) {
      writeLine(io.stderr, e.toLine());
      return 1;
    }
    throw e;
  }
}

/**
 * `serve [--bind HOST:PORT] [--sign-key FILE]… [--priority N]
 * [--upload-token-file FILE] [--max-upload-size BYTES]`: run the binary cache over the cache root until
 * SIGTERM/SIGINT, writing JSON log lines to stdout (with `--quiet` only
 * warnings and errors, no line per request). The cache root stays open
 * (and locked) while serving. A key or token file that its group or others
 * can read gets a `warning:` line on stderr (stdout carries only the JSON
 * log), but is still used.
 */

import { readFile } from 'node:fs/promises';
import { FetchCacheError } from '../../errors.js';
import { secretFileWarning } from '../../fs/secret-file.js';
import type { SecretKey } from '../../nix/signing.js';
import {
  byteCount,
  type Command,
  type CommandContext,
  stringOption,
  UsageError,
  withCache,
  writeLine,
} from '../command.js';

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new FetchCacheError('ERR_IO', `cannot read ${what} '${path}': ${(e as Error).message}`, {
      path,
      cause: e,
    });
  }
}

function warnIfShared(ctx: CommandContext, path: string, what: string): void {
  const warning = secretFileWarning(path, what);
  if (warning !== undefined && !ctx.globals.quiet) writeLine(ctx.stderr, `warning: ${warning}`);
}

export const serveCommand: Command = {
  words: ['serve'],
  usage:
    'serve [--bind HOST:PORT|unix:PATH] [--sign-key FILE]… [--priority N] [--upload-token-file FILE] [--max-upload-size BYTES] [--max-renders N] [--compression zstd|none]',
  summary: 'serve the cache as a Nix binary cache (substitute from it, `nix copy --to` it)',
  options: {
    bind: { type: 'string' },
    'sign-key': { type: 'string', multiple: true },
    priority: { type: 'string' },
    'upload-token-file': { type: 'string' },
    'max-upload-size': { type: 'string' },
    'max-renders': { type: 'string' },
    compression: { type: 'string' },
  },
  async run(ctx) {
    if (ctx.args.length !== 0) throw new UsageError('serve takes no arguments');
    const { parseBind, DEFAULT_BIND } = await import('../../server/server.js');
    const { createServer, serveUntilSignal } = await import('../../server/cache-server.js');
    const { jsonLogger } = await import('../../server/log.js');
    const { parseSecretKey } = await import('../../nix/signing.js');
    const bind = stringOption(ctx, 'bind') ?? DEFAULT_BIND;
    try {
      parseBind(bind);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const priorityText = stringOption(ctx, 'priority');
    if (priorityText !== undefined && !/^-?\d{1,9}$/.test(priorityText))
      throw new UsageError('--priority must be an integer');
    const rendersText = stringOption(ctx, 'max-renders');
    if (rendersText !== undefined && !/^[1-9]\d{0,5}$/.test(rendersText))
      throw new UsageError('--max-renders must be a positive integer');
    // zstd (the default) encodes NARs for clients that accept it when the `zstd` command is installed.
    const compression = stringOption(ctx, 'compression') ?? 'zstd';
    if (compression !== 'zstd' && compression !== 'none')
      throw new UsageError('--compression must be zstd or none');
    // An uploaded NAR (as sent, and decompressed) past this is refused with 413 (default 4 GiB).
    const uploadText = stringOption(ctx, 'max-upload-size');
    const maxUploadBytes = uploadText === undefined ? undefined : byteCount(uploadText, 'max-upload-size');
    if (maxUploadBytes === 0 || (maxUploadBytes !== undefined && !Number.isSafeInteger(maxUploadBytes)))
      throw new UsageError('--max-upload-size must be a positive byte count');
    const keyFiles = (ctx.values['sign-key'] as string[] | undefined) ?? [];
    const signingKeys: SecretKey[] = [];
    for (const file of keyFiles) {
      signingKeys.push(parseSecretKey((await readText(file, 'signing key')).trim()));
      warnIfShared(ctx, file, 'signing key file');
    }
    const tokenFile = stringOption(ctx, 'upload-token-file');
    let uploadToken: string | undefined;
    if (tokenFile !== undefined) {
      uploadToken = (await readText(tokenFile, 'upload token file')).trim();
      warnIfShared(ctx, tokenFile, 'upload token file');
      if (uploadToken === '')
        throw new FetchCacheError('ERR_IO', `upload token file '${tokenFile}' is empty`);
    }
    await withCache(
      ctx,
      async (cache) => {
        // --quiet: warnings and errors only, no line per request.
        const log = jsonLogger(ctx.stdout, undefined, ctx.globals.quiet ? 'warn' : 'debug');
        const server = createServer(cache, {
          priority: priorityText === undefined ? undefined : Number(priorityText),
          signingKeys,
          uploadToken,
          maxUploadBytes,
          maxRenders: rendersText === undefined ? undefined : Number(rendersText),
          compression,
          log,
        });
        await serveUntilSignal(server, bind, log);
      },
      // A server reads the same large blobs again and again: remember where their chunks are.
      { locationCache: 1 << 16 },
    );
  },
};

/**
 * Store commands over a cache root: `add`, `nar`, `export`, `path-info`.
 * Library modules load when a command runs, not at CLI start-up.
 */

import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type { Cache } from '../../cache.js';
import { FetchCacheError } from '../../errors.js';
import { formatStorePath, parseStorePath } from '../../nix/store-path.js';
import type { PathInfo } from '../../pathinfo/path-info.js';
import {
  type Command,
  type CommandContext,
  expectArgs,
  stringOption,
  withCache,
  writeJson,
  writeLine,
} from '../command.js';
import { pathInfoJson } from '../format.js';

/** The path info of a store path argument; ERR_NOT_FOUND when the cache does not have it. */
async function lookup(cache: Cache, arg: string): Promise<PathInfo> {
  const sp = parseStorePath(arg, cache.storeDir);
  const info = await cache.pathInfos.get(sp.digest);
  if (info === undefined || info.storePath.name !== sp.name) {
    throw new FetchCacheError('ERR_NOT_FOUND', `path '${arg}' is not in the cache`, { path: arg });
  }
  return info;
}

async function write(ctx: CommandContext, chunk: Uint8Array): Promise<void> {
  if (!ctx.stdout.write(chunk)) await once(ctx.stdout, 'drain');
}

export const addCommand: Command = {
  words: ['add'],
  usage: 'add PATH [--name N] [--flat]',
  summary: 'add a local path like `nix-store --add` (or, with --flat, `nix-store --add-fixed sha256`)',
  options: { name: { type: 'string' }, flat: { type: 'boolean' } },
  async run(ctx) {
    const [path] = expectArgs(ctx, 1, 'one PATH');
    await withCache(ctx, async (cache) => {
      const { addPath } = await import('../../fs/add.js');
      const info = await addPath(cache, path!, {
        name: stringOption(ctx, 'name'),
        flat: ctx.values.flat === true,
      });
      if (ctx.globals.json) writeJson(ctx.stdout, pathInfoJson(info, cache.storeDir));
      else writeLine(ctx.stdout, formatStorePath(info.storePath, cache.storeDir));
    });
  },
};

export const narCommand: Command = {
  words: ['nar'],
  usage: 'nar STORE-PATH',
  summary: "write the path's NAR to stdout, like `nix-store --dump`",
  options: {},
  async run(ctx) {
    const [arg] = expectArgs(ctx, 1, 'one STORE-PATH');
    await withCache(ctx, async (cache) => {
      const { renderNar, renderNarPieces } = await import('../../nar-render/render.js');
      const info = await lookup(cache, arg!);
      // Straight to a file, pipe or /dev/null: large files go out with sendfile (src/fs/fd-sink.ts).
      const { fdSink, stdoutError } = await import('../../fs/fd-sink.js');
      const sink = ctx.stdout === process.stdout ? fdSink(1, ctx.env) : undefined;
      if (sink === undefined) {
        // A reader that went away (EPIPE) fails a later write or the wait for drain: one line, exit 1.
        let failed: unknown;
        const onError = (e: unknown) => {
          failed ??= e;
        };
        ctx.stdout.on('error', onError);
        try {
          for await (const chunk of renderNar(info.node, cache)) {
            if (failed !== undefined) break;
            await write(ctx, chunk).catch(onError);
          }
          if (failed === undefined) await new Promise<void>((r) => ctx.stdout.write('', () => r()));
        } finally {
          ctx.stdout.off('error', onError);
        }
        if (failed !== undefined) throw stdoutError(failed);
        return;
      }
      for await (const piece of renderNarPieces(info.node, cache)) {
        if (piece instanceof Uint8Array) sink.write(piece);
        else {
          try {
            sink.send(piece);
          } finally {
            piece.release();
          }
        }
      }
    });
  },
};

export const exportCommand: Command = {
  words: ['export'],
  usage: 'export STORE-PATH DIR',
  summary: 'materialise the tree of a store path at DIR (which must not exist)',
  options: {},
  async run(ctx) {
    const [arg, dir] = expectArgs(ctx, 2, 'STORE-PATH and DIR');
    if (existsSync(dir!))
      throw new FetchCacheError('ERR_IO', `export target '${dir}' already exists`, { path: dir! });
    await withCache(ctx, async (cache) => {
      const { exportNode } = await import('../../fs/export.js');
      const info = await lookup(cache, arg!);
      await exportNode(info.node, dir!, cache);
    });
  },
};

export const pathInfoCommand: Command = {
  words: ['path-info'],
  usage: 'path-info [STORE-PATH…] [--all] [--json]',
  summary: 'show path infos, like `nix path-info`',
  options: { all: { type: 'boolean' } },
  async run(ctx) {
    await withCache(ctx, async (cache) => {
      const infos: PathInfo[] = [];
      if (ctx.values.all) for await (const info of cache.pathInfos.list()) infos.push(info);
      for (const arg of ctx.args) infos.push(await lookup(cache, arg));
      if (ctx.globals.json)
        writeJson(
          ctx.stdout,
          infos.map((i) => pathInfoJson(i, cache.storeDir)),
        );
      else for (const i of infos) writeLine(ctx.stdout, formatStorePath(i.storePath, cache.storeDir));
    });
  },
};

/**
 * `fetch url|tarball|git|nar`: the fetcher base behind the CLI contract
 * (docs/cli.md). Plain output is the store path; `--json` the path info plus
 * `url`, `cached` (no body was downloaded), `hash` (flat SRI) for url fetches
 * and `rev`/`revCount`/`lastModified` where the source knows them. With
 * `--to-nix-store` the path is then made valid in the local Nix store
 * (fs/nix-store.ts; `--json` adds `nixStore`: `added` or `valid`). Progress
 * goes to stderr through src/cli/progress.ts. Library modules load when the
 * command runs.
 */

import type { Cache } from '../../cache.js';
import type { FetchResult, FetchSpec } from '../../fetchers/types.js';
import { toSRI } from '../../nix/hash.js';
import {
  type Command,
  type CommandContext,
  expectArgs,
  type OptionSpec,
  stringOption,
  UsageError,
  withCache,
  writeLine,
} from '../command.js';
import { pathInfoJson } from '../format.js';
import { progressLine } from '../progress.js';

function mirrors(ctx: CommandContext): string[] {
  const v = ctx.values.mirror;
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((m) => {
    if (typeof m !== 'string') throw new UsageError('option --mirror needs a value');
    return m;
  });
}

/** What the command prints for `result` (docs/cli.md). */
function formatResult(
  ctx: CommandContext,
  cache: Cache,
  spec: FetchSpec,
  result: FetchResult,
  nixStore: 'added' | 'valid' | undefined,
): string {
  if (!ctx.globals.json) return `${result.path}\n`;
  const out = pathInfoJson(result.pathInfo, cache.storeDir);
  out.url = spec.type === 'path' ? spec.path : spec.url;
  out.cached = result.cached;
  if (result.hash !== undefined) out.hash = toSRI(result.hash);
  const m = result.metadata;
  if (m.rev !== undefined) out.rev = m.rev;
  if (m.revCount !== undefined) out.revCount = m.revCount;
  if (m.lastModified !== undefined) out.lastModified = m.lastModified;
  if (nixStore !== undefined) out.nixStore = nixStore;
  return `${JSON.stringify(out)}\n`;
}

async function runFetch(ctx: CommandContext, spec: FetchSpec): Promise<void> {
  await withCache(ctx, async (cache) => {
    const { Fetcher } = await import('../../fetchers/base.js');
    const progress = progressLine(ctx.stderr, ctx.globals.quiet);
    const fetcher = new Fetcher(cache, {
      offline: ctx.globals.offline,
      onProgress: (e) => progress.update(e),
      onWarning: (message) => {
        progress.clear();
        if (!ctx.globals.quiet) writeLine(ctx.stderr, `warning: ${message}`);
      },
    });
    let result: FetchResult;
    try {
      result = await fetcher.fetch(spec);
    } finally {
      progress.clear();
    }
    let nixStore: 'added' | 'valid' | undefined;
    if (ctx.values['to-nix-store'] === true) {
      const { copyToNixStore } = await import('../../fs/nix-store.js');
      nixStore = (await copyToNixStore(result.pathInfo, cache, { env: ctx.env })).added ? 'added' : 'valid';
    }
    ctx.stdout.write(formatResult(ctx, cache, spec, result, nixStore));
  });
}

const COMMON = {
  hash: { type: 'string' },
  name: { type: 'string' },
  'to-nix-store': { type: 'boolean' },
} as const satisfies OptionSpec;
const MIRROR = { mirror: { type: 'string', multiple: true } } as const satisfies OptionSpec;

export const fetchUrlCommand: Command = {
  words: ['fetch', 'url'],
  usage: 'fetch url URL [--hash H] [--name N] [--to-nix-store] [--executable] [--mirror URL]…',
  summary: 'fetch a file like `builtins.fetchurl` (flat hash; NAR hash with --executable)',
  options: { ...COMMON, ...MIRROR, executable: { type: 'boolean' } },
  async run(ctx) {
    const [url] = expectArgs(ctx, 1, 'one URL');
    await runFetch(ctx, {
      type: 'url',
      url: url!,
      hash: stringOption(ctx, 'hash'),
      name: stringOption(ctx, 'name'),
      executable: ctx.values.executable === true,
      mirrors: mirrors(ctx),
    });
  },
};

export const fetchTarballCommand: Command = {
  words: ['fetch', 'tarball'],
  usage: 'fetch tarball URL [--hash H] [--name N] [--to-nix-store] [--mirror URL]…',
  summary: 'fetch and unpack an archive like `builtins.fetchTarball` (NAR hash of the tree)',
  options: { ...COMMON, ...MIRROR },
  async run(ctx) {
    const [url] = expectArgs(ctx, 1, 'one URL');
    await runFetch(ctx, {
      type: 'tarball',
      url: url!,
      hash: stringOption(ctx, 'hash'),
      name: stringOption(ctx, 'name'),
      mirrors: mirrors(ctx),
    });
  },
};

export const fetchGitCommand: Command = {
  words: ['fetch', 'git'],
  usage:
    'fetch git URL [--ref R] [--rev SHA] [--all-refs] [--submodules] [--shallow] [--hash H] [--name N] [--to-nix-store]',
  summary: 'fetch the tree of a git commit like `builtins.fetchGit`',
  options: {
    ...COMMON,
    ref: { type: 'string' },
    rev: { type: 'string' },
    submodules: { type: 'boolean' },
    shallow: { type: 'boolean' },
    'all-refs': { type: 'boolean' },
  },
  async run(ctx) {
    const [url] = expectArgs(ctx, 1, 'one URL');
    const allRefs = ctx.values['all-refs'] === true;
    await runFetch(ctx, {
      type: 'git',
      url: url!,
      ref: stringOption(ctx, 'ref'),
      rev: stringOption(ctx, 'rev'),
      submodules: ctx.values.submodules === true,
      shallow: ctx.values.shallow === true,
      ...(allRefs ? { allRefs } : {}),
      hash: stringOption(ctx, 'hash'),
      name: stringOption(ctx, 'name'),
    });
  },
};

export const fetchNarCommand: Command = {
  words: ['fetch', 'nar'],
  usage: 'fetch nar URL --hash H [--name N] [--to-nix-store] [--mirror URL]…',
  summary: 'fetch a NAR (.nar, .nar.xz, .nar.zst, .nar.bz2, .nar.gz) and ingest its tree',
  options: { ...COMMON, ...MIRROR },
  async run(ctx) {
    const [url] = expectArgs(ctx, 1, 'one URL');
    const hash = stringOption(ctx, 'hash');
    if (hash === undefined) throw new UsageError('fetch nar needs --hash');
    await runFetch(ctx, {
      type: 'nar',
      url: url!,
      hash,
      name: stringOption(ctx, 'name'),
      mirrors: mirrors(ctx),
    });
  },
};

export const FETCH_COMMANDS: readonly Command[] = [
  fetchUrlCommand,
  fetchTarballCommand,
  fetchGitCommand,
  fetchNarCommand,
];

/**
 * `lock`, `update [NAME…]`, `lock --check`, `lock --from FILE` and
 * `lock --import FILE` (docs/cli.md): the pin synchronizer, checker, verifier
 * and importer of src/lock/ behind the command
 * line. The manifest defaults to `pins.toml` in the current directory, the
 * lockfile to `pins.lock` next to the manifest. The lockfile is written
 * (atomically) only when every pin resolved. `--json` prints the lockfile
 * (lock/update) or the report (--check/--from); a check or import that finds
 * a difference exits 1 with a coded line. Progress — pins done of pins to
 * resolve — goes to stderr on a TTY only. Library modules load in run().
 */

import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type ErrorCode, FetchCacheError } from '../../errors.js';
import type { GithubHosts, Manifest } from '../../lock/manifest.js';
import type { SyncReport } from '../../lock/sync.js';
import {
  type Command,
  type CommandContext,
  type OptionSpec,
  stringOption,
  UsageError,
  withCache,
  writeLine,
} from '../command.js';

const FILES = { manifest: { type: 'string' }, lock: { type: 'string' } } as const satisfies OptionSpec;
const TUNING = {
  concurrency: { type: 'string' },
  'github-base': { type: 'string' },
  'github-git-base': { type: 'string' },
} as const satisfies OptionSpec;

interface Paths {
  manifest: string;
  lock: string;
}

function paths(ctx: CommandContext): Paths {
  const manifest = stringOption(ctx, 'manifest') ?? 'pins.toml';
  return { manifest, lock: stringOption(ctx, 'lock') ?? join(dirname(manifest), 'pins.lock') };
}

function concurrency(ctx: CommandContext): number | undefined {
  const v = stringOption(ctx, 'concurrency');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`--concurrency must be a positive integer, not '${v}'`);
  return n;
}

function hosts(ctx: CommandContext): GithubHosts {
  const base = stringOption(ctx, 'github-base');
  const gitBase = stringOption(ctx, 'github-git-base');
  return { ...(base === undefined ? {} : { base }), ...(gitBase === undefined ? {} : { gitBase }) };
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new FetchCacheError('ERR_NOT_FOUND', `${what} '${file}' does not exist`, { path: file });
    throw new FetchCacheError('ERR_IO', `cannot read ${what} '${file}': ${(e as Error).message}`, {
      path: file,
    });
  }
}

/** `[3/100] name` redrawn in place on a TTY stderr. */
function pinProgress(ctx: CommandContext) {
  const tty = ctx.stderr as NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  const enabled = tty.isTTY === true && !ctx.globals.quiet;
  let done = 0;
  let shown = false;
  return {
    onPin(e: { name: string; done: boolean; total: number }) {
      if (!enabled) return;
      if (e.done) done++;
      const line = `[${done}/${e.total}] ${e.done ? 'resolved' : 'resolving'} ${e.name}`;
      ctx.stderr.write(`\r\x1b[K${line.slice(0, (tty.columns ?? 80) - 1)}`);
      shown = true;
    },
    clear() {
      if (shown) ctx.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
}

/** Fetcher options that print what does not stop a fetch (a dirty git tree) as `warning:` lines. */
function warnings(ctx: CommandContext, before: () => void = () => {}) {
  return {
    onWarning: (message: string) => {
      before();
      if (!ctx.globals.quiet) writeLine(ctx.stderr, `warning: ${message}`);
    },
  };
}

function summary(r: SyncReport): string {
  return `added ${r.added.length}, updated ${r.updated.length}, unchanged ${r.unchanged.length}, removed ${r.removed.length}`;
}

async function runSync(ctx: CommandContext, update: readonly string[] | true | undefined): Promise<void> {
  const p = paths(ctx);
  const limit = concurrency(ctx);
  const [
    { parseManifest },
    { readLockfile, writeLockfile, formatLockfile },
    { planSync, settledPlan, synchronize },
  ] = await Promise.all([
    import('../../lock/manifest.js'),
    import('../../lock/lockfile.js'),
    import('../../lock/sync.js'),
  ]);
  const manifest: Manifest = parseManifest(await readText(p.manifest, 'manifest'), p.manifest);
  const old = await readLockfile(p.lock);
  const progress = pinProgress(ctx);
  const options = { offline: ctx.globals.offline, update, concurrency: limit, github: hosts(ctx) };
  // Nothing to resolve (the everyday case): no cache to open, no fetcher to load.
  const result =
    settledPlan(planSync(manifest, old, options), old) ??
    (await withCache(ctx, async (cache) => {
      try {
        return await synchronize(manifest, old, {
          ...options,
          cache,
          onPin: (e) => progress.onPin(e),
          lockfile: resolve(p.lock),
          fetcher: warnings(ctx, () => progress.clear()),
        });
      } finally {
        progress.clear();
      }
    }));
  await writeLockfile(p.lock, result.lock);
  if (ctx.globals.json) {
    ctx.stdout.write(formatLockfile(result.lock));
    return;
  }
  const r = result.report;
  for (const name of r.added) writeLine(ctx.stdout, `added ${name}`);
  for (const name of r.updated) writeLine(ctx.stdout, `updated ${name}`);
  for (const name of r.removed) writeLine(ctx.stdout, `removed ${name}`);
  writeLine(ctx.stdout, `${p.lock}: ${summary(r)}`);
}

function fail(code: ErrorCode, message: string): never {
  throw new FetchCacheError(code, message);
}

async function runCheck(ctx: CommandContext): Promise<void> {
  const p = paths(ctx);
  const [{ parseLockfile }, { checkLock }] = await Promise.all([
    import('../../lock/lockfile.js'),
    import('../../lock/check.js'),
  ]);
  const lock = parseLockfile(await readText(p.lock, 'lockfile'), p.lock);
  const report = await withCache(ctx, (cache) =>
    checkLock(lock, {
      cache,
      offline: ctx.globals.offline,
      concurrency: concurrency(ctx),
      fetcher: warnings(ctx),
    }),
  );
  if (ctx.globals.json) writeLine(ctx.stdout, JSON.stringify(report));
  else {
    for (const pin of report.pins) {
      if (pin.status === 'ok') continue;
      const detail = pin.expected !== undefined ? ` (expected ${pin.expected}, got ${pin.actual})` : '';
      writeLine(ctx.stdout, `${pin.status} ${pin.name}: ${pin.reason ?? ''}${detail}`);
    }
    const bad = report.pins.filter((x) => x.status !== 'ok').length;
    writeLine(ctx.stdout, `checked ${report.checked} pins: ${bad === 0 ? 'all ok' : `${bad} not ok`}`);
  }
  const first = (s: string) => report.pins.filter((x) => x.status === s).map((x) => x.name);
  if (first('differs').length > 0)
    fail('ERR_HASH_MISMATCH', `lockfile check failed: ${first('differs').join(', ')} differ`);
  if (first('missing').length > 0)
    fail('ERR_OFFLINE', `lockfile check incomplete: ${first('missing').join(', ')} not in the cache`);
  if (first('error').length > 0)
    fail('ERR_INTEGRITY', `lockfile check failed: ${first('error').join(', ')} could not be fetched`);
}

async function runImport(ctx: CommandContext, from: string): Promise<void> {
  const { importLock } = await import('../../lock/import.js');
  const text = await readText(from, 'lock file');
  const base = hosts(ctx).base;
  const report = await withCache(ctx, (cache) =>
    importLock(text, {
      cache,
      offline: ctx.globals.offline,
      concurrency: concurrency(ctx),
      fetcher: warnings(ctx),
      file: from,
      ...(base === undefined ? {} : { githubBase: base }),
    }),
  );
  if (ctx.globals.json) writeLine(ctx.stdout, JSON.stringify(report));
  else {
    for (const i of report.inputs) {
      const detail =
        i.status === 'differs'
          ? ` expected ${i.expected} got ${i.actual}${i.reason === undefined ? '' : `: ${i.reason}`}`
          : i.reason !== undefined
            ? ` ${i.reason}`
            : '';
      writeLine(ctx.stdout, `${i.status} ${i.name} (${i.type})${detail}`);
    }
  }
  const bad = report.inputs.filter((i) => i.status === 'differs' || i.status === 'error').map((i) => i.name);
  if (bad.length > 0) fail('ERR_HASH_MISMATCH', `${from}: ${bad.join(', ')} did not verify`);
}

/** `lock --import FILE`: adopt a flake.lock's or sources.json's inputs as pins (src/lock/adopt.ts). */
async function runAdopt(ctx: CommandContext, from: string): Promise<void> {
  const p = paths(ctx);
  const [{ adoptLock }, { readLockfile, writeLockfile, writeTextAtomically }] = await Promise.all([
    import('../../lock/adopt.js'),
    import('../../lock/lockfile.js'),
  ]);
  const text = await readText(from, 'lock file');
  let manifestText: string | undefined;
  try {
    manifestText = await readText(p.manifest, 'manifest');
  } catch (e) {
    if (!(e instanceof FetchCacheError && e.code === 'ERR_NOT_FOUND')) throw e;
  }
  const old = await readLockfile(p.lock);
  const r = await withCache(ctx, (cache) =>
    adoptLock(text, manifestText, old, {
      cache,
      offline: ctx.globals.offline,
      concurrency: concurrency(ctx),
      github: hosts(ctx),
      fetcher: warnings(ctx),
      file: from,
      manifestFile: p.manifest,
      lockfile: resolve(p.lock),
    }),
  );
  const bad = r.report.inputs
    .filter((i) => i.status === 'differs' || i.status === 'error')
    .map((i) => i.name);
  if (ctx.globals.json) writeLine(ctx.stdout, JSON.stringify({ ...r.report, imported: r.imported }));
  else {
    for (const i of r.report.inputs) {
      if (i.status === 'ok') writeLine(ctx.stdout, `imported ${i.name} (${i.type})`);
      else if (i.status === 'skipped')
        writeLine(ctx.stdout, `skipped ${i.name} (${i.type}): ${i.reason ?? ''}`);
      else if (i.status === 'differs')
        writeLine(
          ctx.stdout,
          `differs ${i.name} (${i.type}) expected ${i.expected} got ${i.actual}${i.reason === undefined ? '' : `: ${i.reason}`}`,
        );
      else writeLine(ctx.stdout, `error ${i.name} (${i.type}) ${i.reason ?? ''}`);
    }
  }
  if (bad.length > 0)
    fail('ERR_HASH_MISMATCH', `${from}: ${bad.join(', ')} did not verify; nothing was written`);
  if (r.imported.length > 0) {
    await writeTextAtomically(p.manifest, r.manifestText);
    await writeLockfile(p.lock, r.lock);
  }
  if (!ctx.globals.json) {
    const skipped = r.report.inputs.length - r.imported.length;
    writeLine(ctx.stdout, `${p.manifest}, ${p.lock}: imported ${r.imported.length}, skipped ${skipped}`);
  }
}

export const lockCommand: Command = {
  words: ['lock'],
  usage:
    'lock [--manifest F] [--lock F] [--check | --from FILE | --import FILE] [--concurrency N] [--github-base URL] [--github-git-base URL]',
  summary:
    'resolve every manifest pin not yet locked (or changed) and prune removed ones; --check verifies the lockfile; --from verifies a flake.lock or npins sources.json, --import adds its inputs as pins',
  options: {
    ...FILES,
    ...TUNING,
    check: { type: 'boolean' },
    from: { type: 'string' },
    import: { type: 'string' },
  },
  async run(ctx) {
    if (ctx.args.length > 0) throw new UsageError(`unexpected argument '${ctx.args[0]}'`);
    const from = stringOption(ctx, 'from');
    const adopt = stringOption(ctx, 'import');
    const modes = [ctx.values.check === true, from !== undefined, adopt !== undefined].filter(Boolean);
    if (modes.length > 1) throw new UsageError('--check, --from and --import do not go together');
    if (ctx.values.check === true) return runCheck(ctx);
    if (from !== undefined) return runImport(ctx, from);
    if (adopt !== undefined) return runAdopt(ctx, adopt);
    return runSync(ctx, undefined);
  },
};

export const updateCommand: Command = {
  words: ['update'],
  usage:
    'update [NAME…] [--manifest F] [--lock F] [--concurrency N] [--github-base URL] [--github-git-base URL]',
  summary:
    're-resolve the named pins (all by default): a branch to its new head, a tag range to its newest match',
  options: { ...FILES, ...TUNING },
  async run(ctx) {
    return runSync(ctx, ctx.args.length > 0 ? ctx.args : true);
  },
};

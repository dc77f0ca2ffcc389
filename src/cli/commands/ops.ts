/**
 * Operating a store: `gc`, `verify` and `stats` (docs/cli.md), thin over
 * src/ops/, and `migrate`, which brings a `postgres://` store's schema up to
 * this version's (backends/registry.ts). `verify` exits 1 (ERR_INTEGRITY on
 * stderr) when damage remains after it ran — with `--repair`, when some path
 * could not be repaired —
 * and still prints its report on stdout first: one line per damaged path
 * with its count of problems (every problem with `--verbose` or `--json`).
 */

import { FetchCacheError } from '../../errors.js';
import { parseStorePath } from '../../nix/store-path.js';
import {
  byteCount,
  type Command,
  checkStoreOptions,
  stringOption,
  UsageError,
  withCache,
  writeJson,
  writeLine,
} from '../command.js';

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export const gcCommand: Command = {
  words: ['gc'],
  usage: 'gc [--max-size BYTES] [--keep-recent SECONDS]',
  summary:
    'delete what no path info reaches; with --max-size, then evict least recently used paths until the store fits',
  options: { 'max-size': { type: 'string' }, 'keep-recent': { type: 'string' } },
  async run(ctx) {
    if (ctx.args.length > 0) throw new UsageError('gc takes no arguments');
    const max = stringOption(ctx, 'max-size');
    const keep = stringOption(ctx, 'keep-recent');
    if (keep !== undefined && !/^\d+$/.test(keep)) throw new UsageError('--keep-recent takes whole seconds');
    await withCache(ctx, async (cache) => {
      const { gc } = await import('../../ops/gc.js');
      const report = await gc(cache, {
        maxSize: max === undefined ? undefined : byteCount(max, 'max-size'),
        keepRecentMs: keep === undefined ? undefined : Number(keep) * 1000,
        onWait: (why) => {
          if (!ctx.globals.quiet) writeLine(ctx.stderr, `gc: ${why}…`);
        },
      });
      if (ctx.globals.json) writeJson(ctx.stdout, report);
      else {
        const d = report.deleted;
        writeLine(
          ctx.stdout,
          `freed ${mib(report.freedBytes)}: ${d.chunks} chunks, ${d.chunkLists} chunk lists, ${d.directories} directories, ${d.pathInfos} paths evicted; ${report.paths} paths left in ${mib(report.storedBytes)}; ${report.compacted.packs} pack files rewritten (${mib(report.compacted.freedBytes)} of disk given back)`,
        );
      }
    });
  },
};

/**
 * One line per damaged path: a path whose every chunk is damaged has hundreds of problems, which
 * `--verbose` and `--json` list; this line counts them and shows the first.
 */
function damagedLine(d: { path: string; problems: string[]; repaired?: boolean; removed?: boolean }): string {
  const fate = d.repaired ? ' (repaired)' : d.removed ? ' (removed)' : '';
  const n = d.problems.length;
  const first = d.problems[0] ?? 'damaged';
  return `damaged: ${d.path}${fate}: ${n} problem${n === 1 ? '' : 's'}: ${first}${n > 1 ? '; …' : ''}`;
}

export const verifyCommand: Command = {
  words: ['verify'],
  usage: 'verify [STORE-PATH…|--all] [--remote] [--repair] [--verbose]',
  summary:
    're-hash everything the paths reach and check their NAR hashes; --repair fetches damaged paths again; one line per damaged path (--verbose: every problem); --remote lists the byte store for pack objects no chunk record names (--repair deletes them after the grace period)',
  options: {
    all: { type: 'boolean' },
    remote: { type: 'boolean' },
    repair: { type: 'boolean' },
    verbose: { type: 'boolean' },
  },
  async run(ctx) {
    const all = ctx.values.all === true;
    const remote = ctx.values.remote === true;
    if (all && ctx.args.length > 0) throw new UsageError('give STORE-PATHs or --all (not both)');
    if (!all && ctx.args.length === 0 && !remote) throw new UsageError('give STORE-PATHs, --all or --remote');
    const repair = ctx.values.repair === true;
    // With --repair, a database that cannot be opened or read is rebuilt first (backends/level-db.ts), and the
    // chunks the packs hold are indexed again (what the rebuild lost); then paths are checked as usual.
    let rebuilt: string | undefined;
    const onDatabaseRepaired = (how: string) => {
      rebuilt = how;
    };
    await withCache(
      ctx,
      async (cache) => {
        const { verify } = await import('../../ops/verify.js');
        if (remote) {
          const strays = await cache.maintenance.strays({ remove: repair });
          if (strays === undefined)
            throw new UsageError('verify --remote: this store keeps no chunk bytes in an object store');
          if (ctx.globals.json) writeJson(ctx.stdout, { strays });
          else {
            for (const key of strays.keys) writeLine(ctx.stdout, `stray: ${key}`);
            writeLine(
              ctx.stdout,
              `remote: ${strays.keys.length} pack objects (${mib(strays.bytes)}) no chunk record names${repair ? `, ${strays.removed} deleted (the others once past the grace period)` : ''}`,
            );
          }
          if (!all && ctx.args.length === 0) return;
        }
        if (rebuilt !== undefined) {
          const r = await cache.maintenance.reindex();
          if (!ctx.globals.quiet && !ctx.globals.json) {
            writeLine(
              ctx.stderr,
              `verify: the database was ${rebuilt}; ${r.chunks} chunks (${mib(r.bytes)}) found in the packs indexed again`,
            );
          }
        }
        const paths = all ? undefined : ctx.args.map((a) => parseStorePath(a, cache.storeDir));
        const report = await verify(cache, { paths, repair });
        if (rebuilt !== undefined) {
          report.damaged.unshift({
            path: cache.maintenance.database,
            problems: [`the database could not be opened or read as it was; it was ${rebuilt}`],
            repaired: true,
          });
        }
        if (ctx.globals.json) writeJson(ctx.stdout, report);
        else {
          for (const d of report.damaged) {
            writeLine(ctx.stdout, damagedLine(d));
            if (ctx.values.verbose === true) for (const p of d.problems) writeLine(ctx.stdout, `  ${p}`);
          }
          const seconds = report.durationMs / 1000;
          writeLine(
            ctx.stdout,
            `checked ${report.checked} paths (${mib(report.bytes)} of NAR in ${seconds.toFixed(1)} s), ${report.damaged.length} damaged`,
          );
        }
        const left = report.damaged.filter((d) => !d.repaired);
        if (left.length > 0) {
          const db = left.some((d) => d.path === cache.maintenance.database);
          const paths = left.length - (db ? 1 : 0);
          const what = `${db ? 'the database and ' : ''}${paths} of ${report.checked} paths`;
          throw new FetchCacheError(
            'ERR_INTEGRITY',
            `${what} are damaged${repair ? ' and could not be repaired' : ''}`,
          );
        }
      },
      repair ? { repairDatabase: true, onDatabaseRepaired } : {},
    );
  },
};

export const statsCommand: Command = {
  words: ['stats'],
  usage: 'stats',
  summary: 'paths, logical and stored bytes, dedup ratio, chunk count',
  options: {},
  async run(ctx) {
    if (ctx.args.length > 0) throw new UsageError('stats takes no arguments');
    await withCache(ctx, async (cache) => {
      const { storeStats } = await import('../../ops/stats.js');
      const s = await storeStats(cache);
      if (ctx.globals.json) writeJson(ctx.stdout, s);
      else {
        writeLine(ctx.stdout, `paths:         ${s.paths}`);
        writeLine(ctx.stdout, `logical bytes: ${s.logicalBytes} (${mib(s.logicalBytes)})`);
        writeLine(ctx.stdout, `stored bytes:  ${s.storedBytes} (${mib(s.storedBytes)})`);
        writeLine(ctx.stdout, `dedup ratio:   ${s.dedupRatio}`);
        writeLine(ctx.stdout, `chunks:        ${s.chunks}`);
        writeLine(ctx.stdout, `pack bytes:    ${s.packBytes} (${mib(s.packBytes)} on disk)`);
        writeLine(ctx.stdout, `unreachable:   ${s.unreachable.bytes} bytes (gc deletes them)`);
      }
    });
  },
};

export const migrateCommand: Command = {
  words: ['migrate'],
  usage: 'migrate',
  summary:
    "bring a postgres:// store's schema (--store URL) up to this version's: once per upgrade, from any machine",
  options: {},
  async run(ctx) {
    if (ctx.args.length > 0) throw new UsageError('migrate takes no arguments');
    const store = ctx.globals.store;
    if (store === undefined) {
      throw new UsageError('migrate needs a postgres:// store: --store URL (or FETCH_CACHE_STORE)');
    }
    await checkStoreOptions(ctx);
    const { migrateStore } = await import('../../backends/registry.js');
    const { from, to } = await migrateStore(store);
    if (ctx.globals.json) writeJson(ctx.stdout, { from, to });
    else if (from === to) writeLine(ctx.stdout, `the schema is up to date (version ${to})`);
    else writeLine(ctx.stdout, `migrated the schema from version ${from} to ${to}`);
  },
};

export const OPS_COMMANDS: Command[] = [gcCommand, verifyCommand, statsCommand, migrateCommand];

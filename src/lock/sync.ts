/**
 * The lockfile synchronizer (eka's load → reconcile → prune → write, ADR-0008):
 * given the manifest and the current lock, resolve what is new or changed,
 * keep what is unchanged exactly as it is (no network, not even a cache
 * lookup), drop pins that left the manifest, and with `update` re-resolve the
 * named pins (or all) from upstream: a branch to its current head, a tag
 * range to its newest match. Pins resolve in parallel, `concurrency` at a
 * time, through one shared fetcher. The first failing pin fails the whole run
 * with its name in the message (its code kept); the caller then writes
 * nothing, so a lockfile is never half-updated.
 */

import type { Cache } from '../cache.js';
import { FetchCacheError } from '../errors.js';
import type { FetcherOptions } from '../fetchers/base.js';
import { hashKind, impliedStorePath, LOCKFILE_VERSION, type LockedPin, type Lockfile } from './lockfile.js';
import { effectivePin, type GithubHosts, type Manifest, type Pin, pinDigest } from './manifest.js';
import { DEFAULT_CONCURRENCY, mapLimited } from './pool.js';

/** How `synchronize` runs: the cache, offline, which pins to re-resolve, concurrency, the lockfile's path. */
export interface SyncOptions {
  readonly cache: Cache;
  readonly offline?: boolean | undefined;
  /** Re-resolve these pins (`true`: all) even when their manifest entry did not change. */
  readonly update?: readonly string[] | true | undefined;
  /** Pins resolved at once (default 8). */
  readonly concurrency?: number | undefined;
  readonly github?: GithubHosts | undefined;
  /** Options of the shared fetcher (`update` uses `ttlSeconds: 0` unless given). */
  readonly fetcher?: FetcherOptions | undefined;
  /** The lockfile being synchronized (an absolute path): recorded with each pin it resolves (resolve.ts). */
  readonly lockfile?: string | undefined;
  /** Told when a pin starts / finishes resolving (progress). */
  readonly onPin?:
    | ((event: { name: string; done: boolean; index: number; total: number }) => void)
    | undefined;
}

/** The pin names `synchronize` added, updated, kept unchanged and removed. */
export interface SyncReport {
  readonly added: string[];
  readonly updated: string[];
  readonly unchanged: string[];
  readonly removed: string[];
}

/** What `synchronize` returns: the new lockfile (not yet written), its report, and whether it changed. */
export interface SyncResult {
  readonly lock: Lockfile;
  readonly report: SyncReport;
  /** Whether the new lock differs from the old one. */
  readonly changed: boolean;
}

function sameEntry(a: LockedPin, b: LockedPin): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof LockedPin>;
  for (const k of keys) if (a[k] !== b[k]) return false;
  return true;
}

/**
 * A kept entry must be what its own hash says: a hand-edited `narHash` / `hash` that no longer makes its
 * `storePath` is refused here, not carried along until `lock --check` (re-resolve it with `update NAME`).
 */
function contradiction(name: string, entry: LockedPin): void {
  const implied = impliedStorePath(entry);
  if (implied === entry.storePath) return;
  const kind = hashKind(entry);
  throw new FetchCacheError(
    'ERR_BAD_LOCKFILE',
    `pins.${name}: ${kind} ${entry[kind]} makes ${implied}, not the recorded storePath ${entry.storePath}; fix the entry or re-resolve it with \`fetch-cache update ${name}\``,
    { path: name, expected: implied, actual: entry.storePath },
  );
}

export interface SyncPlan {
  /** Pins to resolve (new, changed or forced by `update`), each with its `pinName`. */
  readonly todo: Pin[];
  /** The entries kept as they are. */
  readonly kept: Record<string, LockedPin>;
  readonly report: SyncReport;
}

/** What a synchronization must do, without any IO: which pins to resolve, which to keep, which to prune. */
export function planSync(
  manifest: Manifest,
  lock: Lockfile | undefined,
  options: Pick<SyncOptions, 'update' | 'github'> = {},
): SyncPlan {
  const old = lock?.pins ?? {};
  const update = options.update;
  if (Array.isArray(update)) {
    for (const name of update) {
      if (!manifest.pins.has(name))
        throw new FetchCacheError('ERR_NOT_FOUND', `no pin named '${name}' in the manifest`, { path: name });
    }
  }
  const forced = (name: string) => update === true || (Array.isArray(update) && update.includes(name));
  const todo: Pin[] = [];
  const kept: Record<string, LockedPin> = {};
  const report: SyncReport = { added: [], updated: [], unchanged: [], removed: [] };
  for (const [name, pin] of manifest.pins) {
    const prev = old[name];
    const current =
      prev !== undefined && prev.manifestDigest === pinDigest(effectivePin(pin, options.github));
    if (current && !forced(name)) {
      contradiction(name, prev);
      kept[name] = prev;
      report.unchanged.push(name);
    } else todo.push(pin.pinName === name ? pin : { ...pin, pinName: name }); // the map key names it
  }
  for (const name of Object.keys(old)) if (!manifest.pins.has(name)) report.removed.push(name);
  return { todo, kept, report };
}

/** The result of a plan with nothing to resolve (no cache or network needed), else undefined. */
export function settledPlan(plan: SyncPlan, lock: Lockfile | undefined): SyncResult | undefined {
  if (plan.todo.length > 0) return undefined;
  const report = plan.report;
  for (const list of Object.values(report)) list.sort();
  const changed = report.removed.length > 0 || lock === undefined;
  return { lock: { version: LOCKFILE_VERSION, pins: plan.kept }, report, changed };
}

/**
 * Brings a lockfile in line with its manifest, as `fetch-cache lock` does: resolves new and changed pins
 * (and those `update` names), keeps unchanged ones without network, drops removed ones. One failing pin
 * fails the whole call; nothing is written (`writeLockfile` does that).
 */
export async function synchronize(
  manifest: Manifest,
  lock: Lockfile | undefined,
  options: SyncOptions,
): Promise<SyncResult> {
  const old = lock?.pins ?? {};
  const update = options.update;
  const plan = planSync(manifest, lock, options);
  const idle = settledPlan(plan, lock);
  if (idle !== undefined) return idle;
  const { todo, kept: pins, report } = plan;
  // Loaded only when something must be resolved: the fetchers' dependencies cost more start-up than a no-op run.
  const [{ Fetcher }, { resolvePin }] = await Promise.all([
    import('../fetchers/base.js'),
    import('./resolve.js'),
  ]);
  const fetcher = new Fetcher(options.cache, {
    ...(update !== undefined ? { ttlSeconds: 0 } : {}),
    ...options.fetcher,
    offline: options.offline === true,
  });
  const total = todo.length;
  const resolved = await mapLimited(todo, options.concurrency ?? DEFAULT_CONCURRENCY, async (pin, index) => {
    options.onPin?.({ name: pin.pinName, done: false, index, total });
    try {
      return await resolvePin(pin, {
        cache: options.cache,
        offline: options.offline,
        fetcher,
        github: options.github,
        lockfile: options.lockfile,
      });
    } catch (e) {
      if (e instanceof FetchCacheError) {
        throw new FetchCacheError(e.code, `pin '${pin.pinName}': ${e.message}`, {
          ...(e.expected === undefined ? {} : { expected: e.expected }),
          ...(e.actual === undefined ? {} : { actual: e.actual }),
          path: e.path ?? pin.pinName,
          cause: e,
        });
      }
      throw e;
    } finally {
      options.onPin?.({ name: pin.pinName, done: true, index, total });
    }
  });
  todo.forEach((pin, i) => {
    const entry = resolved[i]!;
    const prev = old[pin.pinName];
    pins[pin.pinName] = entry;
    if (prev === undefined) report.added.push(pin.pinName);
    else if (sameEntry(prev, entry)) report.unchanged.push(pin.pinName);
    else report.updated.push(pin.pinName);
  });
  for (const list of Object.values(report)) list.sort();
  const changed =
    report.added.length + report.updated.length + report.removed.length > 0 || lock === undefined;
  return { lock: { version: LOCKFILE_VERSION, pins }, report, changed };
}

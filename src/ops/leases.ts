/**
 * Leases that make gc safe while fetches, uploads and `serve` keep running,
 * in any process on the root: records in the `ops` sublevel of the cache's
 * database, which every process reaches (storage/shared-db.ts).
 *
 *   ops/lease/<id> → {"kind":"ingest"|"use","pid","startedAt","path"?}
 *   ops/gc/<id>    → {"pid","startedAt"}       a gc in its exclusive phase
 *   ops/gcrun/<id> → {"pid","startedAt"}       a gc running at all (one at a time)
 *
 * The protocol (a Dekker-style handshake over one linearisable store):
 * an ingest writes its lease, then looks for a gc record; if it finds one it
 * withdraws, waits for the gc to end, and tries again. A gc writes its
 * record, then waits until every ingest lease it can see has ended. So an
 * ingest either started before the gc looked (the gc waits for it and then
 * sees its path info) or it sees the gc record and does not start — no
 * ingest ever reuses or writes data while the gc deletes. A record whose
 * process is gone (checked with `kill(pid, 0)`, so the root must be on one
 * machine and in one pid namespace) is stale and removed: a SIGKILLed
 * process never blocks gc or ingest. "use" leases mark paths a reader
 * (a NAR being served) holds; gc never evicts those.
 *
 * One gc at a time (`takeGcTurn`): a gc writes its `gcrun` record, then
 * looks for another live one; if it finds one it withdraws, waits and tries
 * again, so of two gcs that both write and look, at least one sees the
 * other (and when both do, both withdraw and retry after a random pause).
 * Two compactions at once lost live chunks: each one's view of the index
 * was taken before the other moved rows into its own pack (docs/errors.md
 * ERR_STORE_LOCKED says what a gc that waits too long reports). A second gc
 * waits rather than leaving at once, as Nix's gc waits for its lock: an
 * overlapping cron job still gets the `--max-size` it asked for.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { hostname } from 'node:os';
import type { Cache } from '../cache.js';
import { FetchCacheError } from '../errors.js';
import { binarySublevel, type KV } from '../storage/kv.js';
import { processRunning } from '../storage/process.js';

export const OPS_SUBLEVEL = 'ops';

export interface LeaseRecord {
  readonly id: string;
  readonly kind: 'ingest' | 'use' | 'gc';
  readonly pid: number;
  readonly host: string;
  readonly startedAt: number;
  /** Hex store path digest, for `use` leases. */
  readonly path?: string | undefined;
}

export interface WaitOptions {
  /** Longest wait for a running gc (default 10 minutes). */
  readonly timeoutMs?: number | undefined;
  /** Told once when the wait starts. */
  readonly onWait?: ((why: string) => void) | undefined;
}

const HOST = hostname();
let counter = 0;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const utf8 = (s: string) => Buffer.from(s, 'utf8');

function opsKV(cache: Pick<Cache, 'db'>): KV {
  return binarySublevel(cache.db, OPS_SUBLEVEL);
}

function newId(): string {
  return `${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Whether the process of a record still runs (records from other hosts count as running). */
export function isAlive(record: Pick<LeaseRecord, 'pid' | 'host'>): boolean {
  if (record.host !== HOST) return true;
  if (record.pid === process.pid) return true;
  return processRunning(record.pid);
}

async function put(kv: KV, key: string, record: LeaseRecord): Promise<void> {
  await kv.put(utf8(key), utf8(JSON.stringify(record)));
}

/** Records under `prefix` (`lease/` or `gc/`); stale ones are deleted on the way. */
async function list(kv: KV, prefix: string): Promise<LeaseRecord[]> {
  const out: LeaseRecord[] = [];
  const stale: Uint8Array[] = [];
  for await (const [key, value] of kv.iterator({ gte: utf8(prefix), lt: utf8(`${prefix}\xff`) })) {
    let record: LeaseRecord | undefined;
    try {
      record = JSON.parse(Buffer.from(value).toString('utf8')) as LeaseRecord;
    } catch {
      record = undefined;
    }
    if (record === undefined || !isAlive(record)) stale.push(key);
    else out.push(record);
  }
  if (stale.length > 0) await kv.batch(stale.map((key) => ({ type: 'del' as const, key })));
  return out;
}

export function listLeases(cache: Pick<Cache, 'db'>): Promise<LeaseRecord[]> {
  return list(opsKV(cache), 'lease/');
}

/** Running gcs (`gcrun` records), stale ones deleted on the way. */
export function listGcRuns(cache: Pick<Cache, 'db'>): Promise<LeaseRecord[]> {
  return list(opsKV(cache), 'gcrun/');
}

export function listGcs(cache: Pick<Cache, 'db'>): Promise<LeaseRecord[]> {
  return list(opsKV(cache), 'gc/');
}

/**
 * Take a lease of `kind` (an ingest, or a reader holding `path`), waiting
 * while a gc runs. Returns the function that ends it.
 */
export async function takeLease(
  cache: Pick<Cache, 'db'>,
  kind: 'ingest' | 'use',
  path?: string,
  options: WaitOptions = {},
): Promise<() => Promise<void>> {
  const kv = opsKV(cache);
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  let told = false;
  for (;;) {
    const id = newId();
    const key = `lease/${id}`;
    await put(kv, key, { id, kind, pid: process.pid, host: HOST, startedAt: Date.now(), path });
    // A reader only needs its path protected from eviction; a gc never deletes reachable data.
    const gcs = kind === 'ingest' ? await list(kv, 'gc/') : [];
    if (gcs.length === 0) {
      let ended = false;
      return async () => {
        if (ended) return;
        ended = true;
        await kv.del(utf8(key));
      };
    }
    await kv.del(utf8(key));
    if (Date.now() >= deadline) {
      throw new FetchCacheError(
        'ERR_STORE_LOCKED',
        `gc by pid ${gcs[0]!.pid} has been running since ${new Date(gcs[0]!.startedAt).toISOString()}`,
      );
    }
    if (!told) {
      told = true;
      options.onWait?.(`waiting for gc by pid ${gcs[0]!.pid} to finish`);
    }
    await sleep(50 + Math.random() * 100);
  }
}

/** The databases whose ingest lease the current async context holds (nested ingests reuse it). */
const holding = new AsyncLocalStorage<ReadonlySet<object>>();

/**
 * Run `fn` under an ingest lease: no gc deletes anything while it writes.
 * Re-entrant: a fetch started inside another's lease (same database, same
 * async context) runs under that lease instead of waiting on a gc that
 * waits on its caller.
 */
export async function withIngestLease<T>(
  cache: Pick<Cache, 'db'>,
  fn: () => Promise<T>,
  options: WaitOptions = {},
): Promise<T> {
  const held = holding.getStore();
  if (held?.has(cache.db)) return fn();
  const end = await takeLease(cache, 'ingest', undefined, options);
  try {
    return await holding.run(new Set([...(held ?? []), cache.db]), fn);
  } finally {
    await end();
  }
}

/**
 * Start a gc's exclusive phase: write the gc record, then wait (bounded) for
 * the ingest leases taken before it to end. Returns the function that ends it.
 */
export async function beginExclusive(
  cache: Pick<Cache, 'db'>,
  options: WaitOptions = {},
): Promise<() => Promise<void>> {
  const kv = opsKV(cache);
  const id = newId();
  const key = `gc/${id}`;
  await put(kv, key, { id, kind: 'gc', pid: process.pid, host: HOST, startedAt: Date.now() });
  const end = async () => {
    await kv.del(utf8(key));
  };
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  let told = false;
  try {
    for (;;) {
      const ingests = (await list(kv, 'lease/')).filter((l) => l.kind === 'ingest');
      if (ingests.length === 0) return end;
      if (Date.now() >= deadline) {
        throw new FetchCacheError(
          'ERR_STORE_LOCKED',
          `gc gave up waiting for ${ingests.length} running fetch(es), e.g. pid ${ingests[0]!.pid}`,
        );
      }
      if (!told) {
        told = true;
        options.onWait?.(`waiting for ${ingests.length} running fetch(es) to finish`);
      }
      await sleep(50);
    }
  } catch (e) {
    await end();
    throw e;
  }
}

/**
 * Wait until no other gc runs, then hold the turn until the returned
 * function is called. Bounded by `timeoutMs` (ERR_STORE_LOCKED past it).
 */
export async function takeGcTurn(
  cache: Pick<Cache, 'db'>,
  options: WaitOptions = {},
): Promise<() => Promise<void>> {
  const kv = opsKV(cache);
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  let told = false;
  for (;;) {
    const id = newId();
    const key = `gcrun/${id}`;
    await put(kv, key, { id, kind: 'gc', pid: process.pid, host: HOST, startedAt: Date.now() });
    const others = (await list(kv, 'gcrun/')).filter((r) => r.id !== id);
    if (others.length === 0) {
      let ended = false;
      return async () => {
        if (ended) return;
        ended = true;
        await kv.del(utf8(key));
      };
    }
    await kv.del(utf8(key));
    const other = others[0]!;
    if (Date.now() >= deadline) {
      throw new FetchCacheError(
        'ERR_STORE_LOCKED',
        `another gc (pid ${other.pid}) has been running since ${new Date(other.startedAt).toISOString()}`,
      );
    }
    if (!told) {
      told = true;
      options.onWait?.(`waiting for gc by pid ${other.pid} to finish`);
    }
    await sleep(100 + Math.random() * 200);
  }
}

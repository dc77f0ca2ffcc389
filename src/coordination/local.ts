/**
 * Coordination (service.ts) for a cache root on one machine, which any
 * number of processes open at once: lease records in the `ops` sublevel and
 * last uses in the `atime` sublevel of the root's database, which every
 * process reaches (storage/shared-db.ts); the change stamp is
 * `<root>/pathinfo.gen` (change-stamp.ts); pending uploads wait in the
 * memory of the server that received them (memory.ts).
 *
 *   ops/lease/<id> → {"kind":"ingest"|"use","pid","host","startedAt","path"?}
 *   ops/gc/<id>    → {"pid","host","startedAt"}   a gc in its exclusive phase
 *   ops/gcrun/<id> → {"pid","host","startedAt"}   a gc running at all (one at a time)
 *   atime/<20-byte store path digest> → u64 LE milliseconds since the epoch
 *
 * The protocol (a Dekker-style handshake over one linearisable store):
 * an ingest writes its lease, then looks for a gc record; if it finds one it
 * withdraws, waits for the gc to end, and tries again (unless an ingest of
 * its own process that began before the gc still runs: then it keeps its
 * lease and goes ahead, service.ts says why). A gc writes its
 * record, then waits until every ingest lease it can see has ended. So an
 * ingest either started before the gc looked (the gc waits for it and then
 * sees its path info) or it sees the gc record and does not start — no
 * ingest ever reuses or writes data while the gc deletes. A record whose
 * process is gone (checked with `kill(pid, 0)`, so the root must be on one
 * machine and in one pid namespace) is stale and removed: a SIGKILLed
 * process never blocks gc or ingest. "use" leases mark paths a reader
 * (a NAR being served) holds; gc never evicts those.
 *
 * One gc at a time (`gcTurn`): a gc writes its `gcrun` record, then
 * looks for another live one; if it finds one it withdraws, waits and tries
 * again, so of two gcs that both write and look, at least one sees the
 * other (and when both do, both withdraw and retry after a random pause).
 * Two compactions at once lost live chunks: each one's view of the index
 * was taken before the other moved rows into its own pack (docs/errors.md
 * ERR_STORE_LOCKED says what a gc that waits too long reports). A second gc
 * waits rather than leaving at once, as Nix's gc waits for its lock: an
 * overlapping cron job still gets the `--max-size` it asked for.
 *
 * Uses are written behind the caller (`recordUse`): noted uses go out in one
 * batch on the next turn of the event loop, the latest time per path, so a
 * cache hit makes no write on its way to the answer.
 */

import { hostname } from 'node:os';
import { FetchCacheError } from '../errors.js';
import { binarySublevel, type KV } from '../storage/kv.js';
import { processRunning } from '../storage/process.js';
import { LocalChangeStamp } from './change-stamp.js';
import { MemoryPendingUploads, WAIT_TIMEOUT_MS } from './memory.js';
import type { Coordination, WaitOptions } from './service.js';

export const OPS_SUBLEVEL = 'ops';
export const ATIME_SUBLEVEL = 'atime';

export interface LeaseRecord {
  readonly id: string;
  readonly kind: 'ingest' | 'use' | 'gc';
  readonly pid: number;
  readonly host: string;
  readonly startedAt: number;
  /** Hex store path digest, for `use` leases. */
  readonly path?: string | undefined;
}

const HOST = hostname();
let counter = 0;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const utf8 = (s: string) => Buffer.from(s, 'utf8');

function newId(): string {
  return `${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Whether the process of a record still runs (records from other hosts count as running). */
export function isAlive(record: Pick<LeaseRecord, 'pid' | 'host'>): boolean {
  if (record.host !== HOST) return true;
  if (record.pid === process.pid) return true;
  return processRunning(record.pid);
}

export function encodeAtime(ms: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, Math.floor(ms))), true);
  return out;
}

export function decodeAtime(bytes: Uint8Array): number {
  if (bytes.length !== 8) return 0;
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

export class LocalCoordination implements Coordination {
  readonly changes: LocalChangeStamp;
  readonly uploads = new MemoryPendingUploads();
  private readonly ops: KV;
  private readonly atime: KV;
  private pending = new Map<string, number>();
  private writing: Promise<void> | undefined;
  /** Running ingests of this handle that took their lease while no gc waited (a waiting gc waits for them). */
  private before = 0;

  /** `db`: the root's database (its `ops` and `atime` sublevels); `stampFile`: `<root>/pathinfo.gen`. */
  constructor(db: KV, stampFile?: string) {
    this.ops = binarySublevel(db, OPS_SUBLEVEL);
    this.atime = binarySublevel(db, ATIME_SUBLEVEL);
    this.changes = new LocalChangeStamp(stampFile);
  }

  async ingest<T>(fn: () => Promise<T>, options: WaitOptions = {}): Promise<T> {
    let joined = false;
    const end = await this.takeLease('ingest', undefined, options, () => {
      joined = this.before > 0;
      return joined;
    });
    if (!joined) this.before++;
    try {
      return await fn();
    } finally {
      if (!joined) this.before--;
      await end();
    }
  }

  /** Write the gc record, then wait (bounded) for the ingest leases taken before it to end. */
  async exclusive(options: WaitOptions = {}): Promise<() => Promise<void>> {
    const id = newId();
    const key = `gc/${id}`;
    await this.put(key, { id, kind: 'gc', pid: process.pid, host: HOST, startedAt: Date.now() });
    const end = async () => {
      await this.ops.del(utf8(key));
    };
    const deadline = Date.now() + (options.timeoutMs ?? WAIT_TIMEOUT_MS);
    let told = false;
    try {
      for (;;) {
        const ingests = (await this.list('lease/')).filter((l) => l.kind === 'ingest');
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

  async gcTurn(options: WaitOptions = {}): Promise<() => Promise<void>> {
    const deadline = Date.now() + (options.timeoutMs ?? WAIT_TIMEOUT_MS);
    let told = false;
    for (;;) {
      const id = newId();
      const key = `gcrun/${id}`;
      await this.put(key, { id, kind: 'gc', pid: process.pid, host: HOST, startedAt: Date.now() });
      const others = (await this.list('gcrun/')).filter((r) => r.id !== id);
      if (others.length === 0) return this.ender(key);
      await this.ops.del(utf8(key));
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

  hold(storePathDigest: Uint8Array): Promise<() => Promise<void>> {
    return this.takeLease('use', Buffer.from(storePathDigest).toString('hex'));
  }

  async held(): Promise<Set<string>> {
    const leases = await this.list('lease/');
    return new Set(leases.filter((l) => l.kind === 'use' && l.path !== undefined).map((l) => l.path!));
  }

  /** Leases and gc records of live processes, under `lease/`, `gc/` or `gcrun/` (for tests and tools). */
  leases(prefix: 'lease/' | 'gc/' | 'gcrun/' = 'lease/'): Promise<LeaseRecord[]> {
    return this.list(prefix);
  }

  recordUse(storePathDigest: Uint8Array, when = Date.now()): void {
    this.pending.set(Buffer.from(storePathDigest).toString('hex'), when);
    this.writing ??= this.drain();
  }

  /** This process only: the path-info service serialises its writes; other processes are not asked. */
  pathWrite<T>(_storePathDigest: Uint8Array, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  async flushUses(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

  async lastUses(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for await (const [key, value] of this.atime.iterator()) {
      out.set(Buffer.from(key).toString('hex'), decodeAtime(value));
    }
    return out;
  }

  async forgetUses(storePathDigests: readonly string[]): Promise<number> {
    let count = 0;
    for (let at = 0; at < storePathDigests.length; at += 1000) {
      const keys = storePathDigests.slice(at, at + 1000).map((hex) => Buffer.from(hex, 'hex'));
      const values = await this.atime.getMany(keys);
      const present = keys.filter((_, i) => values[i] !== undefined);
      if (present.length > 0) await this.atime.batch(present.map((key) => ({ type: 'del' as const, key })));
      count += present.length;
    }
    return count;
  }

  async close(): Promise<void> {
    await this.flushUses();
    this.changes.unwatch();
  }

  /** Uses noted while one batch is written go into the next; a failed write is dropped (service.ts). */
  private async drain(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pending.size > 0) {
      const batch = [...this.pending].map(([hex, ms]) => ({
        type: 'put' as const,
        key: Buffer.from(hex, 'hex'),
        value: encodeAtime(ms),
      }));
      this.pending.clear();
      try {
        await this.atime.batch(batch);
      } catch {
        // dropped
      }
    }
    this.writing = undefined;
  }

  private async put(key: string, record: LeaseRecord): Promise<void> {
    await this.ops.put(utf8(key), utf8(JSON.stringify(record)));
  }

  private ender(key: string): () => Promise<void> {
    let ended = false;
    return async () => {
      if (ended) return;
      ended = true;
      await this.ops.del(utf8(key));
    };
  }

  /** Records under `prefix`; stale ones are deleted on the way. */
  private async list(prefix: string): Promise<LeaseRecord[]> {
    const out: LeaseRecord[] = [];
    const stale: Uint8Array[] = [];
    for await (const [key, value] of this.ops.iterator({ gte: utf8(prefix), lt: utf8(`${prefix}\xff`) })) {
      let record: LeaseRecord | undefined;
      try {
        record = JSON.parse(Buffer.from(value).toString('utf8')) as LeaseRecord;
      } catch {
        record = undefined;
      }
      if (record === undefined || !isAlive(record)) stale.push(key);
      else out.push(record);
    }
    if (stale.length > 0) await this.ops.batch(stale.map((key) => ({ type: 'del' as const, key })));
    return out;
  }

  /**
   * Take a lease of `kind` (an ingest, or a reader holding `path`), an ingest waiting while a gc
   * deletes, unless `join` (asked when a gc waits) says to keep the lease and go ahead: the gc waits
   * for it too. Returns the function that ends it.
   */
  private async takeLease(
    kind: 'ingest' | 'use',
    path?: string,
    options: WaitOptions = {},
    join: () => boolean = () => false,
  ): Promise<() => Promise<void>> {
    const deadline = Date.now() + (options.timeoutMs ?? WAIT_TIMEOUT_MS);
    let told = false;
    for (;;) {
      const id = newId();
      const key = `lease/${id}`;
      await this.put(key, { id, kind, pid: process.pid, host: HOST, startedAt: Date.now(), path });
      // A reader only needs its path protected from eviction; a gc never deletes reachable data.
      const gcs = kind === 'ingest' ? await this.list('gc/') : [];
      if (gcs.length === 0 || join()) return this.ender(key);
      await this.ops.del(utf8(key));
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
}

/**
 * Group commit for puts into the KV layer. Writers hand their puts to one
 * shared group instead of each writing its own batch, and the group is written
 * as one atomic batch: thousands of small blobs become a few LevelDB writes
 * (each write is a round trip through the libuv thread pool, which for small
 * files costs more than the bytes). At most one group is being written at a
 * time; the next one fills meanwhile and is written as soon as the current
 * write finishes, or after one turn of the event loop when nothing is being
 * written (so a lone writer waits for nothing but its own write). A group
 * that reaches `groupBytes` starts writing at once if it can; writers that
 * add more wait in `room()`, so memory stays near two groups whatever the
 * number of writers. With `lingerMs`, a group below `groupBytes` waits
 * instead until no put has come for that long (or fifty times that since
 * its first put): a store that pays per write (an object store) gets full
 * groups from a stream of small puts, and a lone writer waits `lingerMs`.
 *
 * Durability and order: `put()` resolves once its puts are written (with
 * every other put of its group, atomically), and rejects with the batch's
 * error if that write fails — every writer in a failed group gets the error.
 * Puts of one `put()` call are never split between groups, so data and the
 * record pointing at it can be put together; anything that must be durable
 * before something else must be awaited before the something else is put.
 */

import type { AbstractBatchOperation } from 'abstract-level';
import type { KV } from './kv.js';

type Op = AbstractBatchOperation<KV, Uint8Array, Uint8Array>;

/** One put: `key` → `value` in the sublevel (or database) `kv`. */
export interface Put {
  readonly kv: KV;
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

export interface GroupCommitOptions {
  /** A group starts writing once its values reach this many bytes (default 8 MiB). */
  readonly groupBytes?: number;
  /**
   * Called with each group's puts just before it is written; returns those to
   * write (e.g. without the ones already stored, to save rewriting them).
   */
  readonly filter?: (puts: readonly Put[]) => Promise<readonly Put[]>;
  /** How long a group below `groupBytes` waits for more puts (default 0: one turn of the event loop). */
  readonly lingerMs?: number | undefined;
}

interface Group {
  puts: Put[];
  bytes: number;
  /** performance.now() of the group's first and last put. */
  first: number;
  last: number;
  done: Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  /** Groups written and puts in them (after the filter), for tests and benchmarks. */
  readonly stats = { batches: 0, puts: 0 };
  private readonly groupBytes: number;
  private readonly filter: GroupCommitOptions['filter'];
  private readonly lingerMs: number;
  private open: Group | undefined;
  private writing: Promise<void> | undefined;
  private scheduled = false;
  private roomWaiters: (() => void)[] = [];

  constructor(options: GroupCommitOptions = {}) {
    this.groupBytes = options.groupBytes ?? 8 << 20;
    if (!(this.groupBytes >= 1)) throw new TypeError('groupBytes must be at least 1');
    this.filter = options.filter;
    this.lingerMs = options.lingerMs ?? 0;
  }

  /** Queue `puts` for the next group; resolves when they are written. */
  put(puts: readonly Put[]): Promise<void> {
    if (puts.length === 0) return Promise.resolve();
    this.open ??= newGroup();
    const group = this.open;
    for (const p of puts) {
      group.puts.push(p);
      group.bytes += p.value.length + p.key.length;
    }
    group.last = performance.now();
    if (this.writing === undefined) {
      if (group.bytes >= this.groupBytes) this.start();
      else this.schedule();
    }
    return group.done;
  }

  /** Start the open group after one turn of the event loop, or once it has lingered (`lingerMs`). */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const due = () => {
      this.scheduled = false;
      const group = this.open;
      if (this.writing !== undefined || group === undefined) return;
      const now = performance.now();
      const wait = Math.min(group.last + this.lingerMs, group.first + 50 * this.lingerMs) - now;
      if (wait > 0 && group.bytes < this.groupBytes) {
        this.scheduled = true;
        setTimeout(due, Math.ceil(wait));
      } else this.start();
    };
    if (this.lingerMs > 0) setTimeout(due, this.lingerMs);
    else setImmediate(due);
  }

  /** Resolves when the group being filled has room (below `groupBytes`): backpressure for writers. */
  room(): Promise<void> {
    if (this.open === undefined || this.open.bytes < this.groupBytes) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Resolves when everything put so far is written (or failed); never rejects. */
  async drain(): Promise<void> {
    while (this.writing !== undefined || this.open !== undefined) {
      if (this.writing === undefined) this.start();
      await this.writing;
    }
  }

  /** Write the open group; when done, the next one if it has anything. */
  private start(): void {
    const group = this.open;
    if (group === undefined) return;
    this.open = undefined;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
    this.writing = this.write(group.puts).then(group.resolve, group.reject);
    this.writing.then(() => {
      this.writing = undefined;
      const next = this.open;
      if (next === undefined) return;
      if (next.bytes >= this.groupBytes || this.lingerMs === 0) this.start();
      else this.schedule();
    });
  }

  private async write(all: readonly Put[]): Promise<void> {
    const puts = this.filter === undefined ? all : await this.filter(all);
    if (puts.length === 0) return;
    this.stats.batches++;
    this.stats.puts += puts.length;
    await writeBatch(puts);
  }
}

function newGroup(): Group {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  done.catch(() => {}); // every writer awaits its own copy; this one must not count as unhandled
  const now = performance.now();
  return { puts: [], bytes: 0, first: now, last: now, done, resolve, reject };
}

/**
 * The root database of a sublevel (itself for a root). Sublevels of one root
 * can share a batch, which LevelDB applies atomically.
 */
function rootOf(kv: KV): KV {
  const db = (kv as { db?: KV }).db;
  return db !== undefined && db !== kv ? rootOf(db) : kv;
}

/** One atomic batch when all puts share a root; otherwise one batch per root, in order. */
async function writeBatch(puts: readonly Put[]): Promise<void> {
  const byRoot = new Map<KV, Put[]>();
  for (const p of puts) {
    const root = rootOf(p.kv);
    const list = byRoot.get(root);
    if (list === undefined) byRoot.set(root, [p]);
    else list.push(p);
  }
  for (const [root, list] of byRoot) {
    await root.batch(
      list.map(
        (p): Op =>
          p.kv === root
            ? { type: 'put', key: p.key, value: p.value }
            : // A sublevel of `root` (rootOf says so), which the KV type cannot express.
              ({ type: 'put', sublevel: p.kv, key: p.key, value: p.value } as unknown as Op),
      ),
    );
  }
}

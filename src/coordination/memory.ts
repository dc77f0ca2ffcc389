/**
 * Coordination (service.ts) for a store that lives in one process's memory
 * (`memory:`): nobody else can use the store, so exclusion is two counters
 * and the waits are promises, leases a count per path, last uses a map and
 * the change stamp a counter. `MemoryPendingUploads` is also what a cache
 * root on one machine uses: uploads wait in the memory of the server that
 * received them, and are lost on restart (Nix then fails the copy and a
 * re-run repeats it, as with nar-bridge's root-node LRU).
 */

import { bytesEqual } from '../bytes.js';
import { FetchCacheError } from '../errors.js';
import { encodeNix32 } from '../nix/nixbase32.js';
import { LocalChangeStamp } from './change-stamp.js';
import type { Coordination, PendingUpload, PendingUploads, WaitOptions } from './service.js';

/** Default bounds of pending uploads: this many, for at most this long. */
export const PENDING_UPLOADS = 4096;
export const PENDING_TTL_MS = 3_600_000;
/** Default longest wait for the other side of gc exclusion. */
export const WAIT_TIMEOUT_MS = 600_000;

const hexOf = (digest: Uint8Array) => Buffer.from(digest).toString('hex');

/** Uploads in this process's memory, oldest dropped first past `capacity`, each dropped `ttlMs` after it came. */
export class MemoryPendingUploads implements PendingUploads {
  private readonly byNar = new Map<string, PendingUpload>();

  constructor(
    private readonly capacity = PENDING_UPLOADS,
    private readonly ttlMs = PENDING_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  async add(p: PendingUpload): Promise<void> {
    const key = encodeNix32(p.narSha256);
    this.byNar.delete(key);
    this.byNar.set(key, p);
    this.expire();
    while (this.byNar.size > this.capacity) this.byNar.delete(this.byNar.keys().next().value!);
  }

  async byNarHash(narSha256: Uint8Array): Promise<PendingUpload | undefined> {
    this.expire();
    return this.byNar.get(encodeNix32(narSha256));
  }

  async byFileHash(fileSha256: Uint8Array): Promise<PendingUpload | undefined> {
    this.expire();
    for (const p of this.byNar.values()) if (bytesEqual(p.fileSha256, fileSha256)) return p;
    return undefined;
  }

  async remove(p: PendingUpload): Promise<void> {
    const key = encodeNix32(p.narSha256);
    const stored = this.byNar.get(key);
    if (
      stored !== undefined &&
      stored.receivedAt === p.receivedAt &&
      bytesEqual(stored.fileSha256, p.fileSha256)
    )
      this.byNar.delete(key);
  }

  async count(): Promise<number> {
    this.expire();
    return this.byNar.size;
  }

  private expire(): void {
    const limit = this.now() - this.ttlMs;
    for (const [k, p] of this.byNar) {
      if (p.receivedAt >= limit) break;
      this.byNar.delete(k);
    }
  }
}

export class MemoryCoordination implements Coordination {
  readonly changes = new LocalChangeStamp();
  readonly uploads = new MemoryPendingUploads();
  private ingests = 0;
  /** Running ingests that began while no gc waited. */
  private before = 0;
  private exclusives = 0;
  private gcSince = 0;
  private turn = false;
  private readonly holds = new Map<string, number>();
  private readonly uses = new Map<string, number>();
  /** Wakes every wait when the state changes. */
  private wake: () => void = () => {};
  private changed = this.nextChange();

  async ingest<T>(fn: () => Promise<T>, options: WaitOptions = {}): Promise<T> {
    // Joins the ingests a waiting gc waits for, while one that began before the gc runs (service.ts).
    const joined = this.exclusives > 0 && this.before > 0;
    if (!joined) {
      await this.waitFor(
        () => this.exclusives === 0,
        options,
        () => `gc has been running since ${new Date(this.gcSince).toISOString()}`,
        'waiting for gc to finish',
      );
      this.before++;
    }
    this.ingests++;
    try {
      return await fn();
    } finally {
      this.ingests--;
      if (!joined) this.before--;
      this.wake();
    }
  }

  async exclusive(options: WaitOptions = {}): Promise<() => Promise<void>> {
    if (this.exclusives++ === 0) this.gcSince = Date.now();
    let ended = false;
    const end = async () => {
      if (ended) return;
      ended = true;
      this.exclusives--;
      this.wake();
    };
    try {
      await this.waitFor(
        () => this.ingests === 0,
        options,
        () => `gc gave up waiting for ${this.ingests} running fetch(es)`,
        `waiting for ${this.ingests} running fetch(es) to finish`,
      );
    } catch (e) {
      await end();
      throw e;
    }
    return end;
  }

  async gcTurn(options: WaitOptions = {}): Promise<() => Promise<void>> {
    await this.waitFor(
      () => !this.turn,
      options,
      () => 'another gc has been running for too long',
      'waiting for another gc to finish',
    );
    this.turn = true;
    let ended = false;
    return async () => {
      if (ended) return;
      ended = true;
      this.turn = false;
      this.wake();
    };
  }

  async hold(storePathDigest: Uint8Array): Promise<() => Promise<void>> {
    const hex = hexOf(storePathDigest);
    this.holds.set(hex, (this.holds.get(hex) ?? 0) + 1);
    let ended = false;
    return async () => {
      if (ended) return;
      ended = true;
      const left = (this.holds.get(hex) ?? 1) - 1;
      if (left > 0) this.holds.set(hex, left);
      else this.holds.delete(hex);
    };
  }

  async held(): Promise<Set<string>> {
    return new Set(this.holds.keys());
  }

  recordUse(storePathDigest: Uint8Array, when = Date.now()): void {
    this.uses.set(hexOf(storePathDigest), when);
  }

  /** This process only: the path-info service serialises its writes; other processes are not asked. */
  pathWrite<T>(_storePathDigest: Uint8Array, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  async flushUses(): Promise<void> {}

  async lastUses(): Promise<Map<string, number>> {
    return new Map(this.uses);
  }

  async forgetUses(storePathDigests: readonly string[]): Promise<number> {
    let count = 0;
    for (const hex of storePathDigests) if (this.uses.delete(hex)) count++;
    return count;
  }

  async close(): Promise<void> {}

  private nextChange(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = () => {
        this.changed = this.nextChange();
        resolve();
      };
    });
  }

  /** Wait until `ready()`, at most `timeoutMs` (ERR_STORE_LOCKED with `why()` past it). */
  private async waitFor(
    ready: () => boolean,
    options: WaitOptions,
    why: () => string,
    waiting: string,
  ): Promise<void> {
    if (ready()) return;
    options.onWait?.(waiting);
    const deadline = Date.now() + (options.timeoutMs ?? WAIT_TIMEOUT_MS);
    while (!ready()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new FetchCacheError('ERR_STORE_LOCKED', why());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.changed,
        new Promise<void>((r) => {
          timer = setTimeout(r, left);
        }),
      ]);
      clearTimeout(timer);
    }
  }
}

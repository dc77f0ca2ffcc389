/**
 * When each path was last used (fetched, or served), for `gc --max-size`,
 * which evicts the least recently used paths first. One small record per
 * path in the `atime` sublevel:
 *
 *   atime/<20-byte store path digest> → u64 LE milliseconds since the epoch
 *
 * A fetch notes its use through the cache (`Cache.used`, a `UseRecorder`):
 * written behind it, batched, so a cache hit makes no write on its way to
 * the answer. The server calls `touchPath`, which writes at most once a
 * minute per path and process, so a busy server does not turn every narinfo
 * request into a write. `holdPath` is for readers that stream a path for a
 * while (a NAR being served): it touches the path and takes a `use` lease
 * (leases.ts), and gc never evicts a held path.
 */

import type { Cache } from '../cache.js';
import { binarySublevel, type KV } from '../storage/kv.js';
import { takeLease } from './leases.js';

export const ATIME_SUBLEVEL = 'atime';
const THROTTLE_MS = 60_000;

/** Per database: hex digest → when this process last wrote its atime. */
const recent = new WeakMap<object, Map<string, number>>();

export function atimeKV(cache: Pick<Cache, 'db'>): KV {
  return binarySublevel(cache.db, ATIME_SUBLEVEL);
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

/** Record that the path with this store path digest was used now. */
export async function touchPath(
  cache: Pick<Cache, 'db'>,
  digest: Uint8Array,
  now = Date.now(),
): Promise<void> {
  let seen = recent.get(cache.db);
  if (seen === undefined) {
    seen = new Map();
    recent.set(cache.db, seen);
  }
  const hex = Buffer.from(digest).toString('hex');
  const last = seen.get(hex);
  if (last !== undefined && now - last < THROTTLE_MS && now >= last) return;
  seen.set(hex, now);
  if (seen.size > 100_000) seen.clear();
  await atimeKV(cache).put(digest, encodeAtime(now));
}

/**
 * Uses noted by one process, written behind its back: `note` neither waits nor throws; the write starts
 * once the caller has gone on (the next turn of the event loop), and uses noted while one runs go into the
 * next, one batch with the latest time per path. `flush` resolves once everything noted so far is written
 * (the cache's close). A write that fails is dropped: a use only orders gc's eviction.
 */
export class UseRecorder {
  private pending = new Map<string, number>();
  private writing: Promise<void> | undefined;

  constructor(private readonly kv: KV) {}

  note(digest: Uint8Array, now = Date.now()): void {
    this.pending.set(Buffer.from(digest).toString('hex'), now);
    this.writing ??= this.drain();
  }

  async flush(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

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
        await this.kv.batch(batch);
      } catch {
        // dropped (see above)
      }
    }
    this.writing = undefined;
  }
}

/** Touch the path and keep gc from evicting it until the returned function is called. */
export async function holdPath(cache: Pick<Cache, 'db'>, digest: Uint8Array): Promise<() => Promise<void>> {
  await touchPath(cache, digest);
  return takeLease(cache, 'use', Buffer.from(digest).toString('hex'));
}

/** Every recorded last use, by hex store path digest. */
export async function readAtimes(cache: Pick<Cache, 'db'>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const [key, value] of atimeKV(cache).iterator()) {
    out.set(Buffer.from(key).toString('hex'), decodeAtime(value));
  }
  return out;
}

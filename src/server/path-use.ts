/**
 * What serving tells `gc --max-size`, through the store's coordination
 * service (coordination/service.ts): a narinfo hit or a NAR download records
 * the path's use, at most once a minute per path and server, so a busy
 * server does not turn every request into a write; a NAR being streamed
 * holds its path so no gc evicts it mid-stream. Bookkeeping must never fail
 * a request: a use that cannot be written is dropped, and a hold that
 * cannot be taken is logged as a warning while the request goes on.
 */

import { describeError } from './log.js';
import type { ServerServices } from './services.js';

const THROTTLE_MS = 60_000;

/** Per server: hex digest → when it last recorded the path's use. */
const recent = new WeakMap<object, Map<string, number>>();

/** Record a use of the path with this store path digest (throttled, see above); never throws. */
export function touchServed(s: ServerServices, digest: Uint8Array, now = Date.now()): void {
  let seen = recent.get(s);
  if (seen === undefined) {
    seen = new Map();
    recent.set(s, seen);
  }
  const hex = Buffer.from(digest).toString('hex');
  const last = seen.get(hex);
  if (last !== undefined && now - last < THROTTLE_MS && now >= last) return;
  seen.set(hex, now);
  if (seen.size > 100_000) seen.clear();
  s.store.coordination.recordUse(digest, now);
}

/**
 * Record a use of the path and hold it against eviction until the returned function is called (which
 * never throws either). When the hold cannot be taken the path is served unheld: refusing the download
 * would be worse than the rare race.
 */
export async function holdServed(s: ServerServices, digest: Uint8Array): Promise<() => Promise<void>> {
  touchServed(s, digest);
  let release: () => Promise<void>;
  try {
    release = await s.store.coordination.hold(digest);
  } catch (e) {
    s.log.log('warn', 'cannot hold path while serving it', { error: describeError(e) });
    return async () => {};
  }
  return async () => {
    try {
      await release();
    } catch (e) {
      s.log.log('warn', 'cannot release served path', { error: describeError(e) });
    }
  };
}

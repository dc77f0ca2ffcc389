/**
 * What serving tells `gc --max-size` (ops/usage.ts): a narinfo hit records
 * the path's last use (`touchPath` writes at most once a minute per path and
 * process, so a busy server does not write per request), and a NAR being
 * streamed holds its path with a `use` lease so no gc evicts it mid-stream.
 * Bookkeeping must never fail a request: a failed write is logged as a
 * warning and the request goes on.
 */

import { holdPath, touchPath } from '../ops/usage.js';
import { describeError } from './log.js';
import type { ServerServices } from './services.js';

/** Record a use of the path with this store path digest; never throws. */
export async function touchServed(s: ServerServices, digest: Uint8Array): Promise<void> {
  try {
    await touchPath(s.store, digest);
  } catch (e) {
    s.log.log('warn', 'cannot record path use', { error: describeError(e) });
  }
}

/**
 * Hold the path against eviction until the returned function is called
 * (which never throws either). When the lease cannot be written the path is
 * served unheld: refusing the download would be worse than the rare race.
 */
export async function holdServed(s: ServerServices, digest: Uint8Array): Promise<() => Promise<void>> {
  let release: () => Promise<void>;
  try {
    release = await holdPath(s.store, digest);
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

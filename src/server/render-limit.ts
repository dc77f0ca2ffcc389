/**
 * A cap on concurrent NAR renders. Each render holds read buffers and a
 * socket's send queue, so a burst of downloads is admitted `max` at a time;
 * up to `maxQueued` more wait in FIFO order, and anything beyond that is
 * answered 503 with Retry-After (Nix retries 5xx with backoff). A waiter
 * whose client goes away gives its place up.
 */

import { HttpError } from './http.js';

export class RenderLimiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly max: number,
    readonly maxQueued: number,
  ) {
    if (!(Number.isInteger(max) && max > 0)) throw new TypeError(`render limit must be a positive integer`);
    if (!(Number.isInteger(maxQueued) && maxQueued >= 0)) throw new TypeError('queue limit must be ≥ 0');
  }

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Wait for a slot; resolves to the function that frees it (call it exactly
   * once). `signal` abandons the wait (the promise then rejects).
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) throw new Error('client went away before queueing');
    if (this.running < this.max) {
      this.running++;
      return this.releaser();
    }
    if (this.waiting.length >= this.maxQueued) {
      throw new HttpError(503, 'too many NAR downloads at once, retry shortly', { 'Retry-After': '1' });
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(wake);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error('client went away while queued'));
      };
      this.waiting.push(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return this.releaser();
  }

  /** The slot passes straight to the next waiter, so `running` never dips below the demand. */
  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }
}

/**
 * Hashes of one byte stream computed on a worker thread, so the thread that
 * chunks and stores the bytes does not also hash them.
 *
 * Why: adding a 1 GiB file, the main thread spent ~630 ms in SHA-256 (the
 * NAR hash) and ~270 ms in the blob's whole BLAKE3, next to ~1 s of chunking,
 * chunk hashing and copying; the machine has a second core.
 *
 * Large buffers are lent: moved to the worker with the message, not copied,
 * and moved back once hashed (`lend`). Small updates (framing) are copied
 * into their message (`update`). Each update names the hashers it feeds (the
 * NAR hash takes the framing and the file bytes, the blob hash only the
 * bytes). The worker handles updates in order.
 */

import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { HashAlgo } from '../nix/hashing.js';

export type WorkerHashAlgo = HashAlgo | 'blake3';

/** What hash-worker.ts is started with. */
export interface HashWorkerData {
  readonly algos: readonly WorkerHashAlgo[];
}

/** To hash-worker.ts, handled in order: bytes for the hashers at `to` (lent: sent back once hashed), or the end. */
export type HashRequest =
  | {
      readonly kind: 'update' | 'lend';
      readonly id: number;
      readonly to: readonly number[];
      readonly bytes: Uint8Array;
    }
  | { readonly kind: 'end'; readonly id: number };

/** From hash-worker.ts: a lent buffer back, the digests, or why it failed. */
export type HashReply =
  | { readonly id: number; readonly buffer: ArrayBuffer }
  | { readonly id: number; readonly digests: Uint8Array[] }
  | { readonly id: number; readonly error: string };

/**
 * The worker thread running hash-worker.js, the module beside this one in dist/. Run from the
 * TypeScript sources (tests, tsx), Node 20 cannot start hash-worker.ts (module hooks do not reach
 * worker threads): a bootstrap registers tsx's CommonJS hook in the thread first.
 */
function startWorker(workerData: HashWorkerData): Worker {
  if (!import.meta.url.endsWith('.ts'))
    return new Worker(new URL('./hash-worker.js', import.meta.url), { workerData });
  const source = fileURLToPath(new URL('./hash-worker.ts', import.meta.url));
  return new Worker(`require('tsx/cjs'); require(${JSON.stringify(source)});`, { eval: true, workerData });
}

export class WorkerHasher {
  private ids = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  private failure: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: HashReply) => {
      if ('error' in m) {
        this.fail(new Error(`hash worker: ${m.error}`));
        return;
      }
      const w = this.waiting.get(m.id);
      if (w === undefined) return;
      this.waiting.delete(m.id);
      w.resolve('digests' in m ? m.digests : m.buffer);
    });
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`hash worker exited with code ${code}`)));
  }

  /** A worker hashing with `algos` (in that order), or undefined when no worker can be started here. */
  static start(algos: readonly WorkerHashAlgo[]): WorkerHasher | undefined {
    try {
      return new WorkerHasher(startWorker({ algos }));
    } catch {
      return undefined;
    }
  }

  /** Feed a copy of `bytes` to the hashers at indices `to` (the caller may reuse them at once). */
  update(to: readonly number[], bytes: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    this.post({ kind: 'update', id: this.ids++, to, bytes: bytes.slice() });
  }

  /**
   * Feed the whole of `buffer` (its first `length` bytes) to the hashers at `to`, handing the buffer to
   * the worker (moved, not copied: it is unusable here until it comes back). Resolves with it once hashed.
   */
  lend(to: readonly number[], buffer: ArrayBuffer, length: number): Promise<ArrayBuffer> {
    if (this.failure !== undefined) throw this.failure;
    const id = this.ids++;
    const done = this.wait(id) as Promise<ArrayBuffer>;
    this.post({ kind: 'lend', id, to, bytes: new Uint8Array(buffer, 0, length) }, [buffer]);
    return done;
  }

  /** The digests, in the order of `algos`; the worker then exits. */
  async digests(): Promise<Uint8Array[]> {
    if (this.failure !== undefined) throw this.failure;
    const id = this.ids++;
    const done = this.wait(id);
    this.post({ kind: 'end', id });
    const digests = (await done) as Uint8Array[];
    void this.close();
    return digests.map((d) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }

  async close(): Promise<void> {
    this.failure ??= new Error('hash worker closed');
    await this.worker.terminate();
  }

  private post(m: HashRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private wait(id: number): Promise<unknown> {
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  private fail(e: Error): void {
    if (this.failure === undefined) this.failure = e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }
}

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

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { HashAlgo } from '../nix/hashing.js';

/** What the worker runs (evaluated, so it needs no file of its own next to a bundle). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { Blake3Hasher } = require(workerData.blake3);
const hashers = workerData.algos.map((a) => (a === 'blake3' ? new Blake3Hasher() : createHash(a)));
parentPort.on('message', (m) => {
  try {
    if (m.end) {
      const digests = hashers.map((h, i) => (workerData.algos[i] === 'blake3' ? h.digestBuffer() : h.digest()));
      parentPort.postMessage({ id: m.id, digests });
      return;
    }
    for (const i of m.to) hashers[i].update(m.bytes);
    if (m.lend) parentPort.postMessage({ id: m.id, buffer: m.bytes.buffer }, [m.bytes.buffer]);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message) });
  }
});
`;

export type WorkerHashAlgo = HashAlgo | 'blake3';

export class WorkerHasher {
  private ids = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  private failure: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on(
      'message',
      (m: { id: number; error?: string; digests?: Uint8Array[]; buffer?: ArrayBuffer }) => {
        const w = this.waiting.get(m.id);
        if (m.error !== undefined) {
          this.fail(new Error(`hash worker: ${m.error}`));
          return;
        }
        if (w === undefined) return;
        this.waiting.delete(m.id);
        w.resolve(m.digests ?? m.buffer);
      },
    );
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`hash worker exited with code ${code}`)));
  }

  /** A worker hashing with `algos` (in that order), or undefined when no worker can be started here. */
  static start(algos: readonly WorkerHashAlgo[]): WorkerHasher | undefined {
    try {
      const blake3 = createRequire(import.meta.url).resolve('@napi-rs/blake-hash');
      // execArgv: [] so that flags such as --input-type=module do not turn the CommonJS source into ESM.
      const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { blake3, algos } });
      return new WorkerHasher(worker);
    } catch {
      return undefined;
    }
  }

  /** Feed a copy of `bytes` to the hashers at indices `to` (the caller may reuse them at once). */
  update(to: readonly number[], bytes: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    this.worker.postMessage({ id: this.ids++, to, bytes: bytes.slice() });
  }

  /**
   * Feed the whole of `buffer` (its first `length` bytes) to the hashers at `to`, handing the buffer to
   * the worker (moved, not copied: it is unusable here until it comes back). Resolves with it once hashed.
   */
  lend(to: readonly number[], buffer: ArrayBuffer, length: number): Promise<ArrayBuffer> {
    if (this.failure !== undefined) throw this.failure;
    const id = this.ids++;
    const done = this.wait(id) as Promise<ArrayBuffer>;
    this.worker.postMessage({ id, to, bytes: new Uint8Array(buffer, 0, length), lend: true }, [buffer]);
    return done;
  }

  /** The digests, in the order of `algos`; the worker then exits. */
  async digests(): Promise<Uint8Array[]> {
    if (this.failure !== undefined) throw this.failure;
    const id = this.ids++;
    const done = this.wait(id);
    this.worker.postMessage({ id, end: true });
    const digests = (await done) as Uint8Array[];
    void this.close();
    return digests.map((d) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }

  async close(): Promise<void> {
    this.failure ??= new Error('hash worker closed');
    await this.worker.terminate();
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

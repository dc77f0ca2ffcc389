/**
 * Worker threads that read runs of chunks from pack files and verify each
 * chunk against its BLAKE3 digest, so that the thread serving or rendering
 * a large blob only writes it out.
 *
 * Why: serving a 128 MiB NAR, the main thread spent ~40% of its time in
 * BLAKE3 and ~25% in pread (2 GB/s and 2.5 GB/s on the 2-core dev machine)
 * and the rest writing to the socket; a plain Node loop doing only the
 * reads and writes served ~2× as fast. Each worker opens the pack files
 * itself, reads a run into memory that is then transferred (not copied) to
 * the caller, and says which chunks hashed right; a chunk that did not is
 * verified again by the caller, which reports it (ERR_INTEGRITY with the
 * actual digest), so the error path is the one used without workers.
 *
 * The workers start on the first run read through the pool, are `unref`ed
 * (a CLI exits without closing them) and are terminated by `close()`.
 */

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** What a worker runs (evaluated, so it needs no file of its own next to a bundle). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { blake3 } = require(workerData.blake3);
const fds = new Map();
function fdOf(file) {
  let fd = fds.get(file);
  if (fd !== undefined) {
    fds.delete(file);
    fds.set(file, fd);
    return fd;
  }
  fd = fs.openSync(file, 'r');
  fds.set(file, fd);
  if (fds.size > 64) {
    const [oldest, oldFd] = fds.entries().next().value;
    fds.delete(oldest);
    fs.closeSync(oldFd);
  }
  return fd;
}
parentPort.on('message', (m) => {
  try {
    const fd = fdOf(m.file);
    const buf = Buffer.allocUnsafeSlow(m.length);
    let got = 0;
    while (got < m.length) {
      const n = fs.readSync(fd, buf, got, m.length - got, m.offset + got);
      if (n === 0) break;
      got += n;
    }
    const count = m.starts.length;
    const ok = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const at = m.starts[i];
      const end = at + m.sizes[i];
      if (end > got) continue;
      const digest = blake3(buf.subarray(at, end));
      ok[i] = digest.equals(m.digests.subarray(i * 32, i * 32 + 32)) ? 1 : 0;
    }
    parentPort.postMessage({ id: m.id, buffer: buf.buffer, got, ok }, [buf.buffer]);
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: { code: e && e.code, message: String(e && e.message) } });
  }
});
`;

/** One run: `length` bytes at `offset` of `file`, holding chunks at `starts[i]` (from the run's start). */
export interface RunRequest {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
  readonly starts: readonly number[];
  readonly sizes: readonly number[];
  readonly digests: readonly Uint8Array[];
}

export interface RunResult {
  /** The bytes read: shorter than asked when the file is. */
  readonly bytes: Uint8Array;
  /** `ok[i]` is 1 when chunk i was read whole and hashed to its digest. */
  readonly ok: Uint8Array;
}

interface Pending {
  resolve(r: RunResult): void;
  reject(e: unknown): void;
}

interface Slot {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

export class ReadPool {
  private slots: Slot[] | undefined;
  private next = 0;
  private ids = 0;
  private closed = false;

  /** `size`: the worker threads to start (on the first read). */
  constructor(private readonly size: number) {}

  /** Reads and verifies one run on a worker. Rejects with the worker's error (`code` kept, e.g. ENOENT). */
  read(req: RunRequest): Promise<RunResult> {
    if (this.closed) return Promise.reject(new TypeError('read pool is closed'));
    const slots = this.start();
    if (slots.length === 0) return Promise.reject(new Error('every read worker has exited'));
    const slot = slots[this.next++ % slots.length]!;
    const id = this.ids++;
    const digests = new Uint8Array(req.digests.length * 32);
    for (let i = 0; i < req.digests.length; i++) digests.set(req.digests[i]!, i * 32);
    return new Promise<RunResult>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      slot.worker.postMessage({
        id,
        file: req.file,
        offset: req.offset,
        length: req.length,
        starts: Float64Array.from(req.starts),
        sizes: Float64Array.from(req.sizes),
        digests,
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const slots = this.slots ?? [];
    this.slots = undefined;
    for (const s of slots) for (const p of s.pending.values()) p.reject(new TypeError('read pool is closed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private start(): Slot[] {
    if (this.slots !== undefined) return this.slots;
    const blake3 = createRequire(import.meta.url).resolve('@napi-rs/blake-hash');
    this.slots = [];
    for (let i = 0; i < this.size; i++) {
      // execArgv: [] so that flags such as --input-type=module do not turn the CommonJS source into ESM.
      const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { blake3 } });
      const slot: Slot = { worker, pending: new Map() };
      worker.on(
        'message',
        (m: {
          id: number;
          buffer?: ArrayBuffer;
          got?: number;
          ok?: Uint8Array;
          error?: { code?: string; message: string };
        }) => {
          const p = slot.pending.get(m.id);
          if (p === undefined) return;
          slot.pending.delete(m.id);
          if (slot.pending.size === 0) worker.unref();
          if (m.error !== undefined) {
            p.reject(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}));
          } else p.resolve({ bytes: new Uint8Array(m.buffer!, 0, m.got!), ok: m.ok! });
        },
      );
      const fail = (e: unknown) => {
        const at = this.slots?.indexOf(slot) ?? -1;
        if (at >= 0) this.slots!.splice(at, 1);
        for (const p of slot.pending.values()) p.reject(e);
        slot.pending.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`read worker exited with code ${code}`)));
      worker.unref();
      this.slots.push(slot);
    }
    return this.slots;
  }
}

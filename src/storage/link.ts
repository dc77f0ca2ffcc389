/**
 * A guest's line to the database of a shared cache root. It connects to the
 * host's unix socket (db-host.ts) and sends requests as frames (wire.ts).
 * When the host goes away (it closed, or died), the link fails over: it
 * connects to whoever hosts now or, when nobody does, opens the database
 * itself and becomes the host — then its own requests run in-process
 * through the same `answerRequest`. Requests not answered yet are resent
 * (all are idempotent); iterator requests fail with a "stale" error and the
 * iterator reopens itself past its last key (remote-level.ts). The wait for
 * a host is bounded; past it, ERR_STORE_LOCKED names the owner.
 */

import { connect, type Socket } from 'node:net';
import { FetchCacheError } from '../errors.js';
import { answerRequest, type DbHost, hostDatabase, type IteratorTable } from './db-host.js';
import type { KV } from './kv.js';
import { encodeFrame, type Frame, FrameReader, OPS } from './wire.js';

/**
 * Opens the database for this process (open, ready to use), or resolves
 * `undefined` when another process holds it (LevelDB's lock). Given by the
 * composition root (cache.ts), which chooses the backend; any other failure
 * is thrown as it is (a coded error, for a damaged database say).
 */
export type OpenDatabase = () => Promise<KV | undefined>;

export interface LinkOptions {
  /** The database's location, for messages. */
  readonly location: string;
  readonly open: OpenDatabase;
  readonly socketPath: string;
  /** How long to look for a host or the lock before giving up. */
  readonly timeoutMs: number;
  /** Describes the process holding the lock, for messages. */
  readonly owner: () => string;
  /** Told once per wait, when no host answers at once. */
  readonly onWait?: ((owner: string) => void) | undefined;
  /** Told when this process becomes the host (and when it stops being one). */
  readonly onHost?: ((hosting: boolean) => void) | undefined;
}

export type Reply = { head: unknown; parts: (Uint8Array | undefined)[] };

/** Thrown to an iterator whose host went away; it reopens and retries. */
export class StaleIteratorError extends Error {
  override readonly name = 'StaleIteratorError';
}

interface Pending {
  readonly code: number;
  readonly head: unknown;
  readonly parts: readonly (Uint8Array | undefined)[];
  resolve(r: Reply): void;
  reject(e: unknown): void;
}

type Mode =
  | { kind: 'remote'; socket: Socket }
  | { kind: 'local'; db: KV; host: DbHost; iterators: IteratorTable };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Link {
  /** Bumped on every reconnection: iterators opened under an older epoch are gone. */
  epoch = 0;
  private mode: Mode | undefined;
  private ready: Promise<void> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly inflight = new Set<Promise<Reply>>();
  private closing = false;
  private closed = false;

  private constructor(private readonly options: LinkOptions) {}

  /** A link to the current host (or, if none, this process hosting). */
  static async open(options: LinkOptions): Promise<Link> {
    const link = new Link(options);
    await link.establish();
    return link;
  }

  get hosting(): boolean {
    return this.mode?.kind === 'local';
  }

  async request(code: number, head: unknown, parts: readonly (Uint8Array | undefined)[]): Promise<Reply> {
    if (this.closing) throw new Error('the database link is closed');
    return this.send(code, head, parts);
  }

  private async send(
    code: number,
    head: unknown,
    parts: readonly (Uint8Array | undefined)[],
  ): Promise<Reply> {
    await this.ready;
    const mode = this.mode;
    if (mode === undefined) throw new Error('the database link is down');
    if (mode.kind === 'local') return answerRequest(mode.db, mode.iterators, { code, head, parts });
    const reply = new Promise<Reply>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { code, head, parts, resolve, reject });
      mode.socket.write(encodeFrame({ id, code, head, parts }));
    });
    this.inflight.add(reply);
    reply.then(
      () => this.inflight.delete(reply),
      () => this.inflight.delete(reply),
    );
    return reply;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.ready?.catch(() => {});
    if (this.mode?.kind === 'remote') await Promise.allSettled([...this.inflight]);
    await this.ready?.catch(() => {});
    this.closed = true;
    const mode = this.mode;
    this.mode = undefined;
    if (mode?.kind === 'remote') {
      mode.socket.end();
      mode.socket.destroy();
    } else if (mode?.kind === 'local') {
      await mode.host.close();
      for (const it of mode.iterators.open.values()) await it.close().catch(() => {});
      await mode.db.close();
      this.options.onHost?.(false);
    }
  }

  private establish(): Promise<void> {
    this.ready = this.findHost().finally(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  /** Connect to the host, or take the lock and host; retry until the deadline. */
  private async findHost(): Promise<void> {
    const { location, socketPath, timeoutMs } = this.options;
    const deadline = Date.now() + timeoutMs;
    let told = false;
    for (;;) {
      const socket = await tryConnect(socketPath);
      if (socket !== undefined) {
        this.attach(socket);
        return;
      }
      const db = await this.options.open();
      if (db !== undefined) {
        let host: DbHost;
        try {
          host = await hostDatabase(db, socketPath);
        } catch (e) {
          await db.close();
          throw e;
        }
        this.mode = { kind: 'local', db, host, iterators: { open: new Map(), next: 1 } };
        this.options.onHost?.(true);
        return;
      }
      if (Date.now() >= deadline) {
        throw new FetchCacheError(
          'ERR_STORE_LOCKED',
          `cache database '${location}' is in use by ${this.options.owner()}, which does not answer on ${socketPath}`,
          { path: location },
        );
      }
      if (!told) {
        told = true;
        this.options.onWait?.(this.options.owner());
      }
      await sleep(30 + Math.random() * 70);
    }
  }

  private attach(socket: Socket): void {
    const reader = new FrameReader();
    this.mode = { kind: 'remote', socket };
    socket.on('data', (data: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(data);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of frames) {
        const p = this.pending.get(f.id);
        if (p === undefined) continue;
        this.pending.delete(f.id);
        if (f.code === 0) p.resolve({ head: f.head, parts: [...f.parts] });
        else {
          const { message: m, code } = f.head as { message: string; code: string | null };
          p.reject(Object.assign(new Error(m), code === null ? {} : { code }));
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.mode?.kind !== 'remote' || this.mode.socket !== socket) return;
      this.mode = undefined;
      this.epoch++;
      void this.failOver();
    });
  }

  /** The host went away: find the next one, then resend what it did not answer. */
  private async failOver(): Promise<void> {
    const waiting = [...this.pending.entries()].sort((a, b) => a[0] - b[0]);
    this.pending.clear();
    for (const [, p] of waiting) {
      if (p.code === OPS.iterNext || p.code === OPS.iterClose || p.code === OPS.iterSeek)
        p.reject(new StaleIteratorError('host changed'));
    }
    const resend = waiting.filter(
      ([, p]) => p.code !== OPS.iterNext && p.code !== OPS.iterClose && p.code !== OPS.iterSeek,
    );
    if (this.closed) {
      for (const [, p] of resend) p.reject(new Error('the database link is closed'));
      return;
    }
    try {
      await this.establish();
    } catch (e) {
      for (const [, p] of resend) p.reject(e);
      this.closing = true;
      this.closed = true;
      return;
    }
    for (const [, p] of resend) {
      if (p.code === OPS.iterOpen) {
        p.reject(new StaleIteratorError('host changed'));
        continue;
      }
      this.send(p.code, p.head, p.parts).then(p.resolve, p.reject);
    }
  }
}

async function tryConnect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(undefined);
    });
  });
}

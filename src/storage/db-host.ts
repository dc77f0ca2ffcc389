/**
 * The host side of a shared cache root: the process that holds LevelDB's
 * lock serves its database to other processes (guests, remote-level.ts) over
 * a unix socket, one request per frame (wire.ts). Requests run concurrently
 * against the database, exactly as local calls would; iterators live per
 * connection and die with it. `close()` stops accepting guests, drops the
 * connections and waits for requests already running: a guest resends what
 * was not answered to whoever hosts next, and every request is idempotent
 * (puts, deletes and batches of them; reads), so a lost reply loses nothing.
 */

import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { FetchCacheError } from '../errors.js';
import type { KV } from './kv.js';
import { decodeRange, encodeFrame, type Frame, FrameReader, OPS, type RangeHead } from './wire.js';

export interface DbHost {
  readonly socketPath: string;
  /** Guests connected now. */
  guests(): number;
  close(): Promise<void>;
}

type Iter = ReturnType<KV['iterator']>;

/** Open iterators of one connection, by id. */
export interface IteratorTable {
  readonly open: Map<number, Iter>;
  next: number;
}

export async function hostDatabase(db: KV, socketPath: string): Promise<DbHost> {
  // We hold the database lock, so a socket file left here belongs to a host that died.
  rmSync(socketPath, { force: true });
  const connections = new Set<Socket>();
  const running = new Set<Promise<void>>();
  const server: Server = createServer((socket) => {
    connections.add(socket);
    const iterators: IteratorTable = { open: new Map(), next: 1 };
    const reader = new FrameReader();
    socket.on('data', (data: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(data);
      } catch {
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        const p = answerRequest(db, iterators, frame).then(
          (reply) => {
            if (!socket.destroyed) socket.write(encodeFrame({ id: frame.id, code: 0, ...reply }));
          },
          (e: unknown) => {
            const err = e as { message?: string; code?: string };
            if (!socket.destroyed) {
              socket.write(
                encodeFrame({
                  id: frame.id,
                  code: 1,
                  head: { message: String(err?.message ?? e), code: err?.code ?? null },
                  parts: [],
                }),
              );
            }
          },
        );
        running.add(p);
        p.finally(() => running.delete(p));
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      connections.delete(socket);
      for (const it of iterators.open.values()) it.close().catch(() => {});
      iterators.open.clear();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    throw new FetchCacheError('ERR_IO', `cannot listen on '${socketPath}': ${(e as Error).message}`, {
      path: socketPath,
      cause: e,
    });
  }
  server.on('error', () => {});
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    guests: () => connections.size,
    close: () => {
      closing ??= (async () => {
        const stopped = new Promise<void>((r) => server.close(() => r()));
        for (const c of connections) c.destroy();
        await Promise.allSettled([...running]);
        await stopped;
      })();
      return closing;
    },
  };
}

/** Runs one request against `db`, as the host does for a guest (and a guest that took over does for itself). */
export async function answerRequest(
  db: KV,
  iterators: IteratorTable,
  f: Pick<Frame, 'code' | 'head' | 'parts'>,
): Promise<{ head: unknown; parts: (Uint8Array | undefined)[] }> {
  const k = f.parts[0]!;
  switch (f.code) {
    case OPS.get:
      return { head: null, parts: [await db.get(k)] };
    case OPS.getMany:
      return { head: null, parts: await db.getMany(f.parts as Uint8Array[]) };
    case OPS.has:
      return { head: await db.has(k), parts: [] };
    case OPS.hasMany:
      return { head: await db.hasMany(f.parts as Uint8Array[]), parts: [] };
    case OPS.put:
      await db.put(k, f.parts[1]!);
      return { head: null, parts: [] };
    case OPS.del:
      await db.del(k);
      return { head: null, parts: [] };
    case OPS.batch: {
      const types = f.head as ('put' | 'del')[];
      const ops: ({ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array })[] =
        [];
      let at = 0;
      for (const type of types) {
        if (type === 'put') ops.push({ type, key: f.parts[at++]!, value: f.parts[at++]! });
        else ops.push({ type: 'del', key: f.parts[at++]! });
      }
      await db.batch(ops);
      return { head: null, parts: [] };
    }
    case OPS.clear:
      await db.clear(decodeRange(f.head as RangeHead, f.parts));
      return { head: null, parts: [] };
    case OPS.iterOpen: {
      const head = f.head as RangeHead & { values: boolean };
      const id = iterators.next++;
      iterators.open.set(id, db.iterator({ ...decodeRange(head, f.parts), keys: true, values: head.values }));
      return { head: id, parts: [] };
    }
    case OPS.iterNext: {
      const { it, size } = f.head as { it: number; size: number };
      const iter = iterators.open.get(it);
      if (iter === undefined) throw new Error(`no iterator ${it}`);
      const entries = await iter.nextv(size);
      const parts: (Uint8Array | undefined)[] = [];
      for (const [key, value] of entries) parts.push(key as Uint8Array, value as Uint8Array | undefined);
      return { head: entries.length, parts };
    }
    case OPS.iterSeek: {
      const { it } = f.head as { it: number };
      const iter = iterators.open.get(it);
      if (iter === undefined) throw new Error(`no iterator ${it}`);
      iter.seek(k);
      return { head: null, parts: [] };
    }
    case OPS.iterClose: {
      const { it } = f.head as { it: number };
      const iter = iterators.open.get(it);
      iterators.open.delete(it);
      await iter?.close();
      return { head: null, parts: [] };
    }
    default:
      throw new Error(`unknown op ${f.code}`);
  }
}

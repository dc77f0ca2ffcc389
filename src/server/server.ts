/**
 * The HTTP server around the app: node:http with keep-alive, a header
 * timeout and a request timeout (a client that dribbles its headers or body
 * is cut off), an idle-socket timeout (a client that stops reading a NAR frees
 * its render slot), listening on `HOST:PORT` or a unix socket, and a graceful
 * stop: no new connections, idle keep-alive sockets closed, in-flight
 * requests given `graceMs` to finish, then everything closed.
 * cache-server.ts wraps it as the `CacheServer` of the library and of
 * `fetch-cache serve`.
 */

import { rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createApp } from './app.js';
import type { ServerServices } from './services.js';

export interface Bind {
  readonly kind: 'tcp' | 'unix';
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
}

export const DEFAULT_BIND = '127.0.0.1:5000';

/**
 * `HOST:PORT`, `[v6]:PORT`, `:PORT` (all interfaces), or a unix socket as
 * `unix:/path` or an absolute path.
 */
export function parseBind(text: string): Bind {
  if (text.startsWith('unix:')) return { kind: 'unix', path: text.slice(5) };
  if (text.startsWith('/')) return { kind: 'unix', path: text };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (m === null || port > 65535)
    throw new TypeError(`bad --bind '${text}': expected HOST:PORT or a unix socket path`);
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { kind: 'tcp', host, port };
}

/** How long the server waits for a client (requests, headers, idle sockets, kept-alive connections). */
export interface ServerTimeouts {
  /** Whole request (headers and body) must arrive within this (default 15 min, for large uploads). */
  requestMs?: number;
  /** Headers must arrive within this (default 10 s). */
  headersMs?: number;
  /** A socket with no traffic either way for this long is closed (default 60 s). */
  idleMs?: number;
  /** Idle keep-alive connections are kept this long (default 5 s). */
  keepAliveMs?: number;
}

export interface RunningServer {
  /** `http://host:port` or `unix:/path`. */
  readonly url: string;
  readonly server: Server;
  /** Stop gracefully (idempotent). */
  stop(graceMs?: number): Promise<void>;
}

export async function startServer(
  services: ServerServices,
  bind: Bind,
  timeouts: ServerTimeouts = {},
): Promise<RunningServer> {
  const app = createApp(services);
  const server = createServer({
    keepAlive: true,
    requestTimeout: timeouts.requestMs ?? 15 * 60_000,
    headersTimeout: timeouts.headersMs ?? 10_000,
    // Node enforces both timeouts only when it sweeps connections (30 s by default).
    connectionsCheckingInterval: Math.min(1_000, timeouts.headersMs ?? 1_000),
    noDelay: true,
  });
  server.keepAliveTimeout = timeouts.keepAliveMs ?? 5_000;
  server.timeout = timeouts.idleMs ?? 60_000;
  // Handlers still running (a NAR's hold is released after its socket closed): `stop` waits for them
  // before the caller closes the store under them.
  const running = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    running.add(p);
    void p.finally(() => running.delete(p));
  };
  // Responses not yet handed to the kernel, per connection. Node's own closeIdleConnections (which
  // server.close() calls too) counts a connection as idle once its response has been *ended*, and so
  // destroyed the tail of a NAR still queued in the socket when `stop` came during a download; here a
  // connection is idle only once its response closed (after 'finish': every byte handed to the kernel).
  const open = new Set<Socket>();
  const busy = new Map<Socket, number>();
  let closing = false;
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      busy.delete(socket);
    });
  });
  const begin = (socket: Socket, res: ServerResponse) => {
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const left = (busy.get(socket) ?? 1) - 1;
      if (left > 0) busy.set(socket, left);
      else busy.delete(socket);
      if (closing && left <= 0) socket.destroy();
    });
  };
  server.closeIdleConnections = () => {
    for (const socket of open) if (!busy.has(socket)) socket.destroy();
  };
  server.on('request', (req, res) => {
    begin(req.socket, res);
    track(app(req, res));
  });
  server.on('checkContinue', (req, res) => {
    begin(req.socket, res);
    track(app(req, res, true));
  });
  if (bind.kind === 'unix') rmSync(bind.path!, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (bind.kind === 'unix') server.listen(bind.path, resolve);
    else server.listen(bind.port, bind.host, resolve);
  });
  // Path-info changes by other processes are announced by the kernel rather than looked for per request
  // (only once listening: a server that failed to start leaves no watch behind).
  const changes = services.store.coordination.changes;
  changes.watch();
  const address = server.address();
  const url =
    bind.kind === 'unix'
      ? `unix:${bind.path}`
      : `http://${formatHost((address as AddressInfo).address)}:${(address as AddressInfo).port}`;
  let stopping: Promise<void> | undefined;
  return {
    url,
    server,
    stop(graceMs = 10_000) {
      stopping ??= new Promise<void>((resolve) => {
        closing = true;
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          changes.unwatch();
          if (bind.kind === 'unix') rmSync(bind.path!, { force: true });
          const settled = Promise.allSettled([...running]).then(() => {});
          const cap = new Promise<void>((r) => setTimeout(r, graceMs).unref());
          void Promise.race([settled, cap]).then(resolve);
        });
        server.closeIdleConnections();
      });
      return stopping;
    },
  };
}

function formatHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

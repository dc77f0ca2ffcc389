/**
 * A real HTTP server on 127.0.0.1 (random port) for fetcher tests, with routes
 * that misbehave on purpose: redirect chains, N failures before a success, a
 * connection dropped after N body bytes (with or without Range support), a
 * slow body, a Content-Length that lies (short or long), ETag /
 * Last-Modified with 304 answers. It counts requests per path and TCP
 * connections, so tests can assert "no request" and "no socket".
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export interface Route {
  /** Body bytes (default empty). */
  body?: Uint8Array | string;
  status?: number;
  headers?: Record<string, string>;
  /** Answer 30x to this path (relative or absolute). */
  redirect?: string;
  /** Answer `failStatus` (default 500) to the first `failTimes` requests. */
  failTimes?: number;
  failStatus?: number;
  /** Send an ETag and answer a matching If-None-Match with 304. */
  etag?: string;
  /** Send Last-Modified and answer an equal If-Modified-Since with 304. */
  lastModified?: string;
  /** Honour `Range: bytes=N-` (206), and advertise `Accept-Ranges`. */
  ranges?: boolean;
  /** Destroy the socket after this many body bytes, on the first `dropTimes` (default 1) full-body requests. */
  dropAfter?: number;
  dropTimes?: number;
  /** Declare this Content-Length instead of the real one (then close the connection). */
  contentLength?: number;
  /** Write the body in chunks of `chunkSize` with `slowMs` between them. */
  slowMs?: number;
  chunkSize?: number;
  /** Wait before sending the headers. */
  headersDelayMs?: number;
}

export interface RequestLog {
  path: string;
  headers: IncomingMessage['headers'];
}

export interface TestServer {
  readonly base: string;
  url(path: string): string;
  route(path: string, route: Route): void;
  /** Requests so far (all paths, or one path). */
  requests(path?: string): number;
  readonly log: RequestLog[];
  /** TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A key and certificate to serve HTTPS with instead of HTTP. */
export interface TlsIdentity {
  key: string | Buffer;
  cert: string | Buffer;
}

/** An HTTP server, or HTTPS with `tls`; `scheme` is what its URLs start with. */
export function createHttpServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  tls?: TlsIdentity,
): { server: Server; scheme: 'http' | 'https' } {
  return tls
    ? { server: createHttpsServer(tls, handler), scheme: 'https' }
    : { server: createServer(handler), scheme: 'http' };
}

export async function startServer(
  routes: Record<string, Route> = {},
  options: { tls?: TlsIdentity } = {},
): Promise<TestServer> {
  const table = new Map(Object.entries(routes));
  const counts = new Map<string, number>();
  const drops = new Map<string, number>();
  const log: RequestLog[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = req.url ?? '/';
    log.push({ path, headers: req.headers });
    counts.set(path, (counts.get(path) ?? 0) + 1);
    handle(path, req, res).catch(() => res.destroy());
  };
  const { server, scheme } = createHttpServer(handler, options.tls);
  server.on('connection', (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const route = table.get(path);
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const n = counts.get(path) ?? 0;
    if (route.headersDelayMs) await sleep(route.headersDelayMs);
    if (route.failTimes !== undefined && n <= route.failTimes) {
      res.writeHead(route.failStatus ?? 500).end('failing on purpose');
      return;
    }
    if (route.redirect !== undefined) {
      res.writeHead(302, { location: route.redirect }).end();
      return;
    }
    const body = typeof route.body === 'string' ? Buffer.from(route.body) : Buffer.from(route.body ?? []);
    const headers: Record<string, string> = { ...route.headers };
    if (route.etag) headers.etag = route.etag;
    if (route.lastModified) headers['last-modified'] = route.lastModified;
    if (route.ranges) headers['accept-ranges'] = 'bytes';
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if ((route.etag && inm === route.etag) || (route.lastModified && ims === route.lastModified)) {
      res.writeHead(304, headers).end();
      return;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const rangeOk = ifRange === undefined || ifRange === route.etag || ifRange === route.lastModified;
    if (route.ranges && range && rangeOk) {
      start = Number(range[1]);
      headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
      headers['content-length'] = String(body.length - start);
      res.writeHead(206, headers);
      await send(res, body.subarray(start), route, undefined);
      return;
    }
    const dropsSoFar = drops.get(path) ?? 0;
    const drop =
      route.dropAfter !== undefined && dropsSoFar < (route.dropTimes ?? 1) ? route.dropAfter : undefined;
    if (drop !== undefined) drops.set(path, dropsSoFar + 1);
    if (route.contentLength !== undefined) {
      // A lying Content-Length: write the raw response and close. A too-short one is a keep-alive
      // response followed by stray bytes, as a server that miscounts its body produces.
      const close = route.contentLength > body.length ? 'connection: close\r\n' : '';
      const head = `HTTP/1.1 ${route.status ?? 200} OK\r\ncontent-length: ${route.contentLength}\r\n${close}${Object.entries(
        headers,
      )
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`;
      res.socket?.write(Buffer.concat([Buffer.from(head), body]));
      res.socket?.end();
      return;
    }
    headers['content-length'] = String(body.length);
    res.writeHead(route.status ?? 200, headers);
    await send(res, body, route, drop);
  }

  async function send(
    res: ServerResponse,
    body: Buffer,
    route: Route,
    dropAfter: number | undefined,
  ): Promise<void> {
    const size = route.chunkSize ?? 16 * 1024;
    let sent = 0;
    while (sent < body.length) {
      let end = Math.min(body.length, sent + size);
      if (dropAfter !== undefined && end >= dropAfter) {
        end = dropAfter;
        await new Promise<void>((r) => res.write(body.subarray(sent, end), () => r()));
        await sleep(20);
        res.socket?.destroy();
        return;
      }
      const ok = res.write(body.subarray(sent, end));
      sent = end;
      if (!ok) await new Promise<void>((r) => res.once('drain', () => r()));
      if (route.slowMs) await sleep(route.slowMs);
    }
    res.end();
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  const base = `${scheme}://127.0.0.1:${port}`;
  return {
    base,
    url: (path) => `${base}${path}`,
    route: (path, route) => {
      table.set(path, route);
    },
    requests: (path) =>
      path === undefined ? [...counts.values()].reduce((a, b) => a + b, 0) : (counts.get(path) ?? 0),
    log,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

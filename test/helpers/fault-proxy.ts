/**
 * A forwarding HTTP proxy on 127.0.0.1 (random port) in front of a real
 * server, which misbehaves on demand: answers a status instead of forwarding,
 * drops the connection before answering, or cuts a response body after N
 * bytes. Faults are queued and each applies to one request (in arrival
 * order, optionally only to requests of one method). It counts requests and
 * the most TCP connections open at once, so client tests can assert retries
 * and connection bounds against the real server behind it.
 */

import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | { readonly kind: 'status'; readonly status: number; readonly method?: string }
  | { readonly kind: 'reset'; readonly method?: string }
  | { readonly kind: 'cut-body'; readonly after: number; readonly method?: string };

export interface FaultProxy {
  /** The proxy's origin, `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** Queues faults; each is used by the next request it matches. */
  inject(...faults: Fault[]): void;
  /** Faults not used yet. */
  pending(): number;
  /** Requests received (by method, or all). */
  requests(method?: string): number;
  /** The most connections that were open at the same time. */
  peakConnections(): number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const to = new URL(target);
  const faults: Fault[] = [];
  const counts = new Map<string, number>();
  const sockets = new Set<Socket>();
  let peak = 0;

  const takeFault = (method: string): Fault | undefined => {
    const i = faults.findIndex((f) => f.method === undefined || f.method === method);
    return i < 0 ? undefined : faults.splice(i, 1)[0];
  };

  const forward = (req: IncomingMessage, res: ServerResponse, fault: Fault | undefined) => {
    const out = request(
      {
        host: to.hostname,
        port: to.port,
        method: req.method,
        path: req.url,
        headers: req.headers, // Host stays the proxy's: it is what the client signed
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (fault?.kind !== 'cut-body') {
          up.pipe(res);
          return;
        }
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          if (sent >= fault.after) return;
          const part = chunk.subarray(0, fault.after - sent);
          sent += part.length;
          res.write(part);
          if (sent >= fault.after) {
            up.destroy();
            res.socket?.destroy();
          }
        });
        up.on('end', () => res.end());
      },
    );
    out.on('error', () => res.socket?.destroy());
    req.pipe(out);
  };

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    counts.set(method, (counts.get(method) ?? 0) + 1);
    const fault = takeFault(method);
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      req.resume();
      req.on('end', () => {
        res.writeHead(fault.status, { 'content-type': 'application/xml' });
        res.end(
          `<?xml version="1.0"?><Error><Code>InjectedFault</Code><Message>injected ${fault.status}</Message></Error>`,
        );
      });
      return;
    }
    forward(req, res, fault);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    peak = Math.max(peak, sockets.size);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject: (...f) => faults.push(...f),
    pending: () => faults.length,
    requests: (method) =>
      method === undefined ? [...counts.values()].reduce((a, b) => a + b, 0) : (counts.get(method) ?? 0),
    peakConnections: () => peak,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A load balancer in front of two `serve` processes, for the tests of
 * stateless serving: every `PUT /nar/…` goes to `nars` (A), everything else
 * to `rest` (B), so a `nix copy --to` through it sends its NAR and its
 * narinfo to different servers. It logs what went where (`seen`).
 */

import { createServer, request, type Server } from 'node:http';

export interface Balancer {
  readonly url: string;
  /** `METHOD nar|narinfo|path -> A|B`, in arrival order. */
  readonly seen: string[];
  readonly server: Server;
  close(): Promise<void>;
}

export async function startBalancer(nars: string, rest: string): Promise<Balancer> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    const toNars = req.method === 'PUT' && req.url!.startsWith('/nar/');
    const target = new URL(req.url!, toNars ? nars : rest);
    const what = req.url!.startsWith('/nar/') ? 'nar' : req.url!.endsWith('.narinfo') ? 'narinfo' : req.url;
    seen.push(`${req.method} ${what} -> ${toNars ? 'A' : 'B'}`);
    const { expect: _continue, ...headers } = req.headers;
    const out = request(target, { method: req.method, headers }, (back) => {
      res.writeHead(back.statusCode ?? 502, back.headers);
      back.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A smart-HTTP git server for tests: a node http server on 127.0.0.1:0 that
 * runs `git http-backend` as a CGI program over the repositories below
 * `projectRoot` (GIT_HTTP_EXPORT_ALL, so every repository is served). The
 * request body is buffered, inflated when the client sent
 * `Content-Encoding: gzip` (the git CLI does for large negotiations), and
 * handed to the backend with an exact CONTENT_LENGTH; the CGI response
 * headers (`Status:` included) are parsed and the rest is streamed back.
 * Every request is counted and its response bytes summed, so tests can tell
 * a cache hit (no requests) and an incremental fetch (a small pack) apart.
 */

import { spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { createHttpServer, type TlsIdentity } from './http-server.js';

export interface GitHttpRequestLog {
  readonly method: string;
  readonly url: string;
  /** Body bytes sent back (after the CGI headers). */
  responseBytes: number;
}

export interface GitHttpServer {
  /** `http://127.0.0.1:<port>` (https with `tls`); a repository `<root>/x.git` is at `${baseUrl}/x.git`. */
  readonly baseUrl: string;
  readonly requests: GitHttpRequestLog[];
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body;
}

function splitCgiHeaders(head: string): { status: number; headers: [string, string][] } {
  let status = 200;
  const headers: [string, string][] = [];
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
    else headers.push([name, value]);
  }
  return { status, headers };
}

async function handle(
  projectRoot: string,
  req: IncomingMessage,
  res: ServerResponse,
  log: GitHttpRequestLog,
): Promise<void> {
  const body = await readBody(req);
  const url = new URL(req.url ?? '/', 'http://localhost');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.replace(/^\?/, ''),
    REQUEST_METHOD: req.method ?? 'GET',
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    CONTENT_LENGTH: String(body.length),
    REMOTE_ADDR: '127.0.0.1',
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: projectRoot,
  };
  const protocol = req.headers['git-protocol'];
  if (typeof protocol === 'string') env.GIT_PROTOCOL = protocol;
  const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
  child.stdin.on('error', () => {});
  child.stdin.end(body);
  let head = Buffer.alloc(0);
  let headerDone = false;
  for await (const chunk of child.stdout) {
    if (headerDone) {
      log.responseBytes += chunk.length;
      if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      continue;
    }
    head = Buffer.concat([head, chunk as Buffer]);
    const crlf = head.indexOf('\r\n\r\n');
    const lf = head.indexOf('\n\n');
    const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
    if (end < 0) continue;
    const { status, headers } = splitCgiHeaders(head.subarray(0, end).toString('latin1'));
    res.statusCode = status;
    for (const [name, value] of headers) res.setHeader(name, value);
    headerDone = true;
    const rest = head.subarray(end);
    log.responseBytes += rest.length;
    res.write(rest);
  }
  if (!headerDone) res.statusCode = 502;
  res.end();
}

/** A request listener serving every repository below `projectRoot` over smart HTTP, logging into `requests`. */
export function gitHttpHandler(
  projectRoot: string,
  requests: GitHttpRequestLog[] = [],
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const log: GitHttpRequestLog = { method: req.method ?? 'GET', url: req.url ?? '/', responseBytes: 0 };
    requests.push(log);
    handle(projectRoot, req, res, log).catch(() => {
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    });
  };
}

/** Serve every repository below `projectRoot` over smart HTTP until `close()`. */
export async function startGitHttpServer(
  projectRoot: string,
  options: { tls?: TlsIdentity } = {},
): Promise<GitHttpServer> {
  const requests: GitHttpRequestLog[] = [];
  const handler = gitHttpHandler(projectRoot, requests);
  const { server, scheme } = createHttpServer(handler, options.tls);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `${scheme}://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

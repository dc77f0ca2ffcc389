/**
 * The HTTP vocabulary every handler shares: `HttpError`, the one typed
 * exception a handler throws to answer with a status (the app turns it into a
 * plain-text error response), the per-request context handed to handlers, and
 * small response helpers that keep HEAD body-less and count the body bytes
 * sent for /metrics.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';

/** An HTTP failure with its status; `headers` go on the error response (e.g. WWW-Authenticate). */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new TypeError(`HttpError status must be 4xx or 5xx, got ${status}`);
    }
    this.status = status;
    this.headers = headers;
  }
}

/** What a handler gets: the request, the response, the matched route's captures and a byte counter. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The request path (already checked by app.ts: no `..`, `//`, `%`, NUL). */
  readonly path: string;
  /** The query string without `?`, or `''`. */
  readonly query: string;
  /** Regex captures of the matched route. */
  readonly params: readonly string[];
  readonly head: boolean;
  /** Body bytes written so far (for /metrics and the access log). */
  bytesSent: number;
}

export const NO_STORE = 'no-store';

/** Send a complete body (string or bytes) with a Content-Length; HEAD gets the headers only. */
export function sendBody(
  ctx: RequestContext,
  status: number,
  contentType: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  // The flat [name, value, …] form: Node takes it without building a header object per response.
  const head = ['Content-Type', contentType, 'Content-Length', String(bytes.length)];
  for (const name in headers) head.push(name, headers[name]!);
  ctx.res.writeHead(status, head);
  if (ctx.head) {
    ctx.res.end();
    return;
  }
  ctx.bytesSent += bytes.length;
  ctx.res.end(bytes);
}

/** A plain-text error body; never cached by clients or proxies. */
export function sendError(ctx: RequestContext, error: HttpError): void {
  sendBody(ctx, error.status, 'text/plain; charset=utf-8', `${error.message}\n`, {
    'Cache-Control': NO_STORE,
    ...error.headers,
  });
}

/**
 * Read a request body into memory, refusing more than `limit` bytes (413).
 * Only for small bodies (narinfo); NARs stream.
 */
export async function readSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw new HttpError(413, `request body over ${limit} bytes`);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `request body over ${limit} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/**
 * The route table and the request dispatcher. Every URL the cache answers is
 * one row below, matched on a request path that has first been checked to be
 * plain: it starts with `/`, holds only `[A-Za-z0-9._-]` and single slashes,
 * and has no `.`/`..` segment — so `%2e%2e`, `//`, backslashes, NUL and other
 * encodings are refused (400) before any route sees them. Handlers then find
 * everything by hash in the store; nothing maps a URL to a file, so no request
 * can reach anything that is not a store path. Handlers throw `HttpError` to
 * answer with a status; anything else is a 500 (logged, never shown). PUT
 * routes require the upload token before the body is read (and before
 * `100 Continue` is sent). Each request is counted in the telemetry and
 * logged as one JSON line.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { getCacheInfo } from './cache-info.js';
import { getHealth } from './health.js';
import { HttpError, type RequestContext, sendError } from './http.js';
import { getFavicon, getIndexPage } from './index-page.js';
import { getListing, putListing } from './listing.js';
import { describeError } from './log.js';
import { getMetrics } from './metrics.js';
import { getNar, putNar } from './nar.js';
import { getNarInfo, putNarInfo } from './narinfo.js';
import { getPathPage } from './path-page.js';
import type { ServerServices } from './services.js';

export { HttpError } from './http.js';

type Handler = (ctx: RequestContext, s: ServerServices) => void | Promise<void>;

export interface Route {
  /** Label for metrics and logs. */
  readonly name: string;
  readonly pattern: RegExp;
  /** GET handlers also answer HEAD (with `ctx.head`). */
  readonly get?: Handler;
  /** PUT handlers run only with the upload token. */
  readonly put?: Handler;
}

export const ROUTES: readonly Route[] = [
  { name: 'index', pattern: /^\/$/, get: getIndexPage },
  { name: 'favicon', pattern: /^\/favicon\.ico$/, get: getFavicon },
  { name: 'path-page', pattern: /^\/path\/([^/]+)$/, get: getPathPage },
  { name: 'nix-cache-info', pattern: /^\/nix-cache-info$/, get: getCacheInfo },
  { name: 'narinfo', pattern: /^\/([^/]+)\.narinfo$/, get: getNarInfo, put: putNarInfo },
  { name: 'listing', pattern: /^\/([^/]+)\.ls$/, get: getListing, put: putListing },
  { name: 'nar', pattern: /^\/nar\/([^/.]+)\.nar(\.[a-z0-9]+)?$/, get: getNar, put: putNar },
  { name: 'health', pattern: /^\/health$/, get: getHealth },
  { name: 'metrics', pattern: /^\/metrics$/, get: getMetrics },
];

const PLAIN_PATH = /^(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*\/?$/;

/**
 * Split a request target into path and query; 400 unless the path is plain
 * (see the header). Absolute-form targets (`http://…`) are refused too.
 */
export function checkTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  if (
    !path.startsWith('/') ||
    path.length > 1024 ||
    !PLAIN_PATH.test(path) ||
    /(^|\/)\.\.?(\/|$)/.test(path)
  ) {
    throw new HttpError(400, 'bad request path');
  }
  return { path, query };
}

function match(path: string): { route: Route; params: string[] } | undefined {
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (m) return { route, params: m.slice(1).map((p) => p ?? '') };
  }
  return undefined;
}

function allowed(route: Route): string {
  return [route.get ? 'GET, HEAD' : '', route.put ? 'PUT' : ''].filter(Boolean).join(', ');
}

/** A request listener for node:http (also handles `checkContinue` when passed `expectsContinue`). */
export function createApp(s: ServerServices) {
  /** Handles one request; the promise settles when its handler is done (a stopping server waits for it). */
  return function handle(req: IncomingMessage, res: ServerResponse, expectsContinue = false): Promise<void> {
    const started = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    let routeName = 'other';
    const ctx: RequestContext = {
      req,
      res,
      path: '',
      query: '',
      params: [],
      head: method === 'HEAD',
      bytesSent: 0,
    };
    let logged = false;
    const finish = () => {
      if (logged) return;
      logged = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = res.writableFinished ? res.statusCode : res.headersSent ? res.statusCode : 499;
      s.telemetry.observe(routeName, method, status, ctx.bytesSent, seconds);
      if (s.log.wants?.('info') === false) return;
      s.log.log('info', 'request', {
        method,
        path: (ctx.path || req.url || '').slice(0, 200),
        route: routeName,
        status,
        bytes: ctx.bytesSent,
        ms: Math.round(seconds * 1e5) / 100,
        ...(res.writableFinished ? {} : { aborted: true }),
      });
    };
    // 'close' follows 'finish' on every response, and comes alone when the client left.
    res.once('close', finish);

    const run = async () => {
      const { path, query } = checkTarget(req.url ?? '');
      Object.assign(ctx, { path, query });
      const found = match(path);
      if (found === undefined) throw new HttpError(404, 'not found');
      routeName = found.route.name;
      Object.assign(ctx, { params: found.params });
      const { route } = found;
      let handler: Handler | undefined;
      if ((method === 'GET' || method === 'HEAD') && route.get) handler = route.get;
      else if (method === 'PUT' && route.put) {
        s.auth.check(req);
        handler = route.put;
      }
      if (handler === undefined)
        throw new HttpError(405, `${method} is not allowed here`, { Allow: allowed(route) });
      if (expectsContinue) res.writeContinue();
      await handler(ctx, s);
    };

    return run().catch((e: unknown) => {
      let error: HttpError;
      if (e instanceof HttpError) error = e;
      else {
        // A database found damaged is logged as its coded error, naming the database and what to do.
        const logged = s.store.maintenance.damage(e) ?? e;
        s.log.log('error', 'request failed', { method, path: ctx.path, error: describeError(logged) });
        error = new HttpError(500, 'internal error');
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // An unread request body (a refused PUT) cannot be skipped on a kept-alive connection.
      if (!req.complete) res.setHeader('Connection', 'close');
      sendError(ctx, error);
    });
  };
}

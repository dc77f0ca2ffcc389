/**
 * `GET /health`: 200 with a small JSON body while the store answers (one
 * path-info read), 503 when it does not — what a load balancer or a
 * container health check polls.
 */

import { NO_STORE, type RequestContext, sendBody } from './http.js';
import { describeError } from './log.js';
import type { ServerServices } from './services.js';

const PROBE = new Uint8Array(20);

export async function getHealth(ctx: RequestContext, s: ServerServices): Promise<void> {
  let status = 200;
  let body: Record<string, unknown>;
  try {
    await s.store.pathInfos.get(PROBE);
    body = { status: 'ok', uptimeSeconds: Math.round((Date.now() - s.startedAt) / 1000) };
  } catch (e) {
    status = 503;
    body = { status: 'error', error: describeError(e) };
  }
  sendBody(ctx, status, 'application/json', `${JSON.stringify(body)}\n`, { 'Cache-Control': NO_STORE });
}

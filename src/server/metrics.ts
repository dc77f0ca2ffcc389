/**
 * `GET /metrics`: Prometheus text format. Request counters, bytes and the
 * latency histogram come from `Telemetry`; store size and path count from the
 * store snapshot (at most `StoreStats`' max age old); renders and uploads are
 * sampled now.
 */

import { NO_STORE, type RequestContext, sendBody } from './http.js';
import type { ServerServices } from './services.js';

export async function getMetrics(ctx: RequestContext, s: ServerServices): Promise<void> {
  const snap = await s.stats.snapshot();
  const text = s.telemetry.render([
    { name: 'fetch_cache_store_paths', help: 'Store paths in the cache.', value: snap.paths.length },
    {
      name: 'fetch_cache_store_nar_bytes',
      help: 'Sum of the NAR sizes of all store paths.',
      value: snap.narBytes,
    },
    {
      name: 'fetch_cache_nar_renders_active',
      help: 'NAR downloads being rendered.',
      value: s.renders.active,
    },
    {
      name: 'fetch_cache_nar_renders_queued',
      help: 'NAR downloads waiting for a slot.',
      value: s.renders.queued,
    },
    {
      name: 'fetch_cache_uploads_pending',
      help: 'Uploaded NARs waiting for their narinfo.',
      value: await s.uploads.count(),
    },
    {
      name: 'fetch_cache_uptime_seconds',
      help: 'Seconds since the server started.',
      value: Math.round((Date.now() - s.startedAt) / 1000),
    },
  ]);
  sendBody(ctx, 200, 'text/plain; version=0.0.4; charset=utf-8', text, { 'Cache-Control': NO_STORE });
}

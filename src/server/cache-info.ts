/**
 * `GET /nix-cache-info` (docs/formats.md §9): `StoreDir`, `WantMassQuery: 1`
 * and `Priority`. Nix fetches it first and refuses a cache without it (or
 * tries to PUT one), so it is always served.
 */

import { formatNixCacheInfo } from '../nix/cache-info.js';
import { type RequestContext, sendBody } from './http.js';
import type { ServerServices } from './services.js';

export function getCacheInfo(ctx: RequestContext, s: ServerServices): void {
  const text = formatNixCacheInfo({
    storeDir: s.store.storeDir,
    wantMassQuery: true,
    priority: s.config.priority,
  });
  sendBody(ctx, 200, 'text/x-nix-cache-info', text, { 'Cache-Control': 'public, max-age=3600' });
}

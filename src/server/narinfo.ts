/**
 * `/<hashpart>.narinfo`. GET/HEAD look the path info up by the 32-character
 * hash part (400 when it is not one, 404 when the cache lacks it) and serve
 * the signed text from `NarInfoSource`. PUT (upload token only, checked by
 * the app) commits a narinfo whose NAR was uploaded before (upload.ts).
 * A GET hit and an upload count as a use of the path for `gc --max-size`
 * (path-use.ts); HEAD, an existence check, does not.
 */

import { decodeNix32 } from '../nix/nixbase32.js';
import { storePathHashPart } from '../nix/store-path.js';
import { HttpError, NO_STORE, type RequestContext, readSmallBody, sendBody } from './http.js';
import { NARINFO_CONTENT_TYPE } from './narinfo-source.js';
import { touchServed } from './path-use.js';
import type { ServerServices } from './services.js';
import { commitNarInfo } from './upload.js';

const HASH_PART = /^[0-9a-df-np-sv-z]{32}$/;

/** The 20-byte digest of a URL hash part; 400 if it is not 32 nix32 characters. */
export function parseHashPart(hashPart: string): Uint8Array {
  if (!HASH_PART.test(hashPart)) throw new HttpError(400, `'${hashPart}' is not a store path hash`);
  try {
    return decodeNix32(hashPart);
  } catch {
    throw new HttpError(400, `'${hashPart}' is not a store path hash`);
  }
}

const NARINFO_HEADERS = { 'Cache-Control': 'public, max-age=300' };

export async function getNarInfo(ctx: RequestContext, s: ServerServices): Promise<void> {
  const hashPart = ctx.params[0]!;
  // Taken before the read: a write after it changes the stamp (narinfo-source.ts).
  const stamp = s.store.coordination.changes.current();
  let response = s.narInfos.hit(hashPart, stamp);
  if (response === undefined) {
    const info = await s.store.pathInfos.get(parseHashPart(hashPart));
    if (info === undefined) throw new HttpError(404, `no path with hash ${hashPart} in this cache`);
    response = s.narInfos.response(info, stamp);
  }
  if (!ctx.head) {
    // touchServed records at most once a minute per path; skip even asking it within a second.
    const now = Date.now();
    if (now - response.touchedAt >= 1000 || now < response.touchedAt) {
      response.touchedAt = now;
      touchServed(s, response.digest);
    }
  }
  sendBody(ctx, 200, NARINFO_CONTENT_TYPE, response.body, NARINFO_HEADERS);
}

export async function putNarInfo(ctx: RequestContext, s: ServerServices): Promise<void> {
  const hashPart = ctx.params[0]!;
  parseHashPart(hashPart);
  const body = await readSmallBody(ctx.req, s.config.maxNarInfoBytes);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new HttpError(400, 'narinfo is not UTF-8');
  }
  const info = await commitNarInfo(text, hashPart, s.store, s.uploads);
  touchServed(s, info.storePath.digest);
  s.narInfos.invalidate(storePathHashPart(info.storePath));
  s.stats.invalidate();
  s.log.log('info', 'path uploaded', {
    storePath: `${s.store.storeDir}/${hashPart}-${info.storePath.name}`,
    narSize: info.narSize,
  });
  sendBody(ctx, 200, 'text/plain; charset=utf-8', 'ok\n', { 'Cache-Control': NO_STORE });
}

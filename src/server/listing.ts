/**
 * `GET /<hashpart>.ls`: the NAR listing JSON (docs/formats.md §1) with
 * `narOffset` for every regular file, as harmonia and nar-bridge serve it.
 * Computed from castore metadata alone — directories are read, blobs are not —
 * walking the tree in NAR order and adding up token sizes, so a listing of a
 * gigabyte NAR costs as much as one of a kilobyte NAR with the same shape.
 * Names or targets that are not UTF-8 cannot be listed (404). PUT (Nix's
 * `write-nar-listing`) is accepted and discarded: listings are derived.
 */

import type { Node } from '../castore/nodes.js';
import { isFetchCacheError } from '../errors.js';
import type { RenderServices } from '../nar-render/render.js';
import { NAR_HEADER_SIZE } from '../nix/nar/encoder.js';
import { type NarListing, type NarListingNode, renderNarListing } from '../nix/nar/listing.js';
import { padded } from '../nix/nar/wire.js';
import { HttpError, NO_STORE, type RequestContext, readSmallBody, sendBody } from './http.js';
import { parseHashPart } from './narinfo.js';
import type { ServerServices } from './services.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function text(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new HttpError(404, `no listing: a ${what} is not valid UTF-8`);
  }
}

/**
 * The listing of `node`. NAR layout (src/nix/nar/wire.ts tokens): a node body
 * starts after `"(" "type"`; a regular file's contents follow `regular
 * [executable ""] contents <u64 size>`, i.e. 40 (72 if executable) bytes in;
 * a directory body is `directory` (24), then per entry `entry ( name` (48) +
 * the name string + `node ( type` (48) + the child body + `)` (16), then `)` (16).
 */
export async function castoreListing(node: Node, services: RenderServices): Promise<NarListing> {
  async function walk(n: Node, pos: number): Promise<{ listing: NarListingNode; size: number }> {
    switch (n.type) {
      case 'file': {
        const head = n.executable ? 72 : 40;
        const listing: NarListingNode = { type: 'regular', size: n.size, narOffset: pos + head };
        if (n.executable) listing.executable = true;
        return { listing, size: head + padded(n.size) + 16 };
      }
      case 'symlink':
        return {
          listing: { type: 'symlink', target: text(n.target, 'symlink target') },
          size: 40 + padded(n.target.length) + 16,
        };
      case 'directory': {
        const dir = await services.directories.get(n.digest);
        if (dir === undefined) throw new Error('directory missing from the store');
        const entries: Record<string, NarListingNode> = {};
        let at = pos + 24;
        for (const e of dir) {
          at += 48 + 8 + padded(e.name.length) + 48;
          const child = await walk(e.node, at);
          Object.defineProperty(entries, text(e.name, 'file name'), {
            value: child.listing,
            enumerable: true,
            writable: true,
            configurable: true,
          });
          at += child.size + 16;
        }
        return { listing: { type: 'directory', entries }, size: at + 16 - pos };
      }
    }
  }
  return { version: 1, root: (await walk(node, NAR_HEADER_SIZE)).listing };
}

export async function getListing(ctx: RequestContext, s: ServerServices): Promise<void> {
  const hashPart = ctx.params[0]!;
  const info = await s.store.pathInfos.get(parseHashPart(hashPart));
  if (info === undefined) throw new HttpError(404, `no path with hash ${hashPart} in this cache`);
  let body: string;
  try {
    body = renderNarListing(await castoreListing(info.node, s.store));
  } catch (e) {
    if (isFetchCacheError(e)) throw new HttpError(404, `no listing: ${e.message}`);
    throw e;
  }
  sendBody(ctx, 200, 'application/json', body, { 'Cache-Control': 'public, max-age=86400' });
}

export async function putListing(ctx: RequestContext, _s: ServerServices): Promise<void> {
  parseHashPart(ctx.params[0]!);
  await readSmallBody(ctx.req, 64 * 1024 * 1024);
  sendBody(ctx, 200, 'text/plain; charset=utf-8', 'ok (listings are derived from the store)\n', {
    'Cache-Control': NO_STORE,
  });
}

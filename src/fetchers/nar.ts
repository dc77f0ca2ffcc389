/**
 * The `nar` source (snix `Fetch::NAR`, `<nix/fetchurl.nix>` with `unpack`):
 * a `.nar`, plain or compressed (detected by content, src/fetchers/decompress.ts),
 * parsed strictly and ingested as it streams. The NAR's sha256 and size are
 * computed on the way, so the base needs no second render for a sha256 hash.
 * A malformed NAR is ERR_BAD_NAR, corrupt compression ERR_BAD_ARCHIVE.
 */

import { ingestNar } from '../nar-render/ingest-nar.js';
import { decompress } from './decompress.js';
import { download, type Source } from './source.js';
import type { NarSpec } from './types.js';

export const narSource: Source<NarSpec> = {
  async ingest(spec, ctx) {
    const dl = await download(ctx, spec);
    if (dl.notModified) return { notModified: true, metadata: { url: dl.url } };
    const { node, narSha256, narSize } = await ingestNar(decompress(dl.body), ctx.cache);
    return {
      node,
      narSum: { narSha256, narSize },
      metadata: {
        url: dl.url,
        ...(dl.etag === undefined ? {} : { etag: dl.etag }),
        ...(dl.lastModified === undefined ? {} : { lastModifiedHeader: dl.lastModified }),
      },
    };
  },
};

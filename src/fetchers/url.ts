/**
 * The `url` source (`builtins.fetchurl`, snix `Fetch::URL` / `Executable`):
 * the body streams into one blob while it is hashed flat with the algorithm
 * the base will check. With `executable` the file node is executable and
 * its hash is the NAR hash, which the base computes from the node — the NAR
 * size then comes from the render, never from the file size (snix's glue
 * recorded the file size as the NAR size there; that cannot happen here).
 */

import { uploadBlob } from '../castore/ingest.js';
import { fileNode } from '../castore/nodes.js';
import { createHasher, type Hasher } from '../nix/hashing.js';
import { download, type Source } from './source.js';
import type { UrlSpec } from './types.js';

async function* hashing(
  body: AsyncIterable<Uint8Array>,
  hasher: Hasher | undefined,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    hasher?.update(chunk);
    yield chunk;
  }
}

export const urlSource: Source<UrlSpec> = {
  async ingest(spec, ctx) {
    const dl = await download(ctx, spec);
    if (dl.notModified) return { notModified: true, metadata: { url: dl.url } };
    const executable = spec.executable === true;
    const hasher = executable ? undefined : createHasher(ctx.algo);
    const blob = await uploadBlob(ctx.cache.blobs, hashing(dl.body, hasher));
    return {
      node: fileNode(blob.digest, blob.size, executable),
      flatHash: hasher === undefined ? undefined : { algo: ctx.algo, digest: hasher.digest() },
      metadata: {
        url: dl.url,
        ...(dl.etag === undefined ? {} : { etag: dl.etag }),
        ...(dl.lastModified === undefined ? {} : { lastModifiedHeader: dl.lastModified }),
      },
    };
  },
};

/**
 * The `url` source (`builtins.fetchurl`, snix `Fetch::URL` / `Executable`):
 * the body streams into one blob while it is hashed flat with the algorithm
 * the base will check, and as the NAR of one file (which the path info
 * records), so nothing is read back from the store. The NAR names the file's
 * size before its bytes: it is hashed on the way when the server declared
 * the size (Content-Length, no Content-Encoding changing it) and the body
 * has exactly that many bytes; otherwise the base renders it from the
 * stored blob. With `executable` the file node is executable and its hash is
 * the NAR hash — the NAR size is that of the NAR, never the file size
 * (snix's glue recorded the file size as the NAR size there; that cannot
 * happen here).
 */

import { uploadBlob } from '../castore/ingest.js';
import { fileNode } from '../castore/nodes.js';
import { FileNar } from '../nar-render/file-nar.js';
import { createHasher, type Hasher } from '../nix/hashing.js';
import { download, type Source } from './source.js';
import type { UrlSpec } from './types.js';

async function* hashing(
  body: AsyncIterable<Uint8Array>,
  hasher: Hasher | undefined,
  nar: FileNar | undefined,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    hasher?.update(chunk);
    nar?.update(chunk);
    yield chunk;
  }
}

export const urlSource: Source<UrlSpec> = {
  async ingest(spec, ctx) {
    const dl = await download(ctx, spec);
    if (dl.notModified) return { notModified: true, metadata: { url: dl.url } };
    const executable = spec.executable === true;
    const hasher = executable ? undefined : createHasher(ctx.algo);
    const nar = dl.size === undefined ? undefined : new FileNar(executable, dl.size);
    const blob = await uploadBlob(ctx.cache.blobs, hashing(dl.body, hasher, nar));
    return {
      node: fileNode(blob.digest, blob.size, executable),
      flatHash: hasher === undefined ? undefined : { algo: ctx.algo, digest: hasher.digest() },
      narSum: nar?.finish(),
      metadata: {
        url: dl.url,
        ...(dl.etag === undefined ? {} : { etag: dl.etag }),
        ...(dl.lastModified === undefined ? {} : { lastModifiedHeader: dl.lastModified }),
      },
    };
  },
};

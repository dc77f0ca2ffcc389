/**
 * The `path` source: a local file or directory, as `nix-store --add` sees it
 * (recursive, through src/fs/import.ts) or, with `flat`, as
 * `nix-store --add-fixed`: the file's bytes (symlinks followed, as Nix reads
 * the file) hashed on the way in and stored as a non-executable file.
 */

import { realpathSync, statSync } from 'node:fs';
import { ingestEntries, uploadBlob } from '../castore/ingest.js';
import { fileNode } from '../castore/nodes.js';
import { FetchCacheError } from '../errors.js';
import { ioError } from '../fs/dump.js';
import { localEntries } from '../fs/import.js';
import { createHasher } from '../nix/hashing.js';
import type { Source } from './source.js';
import type { PathSpec } from './types.js';

export const pathSource: Source<PathSpec> = {
  async ingest(spec, ctx) {
    if (!spec.flat) return { node: await ingestEntries(localEntries(spec.path), ctx.cache), metadata: {} };
    let real: string;
    try {
      real = realpathSync(spec.path);
    } catch (e) {
      throw ioError(e, spec.path);
    }
    // Check the root itself: a directory's entry stream starts with its children.
    let isFile: boolean;
    try {
      isFile = statSync(real).isFile();
    } catch (e) {
      throw ioError(e, spec.path);
    }
    const [entry] = isFile ? localEntries(real) : [];
    if (entry?.type !== 'file' || !('contents' in entry)) {
      throw new FetchCacheError('ERR_UNSUPPORTED_FILE_TYPE', `'${spec.path}' is not a regular file`, {
        path: spec.path,
      });
    }
    const hasher = createHasher(ctx.algo);
    const contents = entry.contents;
    async function* hashed(): AsyncGenerator<Uint8Array> {
      if (contents instanceof Uint8Array) {
        hasher.update(contents);
        yield contents;
        return;
      }
      for await (const chunk of contents) {
        hasher.update(chunk);
        yield chunk;
      }
    }
    const blob = await uploadBlob(ctx.cache.blobs, hashed());
    return {
      node: fileNode(blob.digest, blob.size, false),
      flatHash: { algo: ctx.algo, digest: hasher.digest() },
      metadata: {},
    };
  },
};

/**
 * The `path` source: a local file or directory, as `nix-store --add` sees it
 * (recursive, through src/fs/import.ts) or, with `flat`, as
 * `nix-store --add-fixed`: the file's bytes (symlinks followed, as Nix reads
 * the file) hashed on the way in and stored as a non-executable file.
 */

import { realpathSync, statSync } from 'node:fs';
import { type IngestEntry, ingestEntries, uploadBlob } from '../castore/ingest.js';
import { fileNode } from '../castore/nodes.js';
import { FetchCacheError } from '../errors.js';
import { ioError } from '../fs/dump.js';
import { changed, localEntries } from '../fs/import.js';
import { addLargeFile, WORKER_HASH_MIN_SIZE } from '../fs/large-file.js';
import { FileNar } from '../nar-render/file-nar.js';
import type { NarSum } from '../nar-render/nar-calc.js';
import { createHasher } from '../nix/hashing.js';
import { NarEncoder } from '../nix/nar/encoder.js';
import type { Source } from './source.js';
import type { PathSpec } from './types.js';

/**
 * The NAR sha256 and size of one regular file, fed its bytes as they stream
 * into the store: a file root needs no second pass that renders the NAR back
 * from the store to hash it (for a 1 GiB file that pass re-read and
 * re-verified every chunk). ERR_IO when the file is not `size` bytes.
 */
function fileNarSum(path: string, executable: boolean, size: number) {
  const nar = new FileNar(executable, size);
  let seen = 0;
  return {
    update: (chunk: Uint8Array) => {
      seen += chunk.length;
      if (seen > size) throw changed(path);
      nar.update(chunk);
    },
    finish: (): NarSum => {
      const sum = nar.finish();
      if (sum === undefined) throw changed(path);
      return sum;
    },
  };
}

/** `contents` passed through `see` on their way to the blob writer. */
async function* tee(
  contents: AsyncIterable<Uint8Array> | Uint8Array,
  see: (chunk: Uint8Array) => void,
): AsyncGenerator<Uint8Array> {
  if (contents instanceof Uint8Array) {
    see(contents);
    yield contents;
    return;
  }
  for await (const chunk of contents) {
    see(chunk);
    yield chunk;
  }
}

function* prepend<T>(first: T, rest: Iterator<T>): Generator<T> {
  yield first;
  for (let r = rest.next(); !r.done; r = rest.next()) yield r.value;
}

export const pathSource: Source<PathSpec> = {
  async ingest(spec, ctx) {
    if (!spec.flat) {
      const narHasher = createHasher('sha256');
      let narSize = 0;
      const nar = {
        enc: new NarEncoder((c) => {
          narHasher.update(c);
          narSize += c.length;
        }),
        gaveUp: false,
      };
      const entries = localEntries(spec.path, nar);
      const first = entries.next();
      if (first.done) throw new TypeError('a local path yields at least its root');
      const root: IngestEntry = first.value;
      if (
        root.type === 'file' &&
        root.path.length === 0 &&
        'contents' in root &&
        !(root.contents instanceof Uint8Array)
      ) {
        // A large file root, which the walk does not hash (it streams later): its NAR is its
        // framing and bytes, hashed as they stream in. A small one the walk has hashed already.
        const size = statSync(spec.path).size;
        const added =
          size >= WORKER_HASH_MIN_SIZE
            ? await addLargeFile(ctx.cache.blobs, spec.path, size, root.executable)
            : undefined;
        if (added !== undefined) {
          return {
            node: fileNode(added.blob.digest, added.blob.size, root.executable),
            narSum: added.narSum,
            metadata: {},
          };
        }
        const sum = fileNarSum(spec.path, root.executable, size);
        const blob = await uploadBlob(ctx.cache.blobs, tee(root.contents, sum.update));
        return {
          node: fileNode(blob.digest, blob.size, root.executable),
          narSum: sum.finish(),
          metadata: {},
        };
      }
      const node = await ingestEntries(prepend(root, entries), ctx.cache);
      // A tree of small files was hashed as NAR during the walk; else the base renders it.
      const narSum = nar.gaveUp ? undefined : { narSha256: narHasher.digest(), narSize };
      return { node, narSum, metadata: {} };
    }
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
    const size = entry.contents instanceof Uint8Array ? entry.contents.length : statSync(real).size;
    const added =
      size >= WORKER_HASH_MIN_SIZE
        ? await addLargeFile(ctx.cache.blobs, real, size, false, ctx.algo)
        : undefined;
    if (added !== undefined) {
      return {
        node: fileNode(added.blob.digest, added.blob.size, false),
        flatHash: { algo: ctx.algo, digest: added.flat! },
        narSum: added.narSum,
        metadata: {},
      };
    }
    const hasher = createHasher(ctx.algo);
    // Stored non-executable, as Nix's flat adds are.
    const sum = fileNarSum(spec.path, false, size);
    const blob = await uploadBlob(
      ctx.cache.blobs,
      tee(entry.contents, (chunk) => {
        hasher.update(chunk);
        sum.update(chunk);
      }),
    );
    return {
      node: fileNode(blob.digest, blob.size, false),
      flatHash: { algo: ctx.algo, digest: hasher.digest() },
      narSum: sum.finish(),
      metadata: {},
    };
  },
};

/**
 * Add a local path to the store, as `nix-store --add` (recursive: the NAR
 * sha256 makes a `source`-type path) or `nix-store --add-fixed sha256`
 * (`flat`: the file's own sha256 makes a `fixed:out:sha256:…` path). The
 * tree goes into castore through `ingestEntries()`; the path info is written
 * last, after everything it points to.
 */

import { realpathSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Cache } from '../cache.js';
import { ingestEntries } from '../castore/ingest.js';
import { FetchCacheError } from '../errors.js';
import type { ContentAddress } from '../nix/content-address.js';
import type { Hash } from '../nix/hash.js';
import { createHasher, type Hasher } from '../nix/hashing.js';
import { makeFixedOutputPath, validateStorePathName } from '../nix/store-path.js';
import type { PathInfo } from '../pathinfo/path-info.js';
import { ioError } from './dump.js';
import { localEntries } from './import.js';

export interface AddOptions {
  /** Store path name; default the path's base name, like Nix. */
  name?: string | undefined;
  /** Hash the file's bytes (`--add-fixed`) instead of its NAR. */
  flat?: boolean | undefined;
}

export async function addPath(cache: Cache, path: string, options: AddOptions = {}): Promise<PathInfo> {
  const name = options.name ?? basename(resolve(path));
  validateStorePathName(name);
  if (!options.flat) {
    const node = await ingestEntries(localEntries(path), cache);
    const sum = await cache.narCalc.calculate(node);
    const hash: Hash = { algo: 'sha256', digest: sum.narSha256 };
    return persist(cache, { name, node, sum, ca: { method: 'nar', hash } });
  }
  // Flat: the file's bytes (symlinks followed, as Nix reads the file), hashed on the way in;
  // stored as a non-executable regular file.
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw ioError(e, path);
  }
  const [entry] = localEntries(real);
  if (entry?.type !== 'file' || !('contents' in entry)) {
    throw new FetchCacheError('ERR_UNSUPPORTED_FILE_TYPE', `'${path}' is not a regular file`, { path });
  }
  const hasher = createHasher('sha256');
  const node = await ingestEntries(
    [{ type: 'file', path: entry.path, executable: false, contents: teeHash(entry.contents, hasher) }],
    cache,
  );
  const sum = await cache.narCalc.calculate(node);
  return persist(cache, {
    name,
    node,
    sum,
    ca: { method: 'flat', hash: { algo: 'sha256', digest: hasher.digest() } },
  });
}

async function* teeHash(
  contents: AsyncIterable<Uint8Array> | Uint8Array,
  hasher: Hasher,
): AsyncGenerator<Uint8Array> {
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

async function persist(
  cache: Cache,
  item: {
    name: string;
    node: PathInfo['node'];
    sum: { narSha256: Uint8Array; narSize: number };
    ca: ContentAddress;
  },
): Promise<PathInfo> {
  const storePath = makeFixedOutputPath(
    { name: item.name, method: item.ca.method === 'flat' ? 'flat' : 'nar', hash: item.ca.hash },
    cache.storeDir,
  );
  const info: PathInfo = {
    storePath,
    node: item.node,
    references: [],
    narSha256: item.sum.narSha256,
    narSize: item.sum.narSize,
    signatures: [],
    ca: item.ca,
  };
  return cache.pathInfos.put(info);
}

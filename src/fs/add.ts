/**
 * Add a local path to the store, as `nix-store --add` (recursive: the NAR
 * sha256 makes a `source`-type path) or `nix-store --add-fixed sha256`
 * (`flat`: the file's own sha256 makes a `fixed:out:sha256:…` path). A thin
 * call into the fetcher base with a `path` spec: the base owns the store path,
 * the hash and writing the path info last, for local paths as for downloads.
 */

import type { Cache } from '../cache.js';
import { Fetcher } from '../fetchers/base.js';
import type { PathInfo } from '../pathinfo/path-info.js';

export interface AddOptions {
  /** Store path name; default the path's base name, like Nix. */
  name?: string | undefined;
  /** Hash the file's bytes (`--add-fixed`) instead of its NAR. */
  flat?: boolean | undefined;
}

/**
 * Adds a local file or tree to the cache as `nix-store --add` does (with `flat`: `nix-store --add-fixed
 * sha256`); returns its path info.
 */
export async function addPath(cache: Cache, path: string, options: AddOptions = {}): Promise<PathInfo> {
  const result = await new Fetcher(cache).fetch({
    type: 'path',
    path,
    name: options.name,
    flat: options.flat,
  });
  return result.pathInfo;
}

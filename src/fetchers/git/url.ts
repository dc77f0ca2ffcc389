/**
 * Git source locations: which transport a fetchGit URL uses (smart HTTP or a
 * repository on the local disk), the key of its per-URL cache directory, and
 * how a submodule's URL from `.gitmodules` is resolved against the
 * superproject's URL (git's rule: `./x` and `../x` are relative to the
 * superproject URL taken as a directory, so `../sub.git` next to
 * `https://h/a/main.git` is `https://h/a/sub.git`).
 */

import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FetchCacheError } from '../../errors.js';
import { toBase16 } from '../../nix/hash.js';
import { sha256 } from '../../nix/hashing.js';

export type GitLocation =
  | { readonly kind: 'http'; readonly url: string }
  | { readonly kind: 'local'; readonly url: string; readonly path: string };

/** Classifies `url`: `http(s)://`, `file://` or a local path; anything else is ERR_BAD_URL. */
export function parseGitUrl(url: string): GitLocation {
  if (url.length === 0) throw new FetchCacheError('ERR_BAD_URL', 'empty git URL', { path: url });
  if (/^https?:\/\//i.test(url)) {
    try {
      new URL(url);
    } catch (cause) {
      throw new FetchCacheError('ERR_BAD_URL', `invalid git URL '${url}'`, { path: url, cause });
    }
    return { kind: 'http', url };
  }
  if (/^file:\/\//i.test(url)) {
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (cause) {
      throw new FetchCacheError('ERR_BAD_URL', `invalid file URL '${url}'`, { path: url, cause });
    }
    return { kind: 'local', url, path };
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(url) && !isAbsolute(url)) {
    throw new FetchCacheError(
      'ERR_BAD_URL',
      `unsupported git URL scheme in '${url}' (http, https, file or a path)`,
      {
        path: url,
      },
    );
  }
  const path = resolve(url);
  return { kind: 'local', url: `file://${path}`, path };
}

/** Directory name of a URL's cache below `<root>/git`: the first 32 hex digits of sha256(url). */
export function cacheKey(url: string): string {
  return toBase16(sha256(url)).slice(0, 32);
}

/** Resolves a `.gitmodules` URL against the superproject URL (relative forms start with `./` or `../`). */
export function resolveSubmoduleUrl(superUrl: string, url: string): string {
  if (!url.startsWith('./') && !url.startsWith('../')) return url;
  let base = superUrl.replace(/\/+$/, '');
  let rest = url;
  for (;;) {
    if (rest.startsWith('./')) rest = rest.slice(2);
    else if (rest.startsWith('../')) {
      rest = rest.slice(3);
      const i = base.lastIndexOf('/');
      // Never climb above `scheme://host` or the filesystem root.
      if (i > 0 && !base.slice(0, i).endsWith('/')) base = base.slice(0, i);
    } else break;
  }
  return rest.length > 0 ? `${base}/${rest}` : base;
}

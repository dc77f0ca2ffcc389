/**
 * `git ls-remote` for the pin resolver: the refs of a repository, to pick a
 * branch head or the newest matching tag before anything is fetched (github
 * pins never clone; they only need the rev for the archive URL). Remote
 * (http/https) listings go through the git fetcher's smart-HTTP client and are
 * remembered in the store's fetch records under `["ls-remote", url]`, so an
 * offline resolution — or one whose remote is down (Nix: "using the most
 * recent version") — sees the last listing made online. Local repositories
 * (file:// or a path) are read in place; their annotated tags are peeled
 * through the repository's objects.
 */

import type { Cache } from '../cache.js';
import { FetchCacheError, isFetchCacheError } from '../errors.js';
import { GitObjects } from '../fetchers/git/objects.js';
import { guardedHttp, listRemote } from '../fetchers/git/remote.js';
import { findGitDir, localRefs } from '../fetchers/git/repo-cache.js';
import { parseGitUrl } from '../fetchers/git/url.js';

export interface RefList {
  /** Full ref name → object id (an annotated tag: the tag object). */
  readonly refs: ReadonlyMap<string, string>;
  /** HEAD's target branch when known. */
  readonly head?: string | undefined;
  /** The commit a ref finally points at (annotated tags peeled). */
  commitOf(ref: string): Promise<string>;
}

interface Stored {
  v: 1;
  refs: [string, string][];
  peeled: [string, string][];
  head?: string;
}

function key(url: string): string {
  return JSON.stringify(['ls-remote', url]);
}

async function stored(cache: Cache, url: string): Promise<Stored | undefined> {
  const raw = await cache.fetchIndex.get(key(url));
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as Stored;
    return v.v === 1 && Array.isArray(v.refs) ? v : undefined;
  } catch {
    return undefined;
  }
}

function fromStored(url: string, s: Stored): RefList {
  const refs = new Map(s.refs);
  const peeled = new Map(s.peeled);
  return {
    refs,
    head: s.head,
    async commitOf(ref) {
      const oid = peeled.get(ref) ?? refs.get(ref);
      if (oid === undefined)
        throw new FetchCacheError('ERR_GIT', `no ref '${ref}' in '${url}'`, { path: url });
      return oid;
    },
  };
}

/** The refs of the repository at `url`; offline (or when the remote fails) the last listing seen online. */
export async function listRefs(url: string, ctx: { cache: Cache; offline: boolean }): Promise<RefList> {
  const location = parseGitUrl(url);
  if (location.kind === 'local') {
    const gitdir = await findGitDir(location.path);
    const listing = await localRefs(gitdir);
    const objects = new GitObjects(gitdir);
    return {
      refs: listing.refs,
      head: listing.head,
      async commitOf(ref) {
        const oid = listing.refs.get(ref);
        if (oid === undefined)
          throw new FetchCacheError('ERR_GIT', `no ref '${ref}' in '${url}'`, { path: url });
        return objects.peelToCommit(oid);
      },
    };
  }
  const last = await stored(ctx.cache, location.url);
  if (ctx.offline) {
    if (last !== undefined) return fromStored(location.url, last);
    throw new FetchCacheError('ERR_OFFLINE', `offline: the refs of '${location.url}' are not in the cache`, {
      path: location.url,
    });
  }
  let record: Stored;
  try {
    const listing = await listRemote(location.url, guardedHttp(false, location.url, undefined));
    record = {
      v: 1,
      refs: [...listing.refs],
      peeled: [...listing.peeled],
      ...(listing.head === undefined ? {} : { head: listing.head }),
    };
  } catch (e) {
    if (last !== undefined && isFetchCacheError(e, 'ERR_HTTP')) return fromStored(location.url, last);
    throw e;
  }
  await ctx.cache.fetchIndex.put(key(location.url), JSON.stringify(record));
  return fromStored(location.url, record);
}

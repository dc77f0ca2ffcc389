/**
 * Ref names: which full ref a fetchGit `ref` means, looked up in a listing of
 * refs (a remote's advertisement or a local repository's refs). `HEAD` (the
 * default) follows the symbolic HEAD; `refs/…` is taken as is; a bare name
 * is tried as a branch, then as a tag. Nix's remote fetcher only tries
 * `refs/heads/<name>` and its local one asks `git rev-parse` (tags first);
 * branch-then-tag accepts both kinds of name and agrees with Nix whenever a
 * name is not both a branch and a tag.
 */

import { FetchCacheError } from '../../errors.js';

export interface RefListing {
  /** Full ref name → object id (annotated tags: the tag object's id). */
  readonly refs: ReadonlyMap<string, string>;
  /** Full ref name of the symbolic HEAD's target, when known. */
  readonly head?: string | undefined;
}

export interface ResolvedRef {
  readonly fullref: string;
  /** The object the ref points at (peel it to get the commit). */
  readonly oid: string;
}

export function refCandidates(ref: string): string[] {
  if (ref === 'HEAD' || ref.startsWith('refs/')) return [ref];
  return [`refs/heads/${ref}`, `refs/tags/${ref}`];
}

/** Rejects names git would not accept as refs (and anything that could escape a refs directory). */
export function validateRefName(ref: string): void {
  const bad =
    ref.length === 0 ||
    ref.startsWith('/') ||
    ref.endsWith('/') ||
    ref.endsWith('.lock') ||
    ref.endsWith('.') ||
    ref.includes('..') ||
    ref.includes('//') ||
    ref.includes('@{') ||
    ref.split('/').some((c) => c.startsWith('.')) ||
    /[\x00-\x20\x7f~^:?*[\\]/.test(ref);
  if (bad) throw new FetchCacheError('ERR_GIT', `invalid git ref name '${ref}'`, { actual: ref });
}

/** The full ref and object `ref` (default HEAD) names in `listing`, or undefined. */
export function resolveRef(listing: RefListing, ref: string | undefined): ResolvedRef | undefined {
  const wanted = ref ?? 'HEAD';
  for (const candidate of refCandidates(wanted)) {
    if (candidate === 'HEAD' && listing.head !== undefined) {
      const oid = listing.refs.get(listing.head);
      if (oid !== undefined) return { fullref: listing.head, oid };
    }
    const oid = listing.refs.get(candidate);
    if (oid !== undefined) return { fullref: candidate, oid };
  }
  return undefined;
}

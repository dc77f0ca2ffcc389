/**
 * `ingestGit()`: the git source (`builtins.fetchGit` semantics, docs/formats.md
 * §5; docs/differences-from-nix.md). It settles which commit a spec means, makes sure its objects are
 * local (mirroring http(s) remotes into the cache, reading file:// and local
 * repositories in place), then streams the commit's tree into
 * `ingestEntries()` and reports rev, revCount, lastModified and the ref.
 *
 * Rev/ref rules (following Nix): `ref` defaults to the remote's HEAD (Nix
 * 2.8 used `master` for remote URLs; modern Nix and we use HEAD); `rev` must
 * be 40 hex digits and name a commit; with both, the ref is fetched and the
 * rev must then be present, else an error suggesting `allRefs`; with
 * `allRefs` every branch and tag is fetched, so any rev the remote has is
 * found (without a rev it changes only what is downloaded). A rev already
 * in the cache needs no network at all. Offline, or when the remote cannot be
 * reached (Nix: "continuing with the most recent version"), an unpinned ref
 * resolves to the value the mirror recorded at its last successful listing;
 * anything not cached fails with ERR_OFFLINE (offline) or ERR_HTTP.
 *
 * `exportIgnore` defaults to true unless `submodules` (modern Nix; both at
 * once is an error, as in Nix). Nix 2.8 gets the same effect differently: it
 * unpacks `git archive` (which honours export-ignore, and also export-subst
 * and eol filters, which we — like Nix ≥ 2.20 — do not apply) and, with
 * submodules, a checkout (no export-ignore). Annotated tags are peeled to
 * their commit; Nix 2.8 reported the tag object's id as `rev` there.
 *
 * A local working tree is fetched at its committed HEAD: uncommitted changes
 * (Nix's "dirty" trees) are not included. Nix fetches a dirty tree as it is
 * on disk, with the warning `Git tree '<path>' is dirty`; we give the same
 * warning (git/dirty.ts), saying that the changes are left out.
 */

import type { HttpClient } from 'isomorphic-git';
import { type IngestServices, ingestEntries } from '../castore/ingest.js';
import type { Node } from '../castore/nodes.js';
import { FetchCacheError, isFetchCacheError } from '../errors.js';
import type { Submodule } from './git/gitmodules.js';
import { FULL_REV, GitObjects } from './git/objects.js';
import { refCandidates, resolveRef, validateRefName } from './git/refs.js';
import { fetchInto, guardedHttp, listRemote, type RemoteListing } from './git/remote.js';
import {
  findGitDir,
  type GitRepo,
  gitRoot,
  isShallow,
  localRefs,
  openLocalRepo,
  openMirror,
  recordRefs,
} from './git/repo-cache.js';
import { cachedRevCount } from './git/rev-count.js';
import { type TreeSource, walkTree } from './git/tree.js';
import { type GitLocation, parseGitUrl, resolveSubmoduleUrl } from './git/url.js';
import type { FetchMetadata, GitSpec } from './types.js';

/** Kept as a name for callers; `exportIgnore` now lives on GitSpec itself. */
export type GitFetchSpec = GitSpec;

export interface GitFetchContext {
  readonly services: IngestServices;
  /** The cache root; git mirrors live under `<root>/git` (a temp dir when undefined). */
  readonly cacheRoot: string | undefined;
  readonly offline: boolean;
  /** An isomorphic-git HTTP client (default: isomorphic-git/http/node). */
  readonly http?: HttpClient | undefined;
  /** Told about a dirty local working tree (see the header). */
  readonly onWarning?: ((message: string) => void) | undefined;
}

export interface GitIngestResult {
  readonly node: Node;
  readonly metadata: FetchMetadata;
}

interface Located {
  readonly repo: GitRepo;
  readonly rev: string;
  readonly ref?: string | undefined;
}

export async function ingestGit(spec: GitFetchSpec, ctx: GitFetchContext): Promise<GitIngestResult> {
  if (spec.rev !== undefined && !FULL_REV.test(spec.rev)) {
    throw new FetchCacheError(
      'ERR_GIT',
      `git rev '${spec.rev}' is not a full 40-digit lowercase hex commit id`,
      {
        actual: spec.rev,
      },
    );
  }
  if (spec.ref !== undefined) validateRefName(spec.ref);
  const submodules = spec.submodules ?? false;
  const shallow = spec.shallow ?? false;
  const exportIgnore = spec.exportIgnore ?? !submodules;
  if (exportIgnore && submodules) {
    throw new FetchCacheError('ERR_GIT', 'exportIgnore and submodules cannot be combined (as in Nix)');
  }
  const root = gitRoot(ctx.cacheRoot);
  const location = parseGitUrl(spec.url);
  // As Nix: only a local repository fetched with neither ref nor rev means its working tree.
  if (location.kind === 'local' && spec.ref === undefined && spec.rev === undefined && ctx.onWarning) {
    await warnIfDirty(location.path, spec, ctx.onWarning);
  }
  const found = await locate(root, location, spec, shallow, ctx);
  const commit = await found.repo.objects.commit(found.rev);
  const source: TreeSource = { objects: found.repo.objects, tree: commit.tree, url: location.url };
  const openSubmodule = (parent: TreeSource, sub: Submodule, rev: string) =>
    openSubmoduleTree(root, parent, sub, rev, ctx);
  const node = await ingestEntries(
    walkTree(source, { exportIgnore, ...(submodules ? { openSubmodule } : {}) }),
    ctx.services,
  );
  const metadata: FetchMetadata = {
    url: spec.url,
    rev: found.rev,
    lastModified: commit.committerTime,
    submodules,
  };
  if (!shallow) metadata.revCount = await cachedRevCount(found.repo.objects, found.rev, found.repo.cacheDir);
  if (found.ref !== undefined) metadata.ref = found.ref;
  return { node, metadata };
}

/**
 * The commit a local repository's `ref` (default HEAD) names right now, for the fetcher base: a local
 * repository is read again on every fetch, as Nix reads it (no TTL: a new commit is seen at once), and the
 * tree is then cached by that commit. With neither ref nor rev, a dirty working tree is warned about here
 * (see the header). Undefined for a remote URL, a given rev, or a ref that names nothing (the fetch then
 * reports it).
 */
export async function localCommit(
  spec: GitSpec,
  onWarning?: (message: string) => void,
): Promise<string | undefined> {
  if (spec.rev !== undefined) return undefined;
  let location: GitLocation;
  try {
    location = parseGitUrl(spec.url);
  } catch {
    return undefined;
  }
  if (location.kind !== 'local') return undefined;
  try {
    if (spec.ref !== undefined) validateRefName(spec.ref);
    const gitdir = await findGitDir(location.path);
    const resolved = resolveRef(await localRefs(gitdir), spec.ref);
    if (resolved === undefined) return undefined;
    const rev = await new GitObjects(gitdir).peelToCommit(resolved.oid);
    if (spec.ref === undefined && onWarning !== undefined) await warnIfDirty(location.path, spec, onWarning);
    return rev;
  } catch (e) {
    if (isFetchCacheError(e)) return undefined; // the fetch itself reports it
    throw e;
  }
}

async function warnIfDirty(path: string, spec: GitSpec, onWarning: (message: string) => void): Promise<void> {
  const { isDirtyWorkingTree } = await import('./git/dirty.js');
  if (await isDirtyWorkingTree(path, spec.submodules === true)) {
    onWarning(
      `Git tree '${path}' is dirty; its uncommitted changes are not included (fetch-cache fetches the last commit, Nix would fetch the working tree)`,
    );
  }
}

/** The repository and commit `spec` names, fetching what is missing. */
async function locate(
  root: string,
  location: GitLocation,
  spec: GitFetchSpec,
  shallow: boolean,
  ctx: GitFetchContext,
): Promise<Located> {
  if (location.kind === 'local') {
    const repo = await openLocalRepo(root, location.url, location.path);
    const listing = await localRefs(repo.gitdir);
    const resolved = resolveRef(listing, spec.ref);
    if (spec.rev !== undefined) {
      await requireCommit(repo, spec.rev, spec.ref);
      return { repo, rev: spec.rev, ref: resolved?.fullref ?? guessRef(spec.ref) };
    }
    if (resolved === undefined) throw unknownRef(spec.ref, location.url);
    return { repo, rev: await repo.objects.peelToCommit(resolved.oid), ref: resolved.fullref };
  }

  const repo = await openMirror(root, location.url);
  const complete = async (rev: string) =>
    (await isCommit(repo, rev)) && (shallow || (await historyComplete(repo, rev)));
  if (spec.rev !== undefined && (await complete(spec.rev))) {
    const local = resolveRef(await localRefs(repo.gitdir), spec.ref);
    return { repo, rev: spec.rev, ref: local?.fullref ?? guessRef(spec.ref) };
  }
  if (ctx.offline) {
    const cached = spec.rev === undefined ? await cachedRef(repo, spec.ref, complete) : undefined;
    if (cached !== undefined) return cached;
    const what = spec.rev ?? `ref '${spec.ref ?? 'HEAD'}'`;
    throw new FetchCacheError('ERR_OFFLINE', `offline: ${what} of '${location.url}' is not in the cache`, {
      path: location.url,
    });
  }

  const http = guardedHttp(false, location.url, ctx.http);
  let listing: RemoteListing;
  try {
    listing = await listRemote(location.url, http);
  } catch (e) {
    // Like Nix: when the remote cannot be reached, continue with the mirror's last known ref.
    const cached =
      isFetchCacheError(e, 'ERR_HTTP') && spec.rev === undefined
        ? await cachedRef(repo, spec.ref, complete)
        : undefined;
    if (cached === undefined) throw e;
    return cached;
  }
  const remote = resolveRef(listing, spec.ref);
  if (remote === undefined) throw unknownRef(spec.ref, location.url);
  const tip = listing.peeled.get(remote.fullref) ?? remote.oid;
  const want = spec.rev ?? tip;
  if (!(await complete(want))) {
    const local = await localRefs(repo.gitdir);
    const haveRef = local.refs.has(remote.fullref) ? remote.fullref : 'HEAD';
    const deepen = !shallow && (await isCommit(repo, want));
    if (spec.allRefs === true) {
      // Nix's allRefs: every branch and tag, so a rev that no history of `ref` holds is found too.
      await fetchInto(repo, http, { haveRef, ...(deepen ? { depth: 2_147_483_647 } : {}) });
      await recordRefs(repo, listing.refs, listing.head);
    } else {
      await fetchInto(repo, http, {
        remoteRef: remote.fullref,
        haveRef,
        ...(shallow ? { depth: 1 } : deepen ? { depth: 2_147_483_647 } : {}),
      });
    }
  }
  // The peeled commit, so an annotated tag resolves offline even when its tag object was never fetched.
  await recordRefs(repo, new Map([[remote.fullref, tip]]), listing.head);
  if (spec.rev !== undefined) {
    await requireCommit(repo, spec.rev, remote.fullref);
    return { repo, rev: spec.rev, ref: remote.fullref };
  }
  const rev = tip !== remote.oid ? tip : await repo.objects.peelToCommit(remote.oid);
  return { repo, rev, ref: remote.fullref };
}

/** The commit the mirror last recorded for `ref`, when its history is there. */
async function cachedRef(
  repo: GitRepo,
  ref: string | undefined,
  complete: (rev: string) => Promise<boolean>,
): Promise<Located | undefined> {
  const local = resolveRef(await localRefs(repo.gitdir), ref);
  if (local === undefined) return undefined;
  const rev = await repo.objects.peelToCommit(local.oid);
  return (await complete(rev)) ? { repo, rev, ref: local.fullref } : undefined;
}

async function openSubmoduleTree(
  root: string,
  parent: TreeSource,
  sub: Submodule,
  rev: string,
  ctx: GitFetchContext,
): Promise<TreeSource> {
  const url = resolveSubmoduleUrl(parent.url, Buffer.from(sub.url, 'latin1').toString('utf8'));
  const location = parseGitUrl(url);
  let repo: GitRepo;
  if (location.kind === 'local') repo = await openLocalRepo(root, location.url, location.path);
  else {
    repo = await openMirror(root, location.url);
    if (!(await isCommit(repo, rev))) {
      if (ctx.offline) {
        throw new FetchCacheError(
          'ERR_OFFLINE',
          `offline: submodule commit ${rev} of '${url}' is not in the cache`,
          {
            path: url,
          },
        );
      }
      // A gitlink names a commit, not a ref: fetch every branch and tag (Nix: allRefs).
      const http = guardedHttp(false, location.url, ctx.http);
      const listing = await listRemote(location.url, http);
      await fetchInto(repo, http, {});
      await recordRefs(repo, listing.refs, listing.head);
    }
  }
  await requireCommit(repo, rev, undefined, `submodule '${sub.path}'`);
  const commit = await repo.objects.commit(rev);
  return { objects: repo.objects, tree: commit.tree, url: location.url };
}

async function isCommit(repo: GitRepo, rev: string): Promise<boolean> {
  return (await repo.objects.read(rev))?.type === 'commit';
}

async function historyComplete(repo: GitRepo, rev: string): Promise<boolean> {
  if (!(await isShallow(repo.gitdir))) return true;
  try {
    await cachedRevCount(repo.objects, rev, repo.cacheDir);
    return true;
  } catch {
    return false;
  }
}

async function requireCommit(
  repo: GitRepo,
  rev: string,
  ref: string | undefined,
  what = 'Git revision',
): Promise<void> {
  const obj = await repo.objects.read(rev);
  if (obj === undefined) {
    const where = ref === undefined ? '' : ` in ref '${ref}'`;
    throw new FetchCacheError(
      'ERR_GIT',
      `cannot find ${what} '${rev}'${where} of '${repo.url}'; make sure the rev exists on the ref you specified, or use allRefs (\`fetch git --all-refs\`)`,
      { path: repo.url, actual: rev },
    );
  }
  if (obj.type !== 'commit') {
    throw new FetchCacheError('ERR_GIT', `git object '${rev}' is a ${obj.type}, not a commit`, {
      expected: 'commit',
      actual: obj.type,
    });
  }
}

function guessRef(ref: string | undefined): string | undefined {
  return ref === undefined ? undefined : refCandidates(ref)[0];
}

function unknownRef(ref: string | undefined, url: string): FetchCacheError {
  return new FetchCacheError('ERR_GIT', `cannot find git ref '${ref ?? 'HEAD'}' in '${url}'`, {
    path: url,
    actual: ref ?? 'HEAD',
  });
}
